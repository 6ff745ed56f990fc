/**
 * The storage writer end to end on the embedded Kafka broker and the embedded store:
 * consume → validate → write → commit; dead letters; crash (SIGKILL) and restart without loss.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../common/logger.ts';
import { createRegistry } from '../../common/metrics.ts';
import { DeadLetter } from '../../common/messages.ts';
import { TOPICS } from '../../common/topics.ts';
import { startTestBroker, type TestBroker } from '../../test/helpers/kafka.ts';
import { SENSORS_PER_RECORD, countReadings, killLeftoverRunners, readingsRecord, spawnRunner, startStream, waitForCommitted } from '../../test/helpers/storage-stream.ts';
import { DEFAULT_STORE_OPTIONS } from './backend.ts';
import { EmbeddedStore } from './embedded-store.ts';
import { StorageConfig, start } from './index.ts';

describe('services/storage writer on Kafka (embedded store)', () => {
  let broker: TestBroker;
  const dirs: string[] = [];
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), 'pw-storage-writer-'));
    dirs.push(d);
    return d;
  };
  // One broker per test: each test's consumer group reads its topics from the beginning.
  beforeEach(async () => {
    broker = await startTestBroker();
  });
  afterEach(async () => {
    killLeftoverRunners();
    await broker?.close();
  });
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('stores every reading once, dead-letters invalid records, commits, serves metrics', async () => {
    const dataDir = tmp();
    const groupId = 'storage-basic';
    const handle = await start(StorageConfig.parse({ httpPort: 0, lingerMs: 20, groupId }), { logger: silentLogger(), metrics: createRegistry('storage'), kafka: broker.kafka, dataDir });
    const producer = broker.kafka.producer();
    await producer.connect();
    const base = Date.now() - 60_000;
    const records = Array.from({ length: 200 }, (_, i) => readingsRecord(i, base));
    await producer.send({ topic: TOPICS.readings, messages: records });
    // One reading as a bare object, one broken record, one score, one alert.
    await producer.send({
      topic: TOPICS.readings,
      messages: [
        { key: 'plant/L1/solo', value: JSON.stringify({ site: 'plant', line: 'L1', machine: 'solo', sensor: 't', ts: base, value: 1, receivedAt: base }) },
        { key: 'plant/L1/bad', value: '{"site":"plant","value":"NaN"' },
      ],
    });
    await producer.send({
      topic: TOPICS.scores,
      messages: [{ key: 'plant/L1/m0', value: JSON.stringify({ kind: 'sensor', site: 'plant', line: 'L1', machine: 'm0', sensor: 's0', ts: base, value: 1, predicted: 1, lower: 0, upper: 2, rawScore: 0.1, likelihood: 0.2, modelVersion: 'v', warmingUp: false }) }],
    });
    await producer.send({
      topic: TOPICS.alerts,
      messages: [{ key: 'plant/L1/m0', value: JSON.stringify({ fingerprint: 'f1', rule: 'r', severity: 'warning', status: 'firing', site: 'plant', line: 'L1', machine: 'm0', labels: {}, summary: 's', value: 3, startsAt: base, endsAt: null, acknowledgedBy: null, acknowledgedAt: null, silencedUntil: null, updatedAt: base }) }],
    });

    await waitForCommitted(broker.kafka, groupId, TOPICS.readings, 30_000);
    await waitForCommitted(broker.kafka, groupId, TOPICS.alerts, 30_000);
    expect(await countReadings(handle.store, base - 1, Date.now() + 1)).toBe(200 * SENSORS_PER_RECORD + 1);
    const scores = await handle.store.queryScores({ machine: 'm0', from: base - 1, to: base + 1, maxPoints: 10 });
    expect(scores[0].points).toHaveLength(1);
    expect(await handle.store.queryAlerts({ from: base - 1, to: base + 1, limit: 10 })).toHaveLength(1);

    // The dead letter names the problem and keeps the bytes.
    const consumer = broker.kafka.consumer({ groupId: 'dl-reader' });
    await consumer.connect();
    await consumer.subscribe({ topic: TOPICS.deadLetter, fromBeginning: true });
    const letters: DeadLetter[] = [];
    await consumer.run({ eachMessage: async ({ message }) => void letters.push(DeadLetter.parse(JSON.parse(message.value!.toString()))) });
    for (let i = 0; i < 100 && letters.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
    await consumer.disconnect();
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({ code: 'STORAGE_RECORD_INVALID', component: 'storage', source: { topic: TOPICS.readings } });
    expect(Buffer.from(letters[0].rawBase64, 'base64').toString()).toBe('{"site":"plant","value":"NaN"');

    const metrics = await (await fetch(`http://127.0.0.1:${handle.httpPort}/metrics`)).text();
    expect(metrics).toMatch(/plantwatch_storage_points_written_total\{kind="readings"[^}]*\} 2001/);
    expect(metrics).toMatch(/plantwatch_storage_dead_lettered_total\{code="STORAGE_RECORD_INVALID"[^}]*\} 1/);
    expect(metrics).toMatch(/plantwatch_storage_write_duration_seconds_bucket/);
    expect(metrics).toMatch(/plantwatch_storage_consumer_lag_messages/);
    const health = await (await fetch(`http://127.0.0.1:${handle.httpPort}/healthz`)).json();
    expect(health).toMatchObject({ ok: true, store: 'embedded' });

    await producer.disconnect();
    await handle.close();
    await handle.close();
  });

  it('crash: the writer process is SIGKILLed mid-stream and restarted; no reading is missing or doubled', async () => {
    const dataDir = tmp();
    const groupId = 'storage-crash';
    const env = { KAFKA_BROKERS: broker.brokers.join(','), INFLUX_URL: '', DATA_DIR: dataDir, STORAGE_CONFIG: JSON.stringify({ groupId, lingerMs: 20, batchSize: 500, sessionTimeoutMs: 4000, heartbeatIntervalMs: 400 }) };
    const producer = broker.kafka.producer();
    await producer.connect();
    const base = Date.now() - 60_000;
    const stream = startStream(producer, { base, perTick: 20, tickMs: 10 });

    const t0 = Date.now();
    let runner = await spawnRunner(env);
    // Let it consume for a while, then kill it without warning while the stream goes on.
    await new Promise((r) => setTimeout(r, 2500));
    runner.kill('SIGKILL');
    await runner.exited;
    const atKill = stream.records;
    await new Promise((r) => setTimeout(r, 500));
    runner = await spawnRunner(env);
    await new Promise((r) => setTimeout(r, 1500));
    const sent = await stream.stop();
    expect(atKill).toBeGreaterThan(100);
    expect(sent).toBeGreaterThan(atKill);
    const t1 = Date.now();
    await waitForCommitted(broker.kafka, groupId, TOPICS.readings, 60_000);
    console.log(`crash test: ${sent} records, restart+stream ${t1 - t0} ms, caught up ${Date.now() - t1} ms later`);
    expect(await runner.stop()).toBe(0);
    await producer.disconnect();

    const store = new EmbeddedStore({ ...DEFAULT_STORE_OPTIONS, logger: silentLogger(), embeddedPath: join(dataDir, 'storage', 'plantwatch.duckdb') });
    await store.init();
    expect(await countReadings(store, base - 1, Date.now() + 1)).toBe(sent * SENSORS_PER_RECORD);
    // Latest values survived too: each machine's newest record (machine m(i % 6), ts base + i/6).
    const latest = await store.latest({});
    expect(latest).toHaveLength(6 * SENSORS_PER_RECORD);
    for (const l of latest) {
      const k = Number(l.machine.slice(1));
      const lastIndex = sent - 1 - ((sent - 1 - k + 6) % 6);
      expect(l.ts, `${l.machine}/${l.sensor}`).toBe(base + Math.floor(lastIndex / 6));
    }
    await store.close();
  }, 120_000);
});
