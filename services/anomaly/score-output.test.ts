import type { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTopics, type Consumer } from '../../common/kafka.ts';
import { ThreadedProducer } from '../../common/kafka-producer-thread.ts';
import { silentLogger } from '../../common/logger.ts';
import type { MachineScore } from '../../common/messages.ts';
import { ReadingBatch, SeriesEntry, SeriesInterner } from '../../common/reading-batch.ts';
import { startTestBroker, type TestBroker } from '../../test/helpers/kafka.ts';
import { SensorScoreColumns, TTL_NONE } from './score-columns.ts';
import { ScoreEncoder } from './score-encoder.ts';
import { InlineScoreOutput, SCORE_OUTPUT_EXTENSION, ThreadScoreOutput, createScoreOutput } from './score-output.ts';
import { packScoreRows, unpackScoreRows, UnknownSeriesError } from './score-rows.ts';
import { Rng } from './detector/stats.ts';
import { waitFor } from './test-support/kafka-helpers.ts';

/** A seeded generator (the detector's own), so a failure reproduces. */
function prng(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.next();
}

interface Scored {
  batch: ReadingBatch;
  cols: SensorScoreColumns;
  machine: MachineScore[];
}

/** A scored batch over `machines` × `sensors`, some points rejected (no row), all optional fields in use. */
function scoredBatch(rnd: () => number, interner: SeriesInterner, machines: string[], sensors: string[], points: number, ts0: number): Scored {
  const batch = new ReadingBatch(4);
  for (let i = 0; i < points; i++) {
    const machine = machines[Math.floor(rnd() * machines.length)];
    const sensor = sensors[Math.floor(rnd() * sensors.length)];
    const value = Math.round((rnd() - 0.5) * 1e6) / 1e3;
    batch.pushReading({ site: 'plant1', line: 'l2', machine, sensor, ts: ts0 + i, value, receivedAt: ts0 + i }, interner);
  }
  const cols = new SensorScoreColumns(2);
  for (let i = 0; i < points; i++) {
    if (rnd() < 0.1) continue; // rejected by the detector
    const k = cols.add(i);
    cols.predicted[k] = (rnd() - 0.5) * 100;
    cols.lower[k] = cols.predicted[k] - rnd() * 5;
    cols.upper[k] = cols.predicted[k] + rnd() * 5;
    cols.rawScore[k] = rnd() * 8;
    cols.likelihood[k] = rnd();
    cols.warmingUp[k] = rnd() < 0.2 ? 1 : 0;
    if (rnd() < 0.5) {
      cols.forecastHorizonMs[k] = 600_000;
      cols.forecastValue[k] = rnd() * 100;
      cols.forecastLower[k] = rnd() * 50;
      cols.forecastUpper[k] = 50 + rnd() * 50;
    }
    const t = rnd();
    if (t < 0.2) cols.timeToLimitMs[k] = TTL_NONE;
    else if (t < 0.4) cols.timeToLimitMs[k] = Math.floor(rnd() * 1e7);
  }
  const machine: MachineScore[] = machines
    .filter(() => rnd() < 0.7)
    .map((m) => ({
      kind: 'machine',
      site: 'plant1',
      line: 'l2',
      machine: m,
      ts: ts0 + points,
      rawScore: rnd() * 3,
      likelihood: rnd(),
      contributions: Object.fromEntries(sensors.map((s) => [s, rnd()])),
      modelVersion: 'v7',
      warmingUp: false,
    }));
  return { batch, cols, machine };
}

const text = (v: string | Buffer) => (typeof v === 'string' ? v : v.toString('utf8'));

describe('services > anomaly > score output: packed rows', () => {
  it('encode to the same records as the columns they were packed from', () => {
    const rnd = prng(3);
    const interner = new SeriesInterner();
    const direct = new ScoreEncoder();
    const threadSide = new ScoreEncoder();
    const mirror = new Map<number, SeriesEntry>();
    for (let round = 0; round < 200; round++) {
      const machines = Array.from({ length: 1 + Math.floor(rnd() * 5) }, () => `m${Math.floor(rnd() * 20)}`);
      const s = scoredBatch(rnd, interner, machines, ['temp', 'vib', 'amps'], Math.floor(rnd() * 60), 1_700_000_000_000 + round * 1000);
      const max = 1 + Math.floor(rnd() * 10);
      const headers = round % 3 === 0 ? { 'plantwatch-rescore-job': `j${round}` } : undefined;
      const expected = direct.encode(s.cols, s.batch, s.machine, 'v7', max, headers).map((m) => ({ key: m.key, value: text(m.value), headers: m.headers }));
      const { rows, series } = packScoreRows(s.cols, s.batch);
      // The thread side gets copies of the series, as it does through the structured clone.
      for (const e of series) if (!mirror.has(e.id)) mirror.set(e.id, new SeriesEntry(e.id, e.site, e.line, e.machine, e.sensor));
      const { cols, points } = unpackScoreRows(rows.slice(0), s.cols.n, mirror);
      const actual = threadSide.encode(cols, points, s.machine, 'v7', max, headers).map((m) => ({ key: m.key, value: text(m.value), headers: m.headers }));
      expect(actual).toEqual(expected);
    }
  });

  it('a row of a series the thread was never told about fails the call as retriable', () => {
    const interner = new SeriesInterner();
    const s = scoredBatch(prng(5), interner, ['m1'], ['temp'], 5, 0);
    const { rows } = packScoreRows(s.cols, s.batch);
    const err = (() => {
      try {
        unpackScoreRows(rows, s.cols.n, new Map());
      } catch (e) {
        return e as UnknownSeriesError;
      }
    })();
    expect(err).toBeInstanceOf(UnknownSeriesError);
    expect(err?.retriable).toBe(true);
    expect(() => unpackScoreRows(rows, s.cols.n + 1, new Map())).toThrow(/bytes for/);
  });
});

describe('services > anomaly > score output in the producer thread, on the embedded broker', () => {
  let k: TestBroker;
  let consumer: Consumer;
  const seen = new Map<string, { key: string; value: string; headers: Record<string, string> }[]>();

  beforeAll(async () => {
    k = await startTestBroker();
    await ensureTopics(k.kafka, ['scores-inline', 'scores-thread', 'scores-thread-b', 'letters-thread'].map((topic) => ({ topic, numPartitions: 2 })));
    consumer = k.kafka.consumer({ groupId: 'score-output-test', maxWaitTimeInMs: 20 });
    await consumer.connect();
    await consumer.subscribe({ topics: ['scores-inline', 'scores-thread', 'scores-thread-b', 'letters-thread'], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ topic, message }) => {
        const headers: Record<string, string> = {};
        for (const [h, v] of Object.entries(message.headers ?? {})) headers[h] = String(v);
        const list = seen.get(topic) ?? [];
        list.push({ key: message.key!.toString(), value: message.value!.toString(), headers });
        seen.set(topic, list);
      },
    });
  });

  afterAll(async () => {
    await consumer?.disconnect();
    await k?.close();
  });

  /** A topic's records per key in order (partitions keep per-key order only). */
  const byKey = (topic: string) => {
    const out = new Map<string, string[]>();
    for (const r of seen.get(topic) ?? []) out.set(r.key, [...(out.get(r.key) ?? []), r.value]);
    return out;
  };

  it('produces the records the pipeline thread would, through a thread restart, with two channels and dead letters', async () => {
    const thread = new ThreadedProducer(k.kafka.config!, { allowAutoTopicCreation: false }, silentLogger(), { extension: SCORE_OUTPUT_EXTENSION });
    const direct = k.kafka.producer({ allowAutoTopicCreation: false });
    await Promise.all([thread.connect(), direct.connect()]);
    const opts = { maxScoresPerRecord: 4, compression: 'none' as const };
    const viaThread = createScoreOutput(thread, { ...opts, topic: 'scores-thread' });
    const inline = createScoreOutput(direct, { ...opts, topic: 'scores-inline' });
    expect(viaThread).toBeInstanceOf(ThreadScoreOutput);
    expect(inline).toBeInstanceOf(InlineScoreOutput);
    // A second channel (a re-scoring job) whose interner hands out the same ids for other series.
    const channelB = createScoreOutput(thread, { ...opts, topic: 'scores-thread-b', headers: { 'plantwatch-rescore-job': 'b' } });
    const rnd = prng(11);
    const interner = new SeriesInterner();
    const internerB = new SeriesInterner();
    const expectedB: string[] = [];
    let sensorScores = 0;
    for (let round = 0; round < 6; round++) {
      if (round === 3) {
        // The thread dies: its series are gone; the next sends define them again.
        await (thread as unknown as { worker: Worker }).worker.terminate();
      }
      // Rounds 3..5 add no new series: only the restart makes the thread need them again.
      const machines = round < 3 ? [`m${round}`, `m${round + 10}`] : ['m0', 'm11'];
      const s = scoredBatch(rnd, interner, machines, ['temp', 'vib'], 30, 1_700_000_000_000 + round * 1000);
      sensorScores += s.cols.n;
      const letters = round === 1 ? [{ topic: 'letters-thread', messages: [{ key: 'plant1/l2/m1', value: '{"code":"READING_REJECTED"}' }] }] : [];
      const a = viaThread.prepare(s.cols, s.batch, s.machine, 'v7');
      const b = inline.prepare(s.cols, s.batch, s.machine, 'v7');
      // What the pipeline does: retry a failed send (here, the one that met the dying thread).
      await viaThread.send(a, letters).catch(() => viaThread.send(a, letters));
      await inline.send(b, []);
      viaThread.release(a);
      inline.release(b);
      const sb = scoredBatch(rnd, internerB, ['x1', 'x2'], ['rpm'], 10, 1_800_000_000_000 + round * 1000);
      expectedB.push(...new ScoreEncoder().encode(sb.cols, sb.batch, sb.machine, 'v8', 4, { 'plantwatch-rescore-job': 'b' }).map((m) => `${m.key} ${text(m.value)}`));
      await channelB.send(channelB.prepare(sb.cols, sb.batch, sb.machine, 'v8'), []);
    }
    const count = (topic: string) => seen.get(topic)?.length ?? 0;
    await waitFor(() => count('scores-inline') > 0 && count('scores-thread') >= count('scores-inline') && count('letters-thread') >= 1, 15_000, 'the score records');
    await waitFor(() => count('scores-thread-b') >= expectedB.length, 15_000, 'the second channel\'s records');
    expect(sensorScores).toBeGreaterThan(100);
    expect(byKey('scores-thread')).toEqual(byKey('scores-inline'));
    const b = (seen.get('scores-thread-b') ?? []).map((r) => `${r.key} ${r.value}`);
    expect(b.sort()).toEqual(expectedB.sort());
    expect(seen.get('scores-thread-b')!.every((r) => r.headers['plantwatch-rescore-job'] === 'b')).toBe(true);
    expect(seen.get('letters-thread')).toEqual([{ key: 'plant1/l2/m1', value: '{"code":"READING_REJECTED"}', headers: {} }]);
    viaThread.close();
    channelB.close();
    await Promise.all([thread.disconnect(), direct.disconnect()]);
  });
});
