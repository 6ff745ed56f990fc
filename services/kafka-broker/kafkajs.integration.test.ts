/**
 * Issue 2, "Must show" 1: kafkajs against the embedded broker. A 3-partition topic, 100k keyed
 * messages produced with acks=-1, a group of two consumers receiving every message exactly once in
 * per-partition order, one consumer leaving and the other taking over from the committed offsets,
 * and a broker restart after which a new consumer of the same group resumes where the group committed.
 */
import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../../test/helpers/kafka.ts';
import { Received, contiguous, startRecordingConsumer, waitFor } from './test/util.ts';

const TOPIC = 'plant.readings.test';
const GROUP = 'must-show-group';
const TOTAL = 100_000;
const BATCH = 2_000;

async function produce(k: TestBroker, from: number, count: number): Promise<void> {
  const producer = k.kafka.producer();
  await producer.connect();
  for (let i = from; i < from + count; i += BATCH) {
    const messages = [];
    for (let j = i; j < Math.min(i + BATCH, from + count); j++) messages.push({ key: `site/line/m${j % 97}`, value: `msg-${j}` });
    await producer.send({ topic: TOPIC, acks: -1, messages });
  }
  await producer.disconnect();
}

async function endOffsets(k: TestBroker): Promise<Map<number, number>> {
  const admin = k.kafka.admin();
  await admin.connect();
  const offsets = await admin.fetchTopicOffsets(TOPIC);
  await admin.disconnect();
  return new Map(offsets.map((o) => [o.partition, Number(o.high)]));
}

async function committed(k: TestBroker): Promise<Map<number, number>> {
  const admin = k.kafka.admin();
  await admin.connect();
  const [res] = await admin.fetchOffsets({ groupId: GROUP, topics: [TOPIC] });
  await admin.disconnect();
  return new Map(res.partitions.map((p) => [p.partition, Number(p.offset)]));
}

describe('services/kafka-broker with kafkajs', () => {
  let k: TestBroker;
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  });

  it('creates a 3-partition topic, delivers 100k keyed acks=-1 messages to a 2-consumer group exactly once in order, survives leave and restart', async () => {
    k = await startTestBroker({ keepData: true });
    cleanups.push(() => k.close());
    const admin = k.kafka.admin();
    await admin.connect();
    expect(await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 3 }] })).toBe(true);
    expect(await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 3 }] })).toBe(false); // TOPIC_ALREADY_EXISTS
    const meta = await admin.fetchTopicMetadata({ topics: [TOPIC] });
    expect(meta.topics[0].partitions.map((p) => p.partitionId).sort()).toEqual([0, 1, 2]);
    await admin.disconnect();

    // Two consumers form a stable group before any data exists, so no rebalance happens mid-stream.
    const a = new Received();
    const b = new Received();
    const ca = await startRecordingConsumer(k.kafka, GROUP, TOPIC, a);
    cleanups.push(() => ca.consumer.disconnect());
    const cb = await startRecordingConsumer(k.kafka, GROUP, TOPIC, b);
    cleanups.push(() => cb.consumer.disconnect());
    await waitFor('both consumers to share the 3 partitions', () => ca.assigned().length + cb.assigned().length === 3 && ca.assigned().length > 0 && cb.assigned().length > 0);

    await produce(k, 0, TOTAL);
    const ends = await endOffsets(k);
    expect([...ends.values()].reduce((s, n) => s + n, 0)).toBe(TOTAL);
    expect(Math.min(...ends.values())).toBeGreaterThan(0); // keys spread over all partitions

    await waitFor('all 100k messages', () => a.count + b.count >= TOTAL, 60_000);
    await new Promise((r) => setTimeout(r, 300)); // duplicates would show up now
    expect(a.count + b.count).toBe(TOTAL);
    for (const [p, end] of ends) {
      const owner = ca.assigned().includes(p) ? a : b;
      const other = owner === a ? b : a;
      expect(contiguous(owner.offsets.get(p), 0, end)).toBe(true); // every offset once, in order
      expect(other.offsets.get(p)).toBeUndefined();
    }
    const values = new Set([...a.values, ...b.values]);
    expect(values.size).toBe(TOTAL);

    // Consumer B leaves; A takes over B's partitions starting at the offsets B committed.
    const bPartitions = cb.assigned();
    await cb.consumer.disconnect();
    const afterLeave = await committed(k);
    for (const p of bPartitions) expect(afterLeave.get(p)).toBe(ends.get(p));
    const aBefore = new Map([...a.offsets].map(([p, list]) => [p, list.length]));
    await waitFor('A to own all 3 partitions', () => ca.assigned().length === 3);
    await produce(k, TOTAL, 3_000);
    const ends2 = await endOffsets(k);
    await waitFor('A to read the new messages', () => a.count + b.count >= TOTAL + 3_000, 30_000);
    for (const p of bPartitions) expect(contiguous(a.offsets.get(p)?.slice(aBefore.get(p) ?? 0), ends.get(p)!, ends2.get(p)!)).toBe(true);
    for (const p of ca.assigned().filter((x) => !bPartitions.includes(x))) expect(contiguous(a.offsets.get(p), 0, ends2.get(p)!)).toBe(true);

    // Commit and stop; restart the broker on the same data dir.
    await ca.consumer.disconnect();
    const beforeRestart = await committed(k);
    for (const [p, end] of ends2) expect(beforeRestart.get(p)).toBe(end);
    const dataDir = k.dataDir;
    await k.close();
    cleanups.unshift(async () => rmSync(dataDir, { recursive: true, force: true }));

    const k2 = await startTestBroker({ dataDir });
    cleanups.push(() => k2.close());
    k = k2;
    expect(await committed(k2)).toEqual(beforeRestart);
    expect(await endOffsets(k2)).toEqual(ends2);
    await produce(k2, TOTAL + 3_000, 1_500);
    const ends3 = await endOffsets(k2);
    const c = new Received();
    const cc = await startRecordingConsumer(k2.kafka, GROUP, TOPIC, c);
    cleanups.push(() => cc.consumer.disconnect());
    await waitFor('the new consumer to read what was produced after the restart', () => c.count >= 1_500, 30_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(c.count).toBe(1_500);
    for (const [p, end] of ends3) expect(contiguous(c.offsets.get(p), beforeRestart.get(p)!, end)).toBe(true);
  }, 120_000);
});
