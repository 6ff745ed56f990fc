/**
 * The anomaly service against the embedded Kafka broker, in-process, with the real detector:
 * readings in → scores out, dead letters, checkpoint/restore, re-scoring by timestamp.
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ensureTopics, type Producer } from '../../common/kafka.ts';
import { silentLogger } from '../../common/logger.ts';
import { createRegistry } from '../../common/metrics.ts';
import { DeadLetter, type SensorScore, type Score } from '../../common/messages.ts';
import { TOPICS } from '../../common/topics.ts';
import { describeWith } from '../../test/helpers/integration.ts';
import { startTestBroker, type TestBroker } from '../../test/helpers/kafka.ts';
import { AnomalyConfig, start, type AnomalyHandle } from './index.ts';
import { createDetector, DetectorConfig } from './detector/index.ts';
import { ModelStore } from './model-store.ts';
import { sensorScoreForWire } from './records.ts';
import { RESCORE_TOPIC } from './config.schema.ts';
import { collect, decodeDeadLetters, decodeScores, makeReadings, produceReadings, readingId, waitFor, type Collector } from './test-support/kafka-helpers.ts';

describeWith([], 'services > anomaly > service (embedded Kafka)', () => {
  let k: TestBroker;
  let producer: Producer;
  let scores: Collector<Score>;
  let rescored: Collector<Score>;
  let dead: Collector<DeadLetter>;
  const dirs: string[] = [];
  const handles: AnomalyHandle[] = [];

  /** Each test reads its own readings topic, so a new consumer group does not replay other tests' data. */
  async function service(dataDir: string, inputTopic: string, overrides: Record<string, unknown> = {}): Promise<AnomalyHandle> {
    await ensureTopics(k.kafka, [{ topic: inputTopic, numPartitions: 3 }]);
    const h = await start(
      AnomalyConfig.parse({
        httpPort: 0,
        inputTopic,
        groupId: `anomaly-${inputTopic}`,
        group: { sessionTimeoutMs: 3000, heartbeatIntervalMs: 300, rebalanceTimeoutMs: 5000 },
        ...overrides,
      }),
      { logger: silentLogger(), metrics: createRegistry('anomaly'), kafka: k.kafka, dataDir },
    );
    handles.push(h);
    return h;
  }

  async function tempDir(): Promise<string> {
    const d = await mkdtemp(join(tmpdir(), 'pw-anomaly-'));
    dirs.push(d);
    return d;
  }

  const sensorScores = (c: Collector<Score>, machinePrefix: string) =>
    c.items.filter((s): s is SensorScore => s.kind === 'sensor' && s.machine.startsWith(machinePrefix));

  beforeAll(async () => {
    k = await startTestBroker();
    await ensureTopics(k.kafka, [
      { topic: TOPICS.scores, numPartitions: 3 },
      { topic: TOPICS.deadLetter, numPartitions: 1 },
      { topic: RESCORE_TOPIC, numPartitions: 3 },
    ]);
    producer = k.kafka.producer();
    await producer.connect();
    scores = await collect(k.kafka, TOPICS.scores, decodeScores);
    rescored = await collect(k.kafka, RESCORE_TOPIC, decodeScores);
    dead = await collect(k.kafka, TOPICS.deadLetter, decodeDeadLetters);
  });

  afterAll(async () => {
    for (const h of handles) await h.close();
    await Promise.all([scores?.stop(), rescored?.stop(), dead?.stop()]);
    await producer?.disconnect();
    await k?.close();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('scores every reading (single records and arrays), one record per machine, and dead-letters bad records without stopping', async () => {
    const h = await service(await tempDir(), 'readings-basic');
    const readings = makeReadings({ machines: 4, sensors: 3, perStream: 20, site: 'basic' });
    await produceReadings(producer, 'readings-basic', readings.slice(0, 120), { perRecord: 1 });
    // Garbage in the middle of the stream...
    await producer.send({
      topic: 'readings-basic',
      acks: -1,
      messages: [
        { key: 'basic/line1/m0', value: 'not json' },
        { key: 'basic/line1/m0', value: JSON.stringify({ ...readings[0], value: 'hot' }) },
        { key: 'basic/line1/m0', value: JSON.stringify({ site: 'basic' }) },
      ],
    });
    // ...and the service goes on with what follows.
    await produceReadings(producer, 'readings-basic', readings.slice(120), { perRecord: 6 });

    const want = new Set(readings.map(readingId));
    await waitFor(() => new Set(sensorScores(scores, 'm').filter((s) => s.site === 'basic').map(readingId)).size === want.size, 30_000, 'all readings scored');
    const got = sensorScores(scores, 'm').filter((s) => s.site === 'basic');
    expect(new Set(got.map(readingId))).toEqual(want);
    expect(got.every((s) => s.modelVersion === DetectorConfig.parse({}).modelVersion)).toBe(true);
    expect(got.some((s) => s.forecast !== undefined)).toBe(true);
    const machineScores = scores.items.filter((s) => s.kind === 'machine' && s.site === 'basic');
    expect(machineScores.length).toBeGreaterThan(0);
    // Key = the machine of every score in the record.
    for (const m of scores.messages) {
      const inRecord = decodeScores(m);
      expect(inRecord.every((s) => `${s.site}/${s.line}/${s.machine}` === m.key!.toString())).toBe(true);
    }

    await waitFor(() => dead.items.filter((d) => d.component === 'anomaly').length >= 3, 10_000, 'dead letters');
    const letters = dead.items.filter((d) => d.component === 'anomaly');
    for (const d of letters) expect(DeadLetter.safeParse(d).success).toBe(true);
    expect(letters.map((d) => d.code).sort()).toEqual(['PAYLOAD_NOT_JSON', 'READING_INVALID', 'READING_INVALID']);
    expect(letters.find((d) => d.code === 'READING_INVALID' && d.reason.includes('value'))).toBeDefined();
    expect(Buffer.from(letters.find((d) => d.code === 'PAYLOAD_NOT_JSON')!.rawBase64, 'base64').toString()).toBe('not json');

    const metrics = await (await fetch(`${h.opsUrl}/metrics`)).text();
    expect(metrics).toMatch(/plantwatch_anomaly_readings_scored_total\{pipeline="live"[^}]*\} 240\n/);
    expect(metrics).toMatch(/plantwatch_anomaly_dead_lettered_total\{pipeline="live",code="READING_INVALID"[^}]*\} 2\n/);
    expect(metrics).toMatch(/plantwatch_anomaly_streams_active(\{[^}]*\})? 12\n/);
    expect(metrics).toMatch(/plantwatch_anomaly_scoring_latency_seconds_count(\{[^}]*\})? 143\n/);
    const health = (await (await fetch(`${h.opsUrl}/healthz`)).json()) as { ok: boolean; partitions: number[] };
    expect(health.ok).toBe(true);
    expect(health.partitions).toEqual([0, 1, 2]);
    await h.close();
  });

  it('a checkpoint written on close is restored on restart and scores exactly as the detector it saved', async () => {
    const dataDir = await tempDir();
    const first = await service(dataDir, 'readings-ckpt');
    const history = makeReadings({ machines: 1, sensors: 2, perStream: 150, site: 'ckpt' });
    await produceReadings(producer, 'readings-ckpt', history, { perRecord: 10 });
    await waitFor(() => sensorScores(scores, 'm').filter((s) => s.site === 'ckpt').length >= history.length, 30_000, 'history scored');
    await first.close();

    const store = new ModelStore(join(dataDir, 'anomaly', 'models'));
    const version = DetectorConfig.parse({}).modelVersion;
    expect(await store.current()).toBe(version);
    const saved = await store.load(version);
    expect(saved.metadata!.training.readings).toBe(history.length);
    expect(saved.metadata!.streams).toBe(2);
    expect(Object.values(saved.metadata!.training.partitions)).toHaveLength(1);

    const second = await service(dataDir, 'readings-ckpt');
    expect((await second.models()).live).toBe(version);
    // One record: the restarted service scores exactly this batch in one call.
    const next = makeReadings({ machines: 1, sensors: 2, perStream: 10, site: 'ckpt', t0: 1_700_000_000_000 + 150_000 });
    await producer.send({ topic: 'readings-ckpt', acks: -1, messages: [{ key: 'ckpt/line1/m0', value: JSON.stringify(next) }] });
    const ids = new Set(next.map(readingId));
    await waitFor(() => sensorScores(scores, 'm').filter((s) => ids.has(readingId(s))).length >= next.length, 30_000, 'new readings scored');
    const live = sensorScores(scores, 'm').filter((s) => ids.has(readingId(s)));

    const restored = await createDetector(DetectorConfig.parse({}));
    await restored.restore(saved.snapshot as Parameters<typeof restored.restore>[0]);
    const expected = (await restored.scoreBatch(next)).sensor;
    // Exactly, at wire precision (model outputs to 7 significant digits).
    expect(live).toEqual(JSON.parse(JSON.stringify(expected.map(sensorScoreForWire))));
    // And the state mattered: a fresh model scores the same readings differently.
    const fresh = await createDetector(DetectorConfig.parse({}));
    expect(JSON.parse(JSON.stringify((await fresh.scoreBatch(next)).sensor.map(sensorScoreForWire)))).not.toEqual(live);
    restored.dispose();
    fresh.dispose();
    await second.close();
  });

  it('a damaged last checkpoint does not keep the service down: it starts fresh and keeps the damaged folder aside', async () => {
    const dataDir = await tempDir();
    const models = join(dataDir, 'anomaly', 'models');
    const version = DetectorConfig.parse({}).modelVersion;
    await mkdir(join(models, version), { recursive: true });
    await writeFile(join(models, version, 'model.json'), '{"format":"plantwatch-anomaly-detector","formatVersion":1,"snapshot":{"version":"garbage"}}');
    await writeFile(join(models, 'CURRENT'), `${version}\n`);
    const h = await service(dataDir, 'readings-damaged');
    expect((await (await fetch(`${h.opsUrl}/healthz`)).json()) as { ok: boolean }).toMatchObject({ ok: true, streams: 0 });
    expect((await readdir(models)).filter((n) => n.startsWith(`.damaged-${version}-`))).toHaveLength(1);
    await h.close();
    expect((await new ModelStore(models).load(version)).metadata?.origin).toBe('fresh');
  });

  it('re-scores history from a point in time into a new model version while live scoring goes on', async () => {
    const h = await service(await tempDir(), 'readings-replay');
    const t0 = 1_600_000_000_000;
    const old = makeReadings({ machines: 2, sensors: 2, perStream: 30, site: 'replay', t0 });
    const recent = makeReadings({ machines: 2, sensors: 2, perStream: 30, site: 'replay', t0: t0 + 30_000 });
    await produceReadings(producer, 'readings-replay', old, { perRecord: 5, timestamp: t0 });
    await produceReadings(producer, 'readings-replay', recent, { perRecord: 5, timestamp: t0 + 60_000 });
    await producer.send({ topic: 'readings-replay', acks: -1, messages: [{ key: 'replay/line1/m0', value: 'garbage', timestamp: String(t0 + 60_000) }] });
    const all = [...old, ...recent];
    await waitFor(() => sensorScores(scores, 'm').filter((s) => s.site === 'replay').length >= all.length, 30_000, 'live scored');

    const res = await fetch(`${h.opsUrl}/rescore`, { method: 'POST', body: JSON.stringify({ from: new Date(t0 + 60_000).toISOString(), modelVersion: 'replay-v2' }) });
    expect(res.status).toBe(202);
    const job = (await res.json()) as { id: string; state: string; partitions: { startOffset: string; endOffset: string }[] };
    // Live keeps scoring while the job runs.
    const live = makeReadings({ machines: 2, sensors: 2, perStream: 10, site: 'replay', t0: t0 + 60_000 });
    await produceReadings(producer, 'readings-replay', live, { perRecord: 5 });
    const done = await h.waitForJob(job.id);
    expect(done.state).toBe('done');
    await waitFor(() => sensorScores(scores, 'm').filter((s) => s.site === 'replay').length >= all.length + live.length, 30_000, 'live scored after');

    await waitFor(() => sensorScores(rescored, 'm').filter((s) => s.site === 'replay').length >= recent.length, 10_000, 'rescored collected');
    // The replay counts the garbage record but does not dead-letter it a second time.
    await waitFor(() => dead.items.some((d) => d.source.topic === 'readings-replay'), 10_000, 'live dead letter');
    await new Promise((r) => setTimeout(r, 500));
    expect(dead.items.filter((d) => d.source.topic === 'readings-replay')).toHaveLength(1);
    const replayed = sensorScores(rescored, 'm').filter((s) => s.site === 'replay');
    // Exactly the readings at or after `from` that were in the log when the job started.
    expect(new Set(replayed.map(readingId))).toEqual(new Set(recent.map(readingId)));
    expect(replayed.every((s) => s.modelVersion === 'replay-v2')).toBe(true);
    expect(done.readingsScored).toBe(recent.length);
    const liveScores = sensorScores(scores, 'm').filter((s) => s.site === 'replay');
    expect(liveScores.every((s) => s.modelVersion === h.modelVersion())).toBe(true);
    expect(h.modelVersion()).not.toBe('replay-v2');

    const models = await h.models();
    const v2 = models.versions.find((m) => m.modelVersion === 'replay-v2')!;
    expect(v2.origin).toBe('rescore');
    expect(v2.training.readings).toBe(recent.length);
    expect(v2.training.firstEventTs).toBe(t0 + 30_000);
    expect(v2.details).toMatchObject({ from: t0 + 60_000, groupId: 'plantwatch-anomaly-rescore-replay-v2' });

    // The same name twice is refused; promoting makes it live.
    const again = await fetch(`${h.opsUrl}/rescore`, { method: 'POST', body: JSON.stringify({ from: t0, modelVersion: 'replay-v2' }) });
    expect(again.status).toBe(409);
    const bad = await fetch(`${h.opsUrl}/rescore`, { method: 'POST', body: JSON.stringify({ from: 'yesterday' }) });
    expect(bad.status).toBe(400);
    const promoted = await fetch(`${h.opsUrl}/promote`, { method: 'POST', body: JSON.stringify({ modelVersion: 'replay-v2' }) });
    expect(promoted.status).toBe(200);
    expect(h.modelVersion()).toBe('replay-v2');
    const after = makeReadings({ machines: 1, sensors: 1, perStream: 3, site: 'replay', t0: t0 + 200_000 });
    await produceReadings(producer, 'readings-replay', after);
    const afterIds = new Set(after.map(readingId));
    await waitFor(() => sensorScores(scores, 'm').filter((s) => afterIds.has(readingId(s))).length >= 3, 30_000, 'scored by the promoted version');
    expect(sensorScores(scores, 'm').filter((s) => afterIds.has(readingId(s))).every((s) => s.modelVersion === 'replay-v2')).toBe(true);
    await h.close();
  });

  it('POST /retrain learns a fresh model from history, checkpoints it and makes it live; a restart keeps it', async () => {
    const dataDir = await tempDir();
    const topic = 'readings-retrain';
    let h = await service(dataDir, topic, { limits: { 'retrain/line1/m0/s0': { upper: 1000 } } });
    const t0 = 1_600_000_000_000;
    const history = makeReadings({ machines: 1, sensors: 2, perStream: 40, site: 'retrain', t0 });
    await produceReadings(producer, topic, history, { perRecord: 4, timestamp: t0 });
    await waitFor(() => sensorScores(scores, 'm').filter((s) => s.site === 'retrain').length >= history.length, 30_000, 'live scored');
    const before = h.modelVersion();

    const res = await fetch(`${h.opsUrl}/retrain`, { method: 'POST', body: JSON.stringify({ from: t0, modelVersion: 'retrained-1' }) });
    expect(res.status).toBe(202);
    const done = await h.waitForJob(((await res.json()) as { id: string }).id);
    expect(done).toMatchObject({ state: 'done', promoted: true, readingsScored: history.length, kind: 'retrain' });
    expect(h.modelVersion()).toBe('retrained-1');
    const models = await h.models();
    expect(models.live).toBe('retrained-1');
    expect(models.versions.map((m) => m.modelVersion).sort()).toEqual([before, 'retrained-1'].sort());
    expect(models.versions.find((m) => m.modelVersion === 'retrained-1')!.origin).toBe('retrain');
    const metrics = await (await fetch(`${h.opsUrl}/metrics`)).text();
    expect(metrics).toMatch(/plantwatch_anomaly_model_info\{model_version="retrained-1",origin="retrain"[^}]*\} 1\n/);

    // Configured limits reach the promoted model: a rising stream gets a time-to-limit.
    const rising = Array.from({ length: 30 }, (_, i) => ({ site: 'retrain', line: 'line1', machine: 'm0', sensor: 's0', ts: t0 + 100_000 + i * 1000, value: 900 + i * 2, receivedAt: 0 }));
    await produceReadings(producer, topic, rising, { perRecord: 30 });
    const risingIds = new Set(rising.map(readingId));
    await waitFor(() => sensorScores(scores, 'm').filter((s) => risingIds.has(readingId(s))).length >= rising.length, 30_000, 'rising scored');
    const last = sensorScores(scores, 'm').filter((s) => risingIds.has(readingId(s))).at(-1)!;
    expect(last.modelVersion).toBe('retrained-1');
    expect(typeof last.timeToLimitMs).toBe('number');

    await h.close();
    h = await service(dataDir, topic);
    expect(h.modelVersion()).toBe('retrained-1');
    await h.close();

    // Another instance, elsewhere, loads that model as a pre-trained file.
    const folder = join(dataDir, 'anomaly', 'models', 'retrained-1');
    const other = await service(await tempDir(), topic, { model: { path: join(folder, 'model.json') }, groupId: 'retrain-other' });
    expect(other.modelVersion()).toBe('retrained-1');
    const meta = (await other.checkpoint());
    expect(meta).toMatchObject({ modelVersion: 'retrained-1', origin: 'pretrained', parent: 'retrained-1', details: { source: folder + '/model.json' } });
    await other.close();
  });
});

