/**
 * Issue 2, "Must show" 4: bad input. Random bytes, truncated frames, a frame claiming 2 GiB, an
 * unknown API key, an unsupported version and a corrupted record batch: each gets its connection
 * closed (or a proper error), a log line and a metric, while a healthy kafkajs client on the same
 * broker keeps producing and consuming.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { startTestBroker, type TestBroker } from '../../test/helpers/kafka.ts';
import { createLogger } from '../../common/logger.ts';
import type { Producer } from '../../common/kafka.ts';
import { frame, pseudoRandomBytes, sendRaw } from './test/raw.ts';
import { Received, startRecordingConsumer, waitFor } from './test/util.ts';

const TOPIC = 'healthy';

describe('services/kafka-broker bad input', () => {
  let k: TestBroker;
  let producer: Producer;
  const logLines: string[] = [];
  let sent = 0;

  async function healthyRoundTrip(): Promise<void> {
    const [meta] = await producer.send({ topic: TOPIC, acks: -1, messages: [{ value: `ok-${sent}` }] });
    expect(meta.errorCode).toBe(0);
    sent++;
  }

  async function badFrames(): Promise<number> {
    const metric = await k.broker.metrics.getSingleMetric('plantwatch_broker_bad_frames_total')!.get();
    return metric.values.reduce((s, v) => s + v.value, 0);
  }

  beforeAll(async () => {
    const sink = new Writable({
      write(chunk, _enc, cb) {
        logLines.push(String(chunk));
        cb();
      },
    });
    k = await startTestBroker({ logger: createLogger({ level: 'warn', destination: sink }) });
    producer = k.kafka.producer();
    await producer.connect();
    await healthyRoundTrip();
  });
  afterAll(async () => {
    await producer?.disconnect();
    await k?.close();
  });

  it('closes a connection that sends random bytes', async () => {
    for (const seed of [1, 2, 3]) {
      const bytes = pseudoRandomBytes(64 * 1024, seed);
      bytes[0] = 0x7f; // the size prefix reads as ~2 GiB: rejected before buffering
      expect((await sendRaw(k.brokers[0], bytes)).closedByServer).toBe(true);
      // Plausible size, random header and body.
      const body = pseudoRandomBytes(200, seed + 10);
      const framed = Buffer.concat([Buffer.from([0, 0, 0, 200]), body]);
      framed.writeInt16BE(3000 + seed, 4); // api key nobody implements
      expect((await sendRaw(k.brokers[0], framed)).closedByServer).toBe(true);
      await healthyRoundTrip();
    }
  });

  it('closes a connection whose frame claims 2 GiB, with a log line and a metric', async () => {
    const before = await badFrames();
    const res = await sendRaw(k.brokers[0], Buffer.from([0x7f, 0xff, 0xff, 0xff, 0, 18, 0, 0]));
    expect(res.closedByServer).toBe(true);
    expect(res.data.length).toBe(0);
    expect(await badFrames()).toBe(before + 1);
    expect(logLines.join('')).toMatch(/exceeds maxFrameBytes/);
    await healthyRoundTrip();
  });

  it('survives truncated frames: cut-off size, cut-off body, body shorter than its fields', async () => {
    // Size prefix cut after 2 bytes, then the client closes.
    expect((await sendRaw(k.brokers[0], Buffer.from([0, 0]), 1000, true)).closedByServer).toBe(true);
    // Frame announces 100 bytes, 40 arrive, client closes.
    const partial = frame(18, 2, 1, Buffer.alloc(86)).subarray(0, 44);
    expect((await sendRaw(k.brokers[0], partial, 1000, true)).closedByServer).toBe(true);
    // A complete frame whose Produce body ends in the middle of its fields: undecodable → closed.
    const before = await badFrames();
    const truncatedProduce = Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0x75, 0x30, 0, 0, 0, 1, 0, 5, 0x61]); // txn null, acks -1, timeout, 1 topic, name len 5, 'a'
    expect((await sendRaw(k.brokers[0], frame(0, 7, 9, truncatedProduce))).closedByServer).toBe(true);
    expect(await badFrames()).toBe(before + 1);
    // A negative size.
    expect((await sendRaw(k.brokers[0], Buffer.from([0xff, 0xff, 0xff, 0xfe]))).closedByServer).toBe(true);
    await healthyRoundTrip();
  });

  it('answers an unknown API key with UNSUPPORTED_VERSION for its correlation id, then closes', async () => {
    const res = await sendRaw(k.brokers[0], frame(999, 0, 4242));
    expect(res.closedByServer).toBe(true);
    expect(res.data.readInt32BE(0)).toBe(6); // size
    expect(res.data.readInt32BE(4)).toBe(4242); // correlation id
    expect(res.data.readInt16BE(8)).toBe(35); // UNSUPPORTED_VERSION
    expect(logLines.join('')).toMatch(/unknown api key 999/);
    await healthyRoundTrip();
  });

  it('answers ApiVersions of an unknown version with error 35 and the version table (KIP-511), keeping the connection', async () => {
    // Flexible request header: tagged-field byte after the client id; body: two empty compact strings and tags.
    const res = await sendRaw(k.brokers[0], frame(18, 9, 7, Buffer.from([0, 1, 1, 0])), 500);
    expect(res.closedByServer).toBe(false);
    expect(res.data.readInt32BE(4)).toBe(7);
    expect(res.data.readInt16BE(8)).toBe(35);
    const count = res.data.readInt32BE(10);
    const keys = Array.from({ length: count }, (_, i) => res.data.readInt16BE(14 + i * 6));
    expect(keys).toContain(0);
    expect(keys).toContain(18);
  });

  it('rejects a record batch with a bad CRC with CORRUPT_MESSAGE and stores nothing', async () => {
    const admin = k.kafka.admin();
    await admin.connect();
    const before = await admin.fetchTopicOffsets(TOPIC);
    // Build a valid-looking batch by hand and break its CRC.
    const batch = Buffer.alloc(61 + 8);
    batch.writeInt32BE(batch.length - 12, 8);
    batch.writeInt8(2, 16);
    batch.writeUInt32BE(0xdeadbeef, 17);
    batch.writeInt32BE(0, 23);
    batch.writeInt32BE(1, 57);
    const name = Buffer.from(TOPIC);
    const body = Buffer.concat([
      Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0x13, 0x88, 0, 0, 0, 1]),
      Buffer.from([0, name.length]),
      name,
      Buffer.from([0, 0, 0, 1, 0, 0, 0, 0]),
      Buffer.from([0, 0, 0, batch.length]),
      batch,
    ]);
    body.writeInt16BE(-1, 2); // acks -1 (after the null transactional id)
    const res = await sendRaw(k.brokers[0], frame(0, 7, 5, body), 500);
    expect(res.closedByServer).toBe(false);
    // size, corr, [responses] 1, name, [partitions] 1, index, error_code
    const at = 4 + 4 + 4 + 2 + name.length + 4 + 4;
    expect(res.data.readInt16BE(at)).toBe(2); // CORRUPT_MESSAGE
    expect(await admin.fetchTopicOffsets(TOPIC)).toEqual(before);
    await admin.disconnect();
    await healthyRoundTrip();
  });

  it('the healthy client read back everything it produced in between', async () => {
    const got = new Received();
    const { consumer } = await startRecordingConsumer(k.kafka, 'healthy-reader', TOPIC, got);
    try {
      await waitFor('all healthy messages', () => got.count >= sent);
      expect(got.values).toEqual(Array.from({ length: sent }, (_, i) => `ok-${i}`));
    } finally {
      await consumer.disconnect();
    }
  });
});
