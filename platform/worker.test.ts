/**
 * A component started in a worker thread: it relays over the real embedded broker, its metrics and
 * ops server answer from the main thread, close() drains and ends the thread, a failed start
 * rejects with the component's error, and a worker that dies later is reported.
 */
import { threadId } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureTopics } from '../common/kafka.ts';
import { KafkaClientConfig } from '../common/config/fragments.ts';
import { ConfigError } from '../common/errors.ts';
import { startTestBroker, type TestBroker } from '../test/helpers/kafka.ts';
import { startInWorker, type StartInWorkerOptions } from './worker.ts';

const RELAY = new URL('./testdata/relay-component.ts', import.meta.url).href;

describe('platform > startInWorker', () => {
  let k: TestBroker;
  let dataDir: string;
  beforeAll(async () => {
    k = await startTestBroker();
    dataDir = mkdtempSync(join(tmpdir(), 'pw-worker-'));
    await ensureTopics(k.kafka, ['in1', 'out1', 'in2', 'out2'].map((topic) => ({ topic })));
  });
  afterAll(async () => {
    await k?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const opts = (n: number, onFailure: (err: Error) => void, extra: Record<string, unknown> = {}): StartInWorkerOptions => ({
    name: 'relay',
    module: RELAY,
    config: { from: `in${n}`, to: `out${n}`, groupId: `relay-${n}`, ...extra },
    dataDir,
    logLevel: 'silent',
    kafka: { ...KafkaClientConfig.parse({}), brokers: k.brokers },
    onFailure,
  });

  async function readValues(topic: string, n: number): Promise<string[]> {
    const consumer = k.kafka.consumer({ groupId: `reader-${topic}-${Date.now()}` });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const got: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`only ${got.length} of ${n} records on ${topic}`)), 30_000);
      void consumer.run({
        eachMessage: async ({ message }) => {
          got.push(message.value!.toString());
          if (got.length >= n) clearTimeout(t), resolve();
        },
      });
    });
    await consumer.disconnect();
    return got;
  }

  it('relays in its own thread, serves its metrics to the main thread, and closes cleanly', async () => {
    const failures: Error[] = [];
    const h = await startInWorker(opts(1, (e) => failures.push(e)));
    expect(h.info.inWorker).toBe(true);
    expect(h.info.threadId).not.toBe(threadId);
    expect(h.info.topics).toEqual(['in1', 'out1']);
    expect(h.opsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    const producer = k.kafka.producer();
    await producer.connect();
    await producer.send({ topic: 'in1', messages: ['a', 'b', 'c'].map((value) => ({ key: 'k', value })) });
    await producer.disconnect();
    expect(await readValues('out1', 3)).toEqual(['A', 'B', 'C']);

    // The registry proxy scrapes the worker; the component's default label names it for the gateway.
    const text = await h.metrics.metrics();
    expect(text).toMatch(/^plantwatch_relay_records_total\{component="relay"\} 3$/m);
    const res = await fetch(`${h.opsUrl}/metrics`);
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/plantwatch_relay_records_total/);

    await h.close();
    await h.close(); // idempotent
    await expect(fetch(`${h.opsUrl}/metrics`)).rejects.toThrow();
    await expect(h.metrics.metrics()).rejects.toThrow(/not running/);
    expect(failures).toEqual([]);
  });

  it('rejects with the component error when start fails in the worker', async () => {
    const failures: Error[] = [];
    const err = await startInWorker(opts(2, (e) => failures.push(e), { failStart: true })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/relay\.failStart/);
    expect(failures).toEqual([]);
  });

  it('reports a worker that dies after start', async () => {
    let reported: ((e: Error) => void) | undefined;
    const failure = new Promise<Error>((resolve) => (reported = resolve));
    const h = await startInWorker(opts(2, (e) => reported!(e)));
    const producer = k.kafka.producer();
    await producer.connect();
    await producer.send({ topic: 'in2', messages: [{ key: 'k', value: 'crash' }] });
    await producer.disconnect();
    const err = await failure;
    expect(err.message).toMatch(/relay worker died .*told to crash/);
    expect((err as Error & { component?: string }).component).toBe('relay');
    await expect(h.metrics.metrics()).rejects.toThrow();
    await h.close(); // closing a dead worker is a no-op
  });
});
