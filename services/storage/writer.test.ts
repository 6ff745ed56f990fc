import { beforeEach, describe, expect, it } from 'vitest';
import type { Alert, DeadLetter, MachineScore, Reading, SensorScore } from '../../common/messages.ts';
import { silentLogger } from '../../common/logger.ts';
import { createRegistry } from '../../common/metrics.ts';
import { TOPICS } from '../../common/topics.ts';
import type { BatchWriteResult, StorageBackend } from './backend.ts';
import type { ReadingBatch } from '../../common/reading-batch.ts';
import type { WriteResult } from './store.ts';
import { StorageUnavailableError } from './errors.ts';
import type { CommittableOffset } from './offsets.ts';
import { StorageWriter, type WriterOptions, type WriterRecord } from './writer.ts';

/** Records what the writer sends; can be "down" (retriable errors) and can refuse chosen points. */
class RecordingStore {
  batches: { kind: string; size: number }[] = [];
  stored = new Map<string, Reading>();
  down = false;
  failures = 0;
  refuse: (r: Reading) => WriteResult['rejected'][number] | undefined = () => undefined;

  async writeReadings(rs: Reading[]): Promise<WriteResult> {
    await new Promise((r) => setImmediate(r));
    if (this.down) {
      this.failures++;
      throw new StorageUnavailableError('connection refused', { retryAfterMs: this.failures === 1 ? 30 : undefined });
    }
    this.batches.push({ kind: 'readings', size: rs.length });
    const rejected: WriteResult['rejected'] = [];
    for (const r of rs) {
      const rej = this.refuse(r);
      if (rej) rejected.push(rej);
      else this.stored.set(`${r.sensor}@${r.ts}`, r);
    }
    return { written: rs.length - rejected.length, rejected };
  }
  async writeScores(s: (SensorScore | MachineScore)[]): Promise<WriteResult> {
    this.batches.push({ kind: 'scores', size: s.length });
    return { written: s.length, rejected: [] };
  }
  async writeAlerts(a: Alert[]): Promise<WriteResult> {
    this.batches.push({ kind: 'alerts', size: a.length });
    return { written: a.length, rejected: [] };
  }
}

/** The same store taking readings in columns (the path the real stores offer), refusals by index. */
class ColumnRecordingStore extends RecordingStore {
  columnBatches = 0;
  async writeReadingBatch(batch: ReadingBatch): Promise<BatchWriteResult> {
    this.columnBatches++;
    const rs = batch.toReadings();
    const res = await this.writeReadings(rs);
    return { written: res.written, rejected: res.rejected.map((r) => ({ index: rs.indexOf(r.item as Reading), code: r.code, reason: r.reason })) };
  }
}

const OPTS: WriterOptions = { batchSize: 100, lingerMs: 20, concurrency: 2, maxBufferedPoints: 1000, retryInitialDelayMs: 5, retryMaxDelayMs: 20, commitIntervalMs: 5 };

let columns = false;
function setup(opts: Partial<WriterOptions> = {}) {
  const store = columns ? new ColumnRecordingStore() : new RecordingStore();
  const deadLetters: DeadLetter[] = [];
  const commits: CommittableOffset[][] = [];
  const metrics = createRegistry('storage');
  const writer = new StorageWriter(
    { ...OPTS, ...opts },
    {
      store: store as unknown as StorageBackend,
      logger: silentLogger(),
      metrics,
      deadLetter: async (dl) => {
        deadLetters.push(dl);
      },
      commit: async (o) => {
        commits.push(o);
      },
    },
  );
  const committed = () => {
    const last = new Map<string, string>();
    for (const round of commits) for (const o of round) last.set(`${o.topic}:${o.partition}`, o.offset);
    return Object.fromEntries(last);
  };
  return { store, writer, deadLetters, commits, committed, metrics };
}

let seq = 0;
function readingRecord(partition: number, offset: number, n: number, t0 = 1_700_000_000_000): WriterRecord {
  const rs: Reading[] = Array.from({ length: n }, (_, i) => ({ site: 's', line: 'l', machine: `m${partition}`, sensor: `x${i % 5}`, ts: t0 + seq++, value: i, receivedAt: t0 }));
  return { topic: TOPICS.readings, partition, offset: String(offset), key: `s/l/m${partition}`, value: Buffer.from(JSON.stringify(n === 1 ? rs[0] : rs)) };
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe.each([
  ['objects', false],
  ['columns', true],
])('services/storage/writer (readings as %s)', (_, useColumns) => {
  beforeEach(() => {
    columns = useColumns;
  });

  it('takes the columnar path when the store offers it', async () => {
    const { store, writer } = setup();
    writer.push([readingRecord(0, 0, 3)]);
    await writer.drain();
    expect(store instanceof ColumnRecordingStore ? store.columnBatches : 0).toBe(useColumns ? 1 : 0);
    expect(store.stored.size).toBe(3);
  });

  it('batches by size, writes everything and commits each partition up to its last record', async () => {
    const { store, writer, committed } = setup();
    const records = Array.from({ length: 30 }, (_, i) => readingRecord(i % 3, Math.floor(i / 3), 25));
    writer.push(records);
    await writer.drain();
    expect(store.stored.size).toBe(750);
    expect(Math.max(...store.batches.map((b) => b.size))).toBeLessThanOrEqual(100);
    expect(store.batches.filter((b) => b.size === 100).length).toBeGreaterThanOrEqual(6);
    expect(committed()).toEqual({ [`${TOPICS.readings}:0`]: '10', [`${TOPICS.readings}:1`]: '10', [`${TOPICS.readings}:2`]: '10' });
  });

  it('writes a small batch after the linger time without waiting for size', async () => {
    const { store, writer, committed } = setup({ lingerMs: 30 });
    writer.push([readingRecord(0, 41, 1)]);
    await until(() => store.batches.length === 1);
    expect(store.batches[0].size).toBe(1);
    await until(() => committed()[`${TOPICS.readings}:0`] === '42');
  });

  it('dead-letters records that are not JSON or not valid readings, and moves on', async () => {
    const { store, writer, deadLetters, committed, metrics } = setup();
    const bad = (offset: number, value: string): WriterRecord => ({ topic: TOPICS.readings, partition: 0, offset: String(offset), key: 's/l/m', value: Buffer.from(value) });
    writer.push([readingRecord(0, 0, 3), bad(1, '{not json'), bad(2, JSON.stringify({ site: 's', line: 'l', machine: 'm', sensor: 'x', ts: -5, value: 1, receivedAt: 1 })), readingRecord(0, 3, 2)]);
    await writer.drain();
    expect(store.stored.size).toBe(5);
    expect(deadLetters.map((d) => [d.code, d.source.offset])).toEqual([
      ['STORAGE_RECORD_INVALID', '1'],
      ['STORAGE_RECORD_INVALID', '2'],
    ]);
    expect(deadLetters[1].reason).toMatch(/ts/);
    expect(Buffer.from(deadLetters[0].rawBase64, 'base64').toString()).toBe('{not json');
    expect(committed()[`${TOPICS.readings}:0`]).toBe('4');
    expect(await metrics.getSingleMetricAsString('plantwatch_storage_records_invalid_total')).toMatch(/topic="plantwatch.readings",component="storage"} 2/);
  });

  it('retries while the store is down, commits nothing meanwhile, then stores everything exactly once', async () => {
    const { store, writer, commits, committed, metrics } = setup();
    store.down = true;
    writer.push(Array.from({ length: 10 }, (_, i) => readingRecord(0, i, 10)));
    await until(() => store.failures >= 5);
    expect(commits).toEqual([]);
    expect(writer.healthy).toBe(false);
    store.down = false;
    await writer.drain();
    expect(store.stored.size).toBe(100);
    expect(committed()[`${TOPICS.readings}:0`]).toBe('10');
    expect(writer.healthy).toBe(true);
    expect(await metrics.getSingleMetricAsString('plantwatch_storage_write_retries_total')).toMatch(/code="STORAGE_UNAVAILABLE"/);
  });

  it('applies backpressure: waitForRoom blocks while too much is pending', async () => {
    const { store, writer } = setup({ maxBufferedPoints: 50 });
    store.down = true;
    writer.push([readingRecord(0, 0, 60)]);
    let released = false;
    void writer.waitForRoom().then(() => (released = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(released).toBe(false);
    store.down = false;
    await until(() => released);
    await writer.drain();
  });

  it('dead-letters points the database refused, counts guard refusals without dead-lettering', async () => {
    const { store, writer, deadLetters, committed, metrics } = setup();
    store.refuse = (r) =>
      r.sensor === 'x1' ? { code: 'STORAGE_WRITE_REJECTED', reason: 'InfluxDB 400: field type conflict', item: r } : r.sensor === 'x2' ? { code: 'STORAGE_CARDINALITY_LIMIT', reason: 'limit', item: r } : undefined;
    writer.push([readingRecord(0, 0, 5)]);
    await writer.drain();
    expect(deadLetters).toHaveLength(1);
    expect(deadLetters[0]).toMatchObject({ code: 'STORAGE_WRITE_REJECTED', component: 'storage', source: { topic: TOPICS.readings, partition: 0, offset: '0' } });
    expect(JSON.parse(Buffer.from(deadLetters[0].rawBase64, 'base64').toString())).toMatchObject({ sensor: 'x1' });
    expect(store.stored.size).toBe(3);
    expect(committed()[`${TOPICS.readings}:0`]).toBe('1');
    const rejected = await metrics.getSingleMetricAsString('plantwatch_storage_points_rejected_total');
    expect(rejected).toMatch(/code="STORAGE_WRITE_REJECTED",component="storage"} 1/);
    expect(rejected).toMatch(/code="STORAGE_CARDINALITY_LIMIT",component="storage"} 1/);
  });

  it('routes scores and alerts to their own batches', async () => {
    const { store, writer } = setup();
    const score: SensorScore = { kind: 'sensor', site: 's', line: 'l', machine: 'm', sensor: 'x', ts: 1, value: 1, predicted: 1, lower: 0, upper: 2, rawScore: 0, likelihood: 0, modelVersion: 'v', warmingUp: false };
    const alert: Alert = { fingerprint: 'f', rule: 'r', severity: 'info', status: 'firing', site: 's', line: 'l', machine: 'm', labels: {}, summary: '', value: null, startsAt: 1, endsAt: null, acknowledgedBy: null, acknowledgedAt: null, silencedUntil: null, updatedAt: 1 };
    writer.push([
      { topic: TOPICS.scores, partition: 0, offset: '0', value: Buffer.from(JSON.stringify([score, { ...score, ts: 2 }])) },
      { topic: TOPICS.alerts, partition: 0, offset: '0', value: Buffer.from(JSON.stringify(alert)) },
    ]);
    await writer.drain();
    expect(store.batches.sort((a, b) => a.kind.localeCompare(b.kind))).toEqual([
      { kind: 'alerts', size: 1 },
      { kind: 'scores', size: 2 },
    ]);
  });

  it('stop() abandons unwritten points without committing them', async () => {
    const { store, writer, commits } = setup();
    store.down = true;
    writer.push([readingRecord(0, 0, 10)]);
    await until(() => store.failures >= 2);
    writer.stop();
    await writer.commitNow();
    expect(commits).toEqual([]);
    expect(store.stored.size).toBe(0);
  });
});
