/**
 * Issue 2, "Must show" 3: crash safety. A kafkajs producer (acks=-1) streams into a broker child
 * process that is SIGKILLed mid-stream. After a restart on the same data dir every message whose
 * send resolved is readable, in order, uncorrupted. A second round also appends a torn half batch
 * to the active segment (what a power cut can leave) and checks that recovery truncates it.
 */
import { appendFileSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createKafkaClients, type KafkaClients } from '../../common/kafka.ts';
import { KafkaClientConfig } from '../../common/config/fragments.ts';
import { silentLogger } from '../../common/logger.ts';
import { startChildBroker, type ChildBroker } from './test/child.ts';
import { Received, startRecordingConsumer, waitFor } from './test/util.ts';

const TOPIC = 'crash';

function clients(bootstrap: string): KafkaClients {
  return createKafkaClients({ ...KafkaClientConfig.parse({}), clientId: 'crash-test', brokers: [bootstrap], connectionTimeoutMs: 1000, requestTimeoutMs: 5000 }, silentLogger());
}

/** Streams batches of sequence-numbered messages until the broker dies; returns the acked sequence numbers. */
async function streamUntilKilled(broker: ChildBroker, startSeq: number): Promise<{ acked: number[]; next: number }> {
  const kafka = clients(broker.bootstrap);
  const producer = kafka.producer({ retry: { retries: 0 } });
  await producer.connect();
  const acked: number[] = [];
  let seq = startSeq;
  let killed = false;
  const killer = setTimeout(() => {
    killed = true;
    broker.child.kill('SIGKILL');
  }, 1500);
  try {
    for (;;) {
      const batch = Array.from({ length: 50 }, (_, i) => ({ key: `k${(seq + i) % 2}`, value: JSON.stringify({ seq: seq + i, pad: 'p'.repeat(100) }) }));
      try {
        await producer.send({ topic: TOPIC, acks: -1, messages: batch });
      } catch {
        break; // the broker is gone
      }
      if (killed) break;
      for (const m of batch) acked.push(JSON.parse(m.value).seq as number);
      seq += batch.length;
    }
  } finally {
    clearTimeout(killer);
    if (!killed) broker.child.kill('SIGKILL');
    await broker.exited;
    await producer.disconnect().catch(() => {});
  }
  return { acked, next: seq + 50 };
}

async function readAll(bootstrap: string, group: string): Promise<Received> {
  const kafka = clients(bootstrap);
  const admin = kafka.admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(TOPIC);
  await admin.disconnect();
  const total = ends.reduce((s, o) => s + Number(o.high), 0);
  const got = new Received();
  const { consumer } = await startRecordingConsumer(kafka, group, TOPIC, got);
  try {
    await waitFor(`${total} messages`, () => got.count >= total, 30_000);
  } finally {
    await consumer.disconnect();
  }
  return got;
}

function checkAckedReadable(got: Received, acked: number[]): void {
  const seqs = got.values.map((v) => JSON.parse(v).seq as number); // throws on a corrupted value
  const present = new Set(seqs);
  const missing = acked.filter((s) => !present.has(s));
  expect(missing).toEqual([]);
  expect(present.size).toBe(seqs.length); // no duplicates
  // Per partition, offsets are contiguous from 0; per key (one partition each), sequence numbers
  // arrive in production order.
  for (const offsets of got.offsets.values()) expect(offsets).toEqual(offsets.map((_, j) => j));
  const perKey = new Map<number, number[]>();
  for (const s of seqs) {
    const list = perKey.get(s % 2) ?? [];
    list.push(s);
    perKey.set(s % 2, list);
  }
  for (const list of perKey.values()) expect([...list].sort((a, b) => a - b)).toEqual(list);
}

describe('services/kafka-broker crash safety (SIGKILL)', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'plantwatch-kafka-crash-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('keeps every acknowledged message across SIGKILL and a torn tail', async () => {
    const first = await startChildBroker(['--port', '0', '--data-dir', dataDir]);
    const admin = clients(first.bootstrap).admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 2 }] });
    await admin.disconnect();
    const round1 = await streamUntilKilled(first, 0);
    expect(round1.acked.length).toBeGreaterThan(100); // several hundred to thousands, depending on machine load

    const second = await startChildBroker(['--port', '0', '--data-dir', dataDir]);
    const got1 = await readAll(second.bootstrap, 'reader-1');
    checkAckedReadable(got1, round1.acked);

    // Round 2: crash again, then simulate a torn write at the end of an active segment.
    const round2 = await streamUntilKilled(second, round1.next);
    // Tear the tail of the fullest partition (both keys may hash to one partition).
    const activeOf = (p: number): string => {
      const dir = join(dataDir, 'topics', TOPIC, String(p));
      return join(dir, readdirSync(dir).filter((f) => f.endsWith('.log')).sort().at(-1)!);
    };
    const activeFile = [activeOf(0), activeOf(1)].sort((x, y) => statSync(y).size - statSync(x).size)[0];
    const before = statSync(activeFile).size;
    expect(before).toBeGreaterThan(0);
    const torn = Buffer.alloc(90, 0);
    torn.writeInt32BE(500, 8); // a batch header claiming 500 bytes, cut short
    torn.writeInt8(2, 16);
    appendFileSync(activeFile, torn);

    const third = await startChildBroker(['--port', '0', '--data-dir', dataDir, '--log-level', 'warn']);
    try {
      expect(statSync(activeFile).size).toBe(before);
      expect(third.stderr()).toMatch(/truncated torn tail/);
      const got2 = await readAll(third.bootstrap, 'reader-2');
      checkAckedReadable(got2, [...round1.acked, ...round2.acked]);
    } finally {
      third.child.kill('SIGTERM');
      await third.exited;
    }
  }, 120_000);
});
