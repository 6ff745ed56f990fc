import { readdirSync, readFileSync } from 'node:fs';
import type { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTopics, type Consumer } from './kafka.ts';
import { pack, ThreadedProducer, unpack } from './kafka-producer-thread.ts';
import { silentLogger } from './logger.ts';
import { startTestBroker, type TestBroker } from '../test/helpers/kafka.ts';

describe('ThreadedProducer packing', () => {
  it('carries keys, values (strings, Buffer slices, null), headers and partitions through one buffer', () => {
    const pool = Buffer.from('xxhello worldxx');
    const headers = { 'content-type': 'application/json' };
    const { msg, transfer } = pack(
      {
        acks: -1,
        topicMessages: [
          { topic: 'a', messages: [{ key: 'k1', value: 'température 21 °C' }, { key: null, value: pool.subarray(2, 13), headers }] },
          { topic: 'b', messages: [{ key: Buffer.from('k3'), value: null, partition: 2 }, { key: 'k4', value: '', timestamp: '1700000000000' }] },
        ],
      },
      1,
    );
    expect(transfer).toEqual([msg.values]);
    const topics = unpack(msg.topics, msg.values);
    expect(topics.map((t) => t.topic)).toEqual(['a', 'b']);
    const [a, b] = topics;
    expect(a.messages[0]).toEqual({ key: 'k1', value: Buffer.from('température 21 °C') });
    expect(a.messages[1]).toEqual({ key: null, value: Buffer.from('hello world'), headers });
    expect(b.messages[0]).toEqual({ key: 'k3', value: null, partition: 2 });
    expect(b.messages[1]).toEqual({ key: 'k4', value: Buffer.alloc(0), timestamp: '1700000000000' });
  });
});

describe('ThreadedProducer on the embedded broker', () => {
  let k: TestBroker;
  let consumer: Consumer;
  const seen: { topic: string; partition: number; key: string | null; value: string | null; headers: Record<string, string> }[] = [];

  beforeAll(async () => {
    k = await startTestBroker();
    await ensureTopics(k.kafka, [{ topic: 'threaded', numPartitions: 3 }]);
    consumer = k.kafka.consumer({ groupId: 'threaded-test', maxWaitTimeInMs: 20 });
    await consumer.connect();
    await consumer.subscribe({ topics: ['threaded'], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ topic, partition, message }) => {
        const headers: Record<string, string> = {};
        for (const [h, v] of Object.entries(message.headers ?? {})) headers[h] = String(v);
        seen.push({ topic, partition, key: message.key?.toString() ?? null, value: message.value?.toString() ?? null, headers });
      },
    });
  });

  afterAll(async () => {
    await consumer?.disconnect();
    await k?.close();
  });

  const waitFor = async (cond: () => boolean, ms = 15_000) => {
    const until = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > until) throw new Error('timed out');
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  it('delivers what kafkajs delivers: same keys, values, headers and partitions (murmur2 on the key)', async () => {
    const threaded = new ThreadedProducer(k.kafka.config!, { allowAutoTopicCreation: false }, silentLogger());
    const direct = k.kafka.producer({ allowAutoTopicCreation: false });
    await Promise.all([threaded.connect(), direct.connect()]);
    const messages = (tag: string) =>
      Array.from({ length: 40 }, (_, i) => ({ key: `site/line/m${i}`, value: Buffer.from(`${tag}-${i}`), headers: { v: tag } }));
    const [viaThread] = await threaded.sendBatch({ acks: -1, topicMessages: [{ topic: 'threaded', messages: messages('thread') }] });
    await direct.sendBatch({ acks: -1, topicMessages: [{ topic: 'threaded', messages: messages('direct') }] });
    expect(viaThread.topicName).toBe('threaded');
    await waitFor(() => seen.length >= 80);
    const byKey = (tag: string) => new Map(seen.filter((s) => s.headers.v === tag).map((s) => [s.key, s]));
    const t = byKey('thread');
    const d = byKey('direct');
    expect(t.size).toBe(40);
    for (const [key, s] of d) {
      expect(t.get(key)?.partition).toBe(s.partition);
      expect(t.get(key)?.value).toBe(s.value!.replace('direct', 'thread'));
    }
    await Promise.all([threaded.disconnect(), direct.disconnect()]);
  });

  it('a producer thread that dies fails its pending sends as retriable; the next send starts a new one', async () => {
    const threaded = new ThreadedProducer(k.kafka.config!, { allowAutoTopicCreation: false }, silentLogger());
    await threaded.connect();
    const worker = (threaded as unknown as { worker: Worker }).worker;
    const pending = threaded.sendBatch({ acks: -1, topicMessages: [{ topic: 'threaded', messages: [{ key: 'a', value: 'lost-or-sent' }] }] });
    await worker.terminate();
    // The send is posted after this tick, to a thread already stopping: it is never acknowledged.
    const err = await pending.then(() => null, (e: Error & { code?: string; retriable?: boolean }) => e);
    expect(err?.code).toBe('KAFKA_PRODUCER_THREAD_EXITED');
    expect(err?.retriable).toBe(true);
    const before = seen.length;
    await threaded.sendBatch({ acks: -1, topicMessages: [{ topic: 'threaded', messages: [{ key: 'b', value: 'after-restart' }] }] });
    await waitFor(() => seen.slice(before).some((s) => s.value === 'after-restart'));
    expect((threaded as unknown as { worker: Worker }).worker).not.toBe(worker);
    await threaded.disconnect();
  });

  it('a niced producer thread runs below the priority of the rest of the process', async () => {
    const niceOfThreads = () =>
      readdirSync('/proc/self/task').map((tid) => {
        const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
        // Field 19 (nice), counted after the parenthesised command name.
        return { tid: Number(tid), nice: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]) };
      });
    const before = niceOfThreads();
    const threaded = new ThreadedProducer(k.kafka.config!, { allowAutoTopicCreation: false }, silentLogger(), { nice: 7 });
    await threaded.connect();
    const after = niceOfThreads();
    const niced = after.filter((t) => t.nice === 7);
    expect(niced).toHaveLength(1);
    expect(before.some((t) => t.tid === niced[0].tid)).toBe(false);
    // This thread, and every thread that was there before, keeps its priority.
    expect(after.find((t) => t.tid === process.pid)?.nice ?? before[0].nice).toBe(before.find((t) => t.tid === process.pid)?.nice ?? before[0].nice);
    for (const t of before) expect(after.find((a) => a.tid === t.tid)?.nice ?? t.nice).toBe(t.nice);
    await threaded.sendBatch({ acks: -1, topicMessages: [{ topic: 'threaded', messages: [{ key: 'n', value: 'niced' }] }] });
    await threaded.disconnect();
  });

  it('connect rejects with the connection error when no broker answers', async () => {
    const threaded = new ThreadedProducer({ ...k.kafka.config!, brokers: ['127.0.0.1:1'], connectionTimeoutMs: 500 }, { retry: { retries: 0 } }, silentLogger());
    await expect(threaded.connect()).rejects.toThrow(/connect|ECONNREFUSED/i);
    await threaded.disconnect();
  });
});
