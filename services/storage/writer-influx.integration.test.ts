/**
 * The storage writer against a real InfluxDB 1.6 and the embedded Kafka broker:
 * an outage under a steady stream (5 s here, 30 s with PLANTWATCH_LONG=1), points InfluxDB refuses
 * (400), and a SIGKILLed writer process. Every reading is counted by an InfluxQL query.
 */
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { silentLogger } from '../../common/logger.ts';
import { createRegistry } from '../../common/metrics.ts';
import { DeadLetter } from '../../common/messages.ts';
import { TOPICS } from '../../common/topics.ts';
import { describeWith } from '../../test/helpers/integration.ts';
import { startInfluxd, type InfluxdHandle } from '../../test/helpers/influxd.ts';
import { startTestBroker, type TestBroker } from '../../test/helpers/kafka.ts';
import { SENSORS_PER_RECORD, killLeftoverRunners, spawnRunner, startStream, waitForCommitted } from '../../test/helpers/storage-stream.ts';
import { StorageConfig, start } from './index.ts';
import { RAW_RP } from './influx-store.ts';

const LONG = process.env.PLANTWATCH_LONG === '1';
const OUTAGE_MS = LONG ? 30_000 : 5_000;

describeWith(['influxd'], 'services/storage writer on Kafka → InfluxDB 1.6', () => {
  let influxd: InfluxdHandle;
  // One broker per test: each test's consumer group reads its topics from the beginning.
  let broker: TestBroker;
  beforeAll(async () => {
    influxd = await startInfluxd();
  });
  beforeEach(async () => {
    broker = await startTestBroker();
  });
  afterEach(async () => {
    killLeftoverRunners();
    await broker?.close();
  });
  afterAll(async () => {
    await influxd?.close();
  });

  const count = async (db: string): Promise<number> => {
    const res = await influxd.query(`SELECT count("value") FROM "${db}"."${RAW_RP}"."readings"`, db);
    return Number(res.results[0].series?.[0]?.values[0][1] ?? 0);
  };
  const waitForCount = async (db: string, expected: number, timeoutMs: number): Promise<number> => {
    const end = Date.now() + timeoutMs;
    let n = 0;
    while (Date.now() < end) {
      n = await count(db);
      if (n >= expected) return n;
      await new Promise((r) => setTimeout(r, 250));
    }
    return n;
  };

  it(`outage: InfluxDB stopped for ${OUTAGE_MS / 1000} s under a steady stream, every reading stored exactly once, no writer restart`, async () => {
    const db = 'outage';
    const groupId = 'storage-outage';
    const metrics = createRegistry('storage');
    const handle = await start(
      StorageConfig.parse({ httpPort: 0, groupId, lingerMs: 20, retryInitialDelayMs: 100, retryMaxDelayMs: 1000, requestTimeoutMs: 2000 }),
      { logger: silentLogger(), metrics, kafka: broker.kafka, dataDir: '/nonexistent' },
      { url: `${influxd.baseUrl}/${db}` },
    );
    const producer = broker.kafka.producer();
    await producer.connect();
    const base = Date.now() - 10 * 60_000;
    const stream = startStream(producer, { base, perTick: 5, tickMs: 20 });
    await new Promise((r) => setTimeout(r, 1500));
    expect(await count(db)).toBeGreaterThan(0);

    await influxd.stop();
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
    const duringOutage = stream.records;
    const health = await (await fetch(`http://127.0.0.1:${handle.httpPort}/healthz`)).json();
    expect(health).toMatchObject({ ok: false, storeUp: false });
    await influxd.start();
    await new Promise((r) => setTimeout(r, 1500));
    const sent = await stream.stop();
    expect(duringOutage).toBeGreaterThan(100);

    const expected = sent * SENSORS_PER_RECORD;
    const caughtUpAt = Date.now();
    expect(await waitForCount(db, expected, 60_000)).toBe(expected);
    console.log(`outage ${OUTAGE_MS / 1000} s: ${sent} records / ${expected} readings sent (${duringOutage} records by the end of the outage); all stored ${Date.now() - caughtUpAt} ms after the stream stopped`);
    await waitForCommitted(broker.kafka, groupId, TOPICS.readings, 30_000);
    // Exactly once: nothing beyond what was sent (replays overwrite the same points).
    expect(await count(db)).toBe(expected);
    const text = await (await fetch(`http://127.0.0.1:${handle.httpPort}/metrics`)).text();
    const retries = [...text.matchAll(/^plantwatch_storage_write_retries_total\{[^}]*\} (\d+)/gm)].reduce((s, m) => s + Number(m[1]), 0);
    expect(retries).toBeGreaterThan(0);
    expect(text).toMatch(/^plantwatch_storage_store_up(\{[^}]*\})? 1$/m);
    await producer.disconnect();
    await handle.close();
  }, 120_000 + OUTAGE_MS);

  it('starts while InfluxDB is down, sets the database up once it answers, and loses nothing', async () => {
    const db = 'late';
    const groupId = 'storage-late';
    await influxd.stop();
    const handle = await start(StorageConfig.parse({ httpPort: 0, groupId, lingerMs: 20, retryInitialDelayMs: 100, retryMaxDelayMs: 500, requestTimeoutMs: 2000 }), { logger: silentLogger(), metrics: createRegistry('storage'), kafka: broker.kafka, dataDir: '/nonexistent' }, { url: `${influxd.baseUrl}/${db}` });
    const producer = broker.kafka.producer();
    await producer.connect();
    const base = Date.now() - 60_000;
    const stream = startStream(producer, { base, perTick: 5, tickMs: 20, maxRecords: 200 });
    await new Promise((r) => setTimeout(r, 1500));
    await influxd.start();
    const sent = await stream.stop();
    expect(await waitForCount(db, sent * SENSORS_PER_RECORD, 30_000)).toBe(sent * SENSORS_PER_RECORD);
    const cqs = await influxd.query('SHOW CONTINUOUS QUERIES');
    expect(cqs.results[0].series!.find((s) => s.name === db)!.values).toHaveLength(4);
    await producer.disconnect();
    await handle.close();
  });

  it('points InfluxDB refuses (400) are dead-lettered and counted, the rest of the batch is stored', async () => {
    const db = 'conflict';
    const groupId = 'storage-conflict';
    const handle = await start(StorageConfig.parse({ httpPort: 0, groupId, lingerMs: 20 }), { logger: silentLogger(), metrics: createRegistry('storage'), kafka: broker.kafka, dataDir: '/nonexistent' }, { url: `${influxd.baseUrl}/${db}` });
    const t = Date.now() - 60_000;
    // Someone wrote `unit` as a number into this shard: our string units now conflict (HTTP 400).
    const res = await fetch(`${influxd.baseUrl}/write?db=${db}&precision=ms`, { method: 'POST', body: `readings,line=L1,machine=other,sensor=s,site=plant value=1,unit=5 ${t}` });
    expect(res.status).toBe(204);
    const producer = broker.kafka.producer();
    await producer.connect();
    const reading = (sensor: string, unit?: string) => ({ site: 'plant', line: 'L1', machine: 'mix', sensor, ts: t + 1, value: 2, receivedAt: t + 2, ...(unit ? { unit } : {}) });
    await producer.send({
      topic: TOPICS.readings,
      messages: [{ key: 'plant/L1/mix', value: JSON.stringify([reading('a', 'degC'), reading('b'), reading('c', 'bar'), reading('d'), reading('e')]) }],
    });
    await waitForCommitted(broker.kafka, groupId, TOPICS.readings, 30_000);
    const stored = await influxd.query(`SELECT "value" FROM "${db}"."${RAW_RP}"."readings" WHERE "machine" = 'mix' GROUP BY "sensor"`, db);
    expect(stored.results[0].series!.map((s) => s.tags!.sensor).sort()).toEqual(['b', 'd', 'e']);

    const consumer = broker.kafka.consumer({ groupId: 'dl-conflict' });
    await consumer.connect();
    await consumer.subscribe({ topic: TOPICS.deadLetter, fromBeginning: true });
    const letters: DeadLetter[] = [];
    await consumer.run({ eachMessage: async ({ message }) => void letters.push(DeadLetter.parse(JSON.parse(message.value!.toString()))) });
    for (let i = 0; i < 100 && letters.filter((l) => l.code === 'STORAGE_WRITE_REJECTED').length < 2; i++) await new Promise((r) => setTimeout(r, 100));
    await consumer.disconnect();
    const rejected = letters.filter((l) => l.code === 'STORAGE_WRITE_REJECTED');
    expect(rejected.map((l) => JSON.parse(Buffer.from(l.rawBase64, 'base64').toString()).sensor).sort()).toEqual(['a', 'c']);
    expect(rejected[0].reason).toMatch(/field type conflict/);
    const text = await (await fetch(`http://127.0.0.1:${handle.httpPort}/metrics`)).text();
    expect(text).toMatch(/plantwatch_storage_points_rejected_total\{kind="readings",code="STORAGE_WRITE_REJECTED"[^}]*\} 2/);
    await producer.disconnect();
    await handle.close();
  });

  it('crash: the writer process is SIGKILLed mid-stream and restarted; 0 readings missing', async () => {
    const db = 'crash';
    const groupId = 'storage-crash-influx';
    const env = {
      KAFKA_BROKERS: broker.brokers.join(','),
      INFLUX_URL: `${influxd.baseUrl}/${db}`,
      DATA_DIR: '/nonexistent',
      STORAGE_CONFIG: JSON.stringify({ groupId, lingerMs: 20, batchSize: 1000, sessionTimeoutMs: 4000, heartbeatIntervalMs: 400 }),
    };
    const producer = broker.kafka.producer();
    await producer.connect();
    const base = Date.now() - 10 * 60_000;
    const stream = startStream(producer, { base, perTick: 10, tickMs: 10 });
    let runner = await spawnRunner(env);
    // Kill once it is visibly writing.
    await waitForCount(db, 2000, 30_000);
    runner.kill('SIGKILL');
    await runner.exited;
    const storedAtKill = await count(db);
    runner = await spawnRunner(env);
    await new Promise((r) => setTimeout(r, 1000));
    const sent = await stream.stop();
    expect(storedAtKill).toBeLessThan(sent * SENSORS_PER_RECORD);
    await waitForCommitted(broker.kafka, groupId, TOPICS.readings, 60_000);
    expect(await count(db)).toBe(sent * SENSORS_PER_RECORD);
    expect(await runner.stop()).toBe(0);
    await producer.disconnect();
  }, 120_000);
});
