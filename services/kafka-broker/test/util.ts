/** Small helpers shared by the broker's tests. */
import type { Consumer, KafkaClients } from '../../../common/kafka.ts';

export async function waitFor(what: string, predicate: () => boolean | Promise<boolean>, timeoutMs = 30_000, stepMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** Records what one consumer received: partition → offsets in arrival order, and keys/values. */
export class Received {
  readonly offsets = new Map<number, number[]>();
  readonly values: string[] = [];
  count = 0;
  add(partition: number, offset: number, value: string): void {
    let list = this.offsets.get(partition);
    if (!list) this.offsets.set(partition, (list = []));
    list.push(offset);
    this.values.push(value);
    this.count++;
  }
}

/** Starts a consumer that records every message; resolves once it has joined with an assignment. */
export async function startRecordingConsumer(
  kafka: KafkaClients,
  groupId: string,
  topic: string,
  into: Received,
  opts: { fromBeginning?: boolean; sessionTimeout?: number; heartbeatInterval?: number } = {},
): Promise<{ consumer: Consumer; assigned: () => number[] }> {
  const consumer = kafka.consumer({ groupId, sessionTimeout: opts.sessionTimeout ?? 6000, heartbeatInterval: opts.heartbeatInterval ?? 300, rebalanceTimeout: 10_000, maxWaitTimeInMs: 200 });
  let assigned: number[] = [];
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    assigned = [...(e.payload.memberAssignment[topic] ?? [])].sort((a, b) => a - b);
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: opts.fromBeginning ?? true });
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      into.add(partition, Number(message.offset), message.value?.toString() ?? '');
    },
  });
  return { consumer, assigned: () => assigned };
}

/** Asserts offsets per partition are strictly increasing and contiguous from `from`. */
export function contiguous(offsets: number[] | undefined, from: number, to: number): boolean {
  if (!offsets) return from === to;
  if (offsets.length !== to - from) return false;
  return offsets.every((o, i) => o === from + i);
}
