/**
 * Test/bench helper: read every record of a topic from the beginning with a fresh consumer group.
 */
import type { KafkaClients, KafkaMessage } from '../../common/kafka.ts';

export interface ReadRecord {
  key: string;
  value: string;
  partition: number;
  offset: string;
  headers: Record<string, string>;
}

/**
 * Reads `topic` until `expected` records arrived (then `settleMs` more, to catch extras) or
 * `timeoutMs` passed. Returns what it read, in partition order.
 */
export async function readTopic(kafka: KafkaClients, topic: string, expected: number, opts: { timeoutMs?: number; settleMs?: number } = {}): Promise<ReadRecord[]> {
  const consumer = kafka.consumer({ groupId: `pw-edge-read-${Date.now()}-${Math.random().toString(36).slice(2)}`, maxWaitTimeInMs: 100 });
  const out: ReadRecord[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    let reached: () => void = () => undefined;
    const done = new Promise<void>((r) => (reached = r));
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        for (const m of batch.messages as KafkaMessage[]) {
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(m.headers ?? {})) headers[k] = String(v);
          out.push({ key: m.key?.toString() ?? '', value: m.value?.toString() ?? '', partition: batch.partition, offset: m.offset, headers });
        }
        if (out.length >= expected) reached();
      },
    });
    await Promise.race([done, new Promise((r) => setTimeout(r, opts.timeoutMs ?? 30_000))]);
    await new Promise((r) => setTimeout(r, opts.settleMs ?? 300));
  } finally {
    await consumer.disconnect();
  }
  return out;
}
