/**
 * Helpers for storage writer tests and the storage benchmark: a steady stream of readings into
 * `plantwatch.readings` (10 sensors per record, unique event time per record), and a wait for the
 * writer's consumer group to have committed everything produced.
 */
import type { KafkaClients, Producer } from '../../common/kafka.ts';
import type { Reading } from '../../common/messages.ts';
import { TOPICS } from '../../common/topics.ts';

export const SENSORS_PER_RECORD = 10;

export function readingsRecord(i: number, base: number, machines = 6): { key: string; value: string } {
  const machine = `m${i % machines}`;
  const ts = base + Math.floor(i / machines);
  const rs: Reading[] = Array.from({ length: SENSORS_PER_RECORD }, (_, s) => ({ site: 'plant', line: 'L1', machine, sensor: `s${s}`, ts, value: (i * 7 + s) % 1000, unit: 'u', receivedAt: ts + 1 }));
  return { key: `plant/L1/${machine}`, value: JSON.stringify(rs) };
}

export interface Stream {
  /** Records produced (and acknowledged by the broker) so far. */
  readonly records: number;
  stop(): Promise<number>;
}

/** Produces `perTick` records every `tickMs` until stopped; returns the count on stop. */
export function startStream(producer: Producer, opts: { base: number; perTick: number; tickMs: number; maxRecords?: number }): Stream {
  let i = 0;
  let running = true;
  const loop = (async () => {
    while (running && (opts.maxRecords === undefined || i < opts.maxRecords)) {
      const n = opts.maxRecords === undefined ? opts.perTick : Math.min(opts.perTick, opts.maxRecords - i);
      const messages = Array.from({ length: n }, (_, k) => readingsRecord(i + k, opts.base));
      await producer.send({ topic: TOPICS.readings, messages, acks: -1 });
      i += n;
      await new Promise((r) => setTimeout(r, opts.tickMs));
    }
  })();
  return {
    get records() {
      return i;
    },
    stop: async () => {
      running = false;
      await loop;
      return i;
    },
  };
}

/** Waits until `groupId` has committed every partition of `topic` up to its end offset. */
export async function waitForCommitted(kafka: KafkaClients, groupId: string, topic: string, timeoutMs: number): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const ends = await admin.fetchTopicOffsets(topic);
      const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
      const byPartition = new Map(committed.partitions.map((p) => [p.partition, BigInt(p.offset)]));
      const lagging = ends.filter((e) => BigInt(e.high) > 0n && (byPartition.get(e.partition) ?? -1n) < BigInt(e.high));
      if (lagging.length === 0) return;
      if (Date.now() > deadline) throw new Error(`group ${groupId} still behind on ${lagging.map((l) => `${l.partition}: ${byPartition.get(l.partition)} < ${l.high}`).join(', ')}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await admin.disconnect();
  }
}
