import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger, silentLogger } from '../../common/logger.ts';
import { createRegistry } from '../../common/metrics.ts';
import type { Reading } from '../../common/messages.ts';
import { storeConformance } from '../../test/conformance/store.ts';
import { DEFAULT_STORE_OPTIONS, type StorageBackend, type StoreOptions } from './backend.ts';
import { createStore } from './create-store.ts';
import { WorkerEmbeddedStore } from './embedded-worker.ts';
import { ReadingBatch, ReadingDecoder } from '../../common/reading-batch.ts';

const root = mkdtempSync(join(tmpdir(), 'pw-embedded-worker-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const paths = new WeakMap<StorageBackend, string>();

async function openAt(path: string, overrides: Partial<StoreOptions> = {}): Promise<StorageBackend> {
  const store = new WorkerEmbeddedStore({ ...DEFAULT_STORE_OPTIONS, logger: silentLogger(), embeddedPath: path, ...overrides });
  await store.init();
  paths.set(store, path);
  return store;
}

storeConformance('services/storage/embedded-worker', {
  open: (overrides) => openAt(join(root, `t${++n}`, 'plantwatch.duckdb'), overrides),
  reopen: async (store, overrides) => {
    const path = paths.get(store)!;
    await store.close();
    return openAt(path, overrides);
  },
});

const reading = (sensor: string, ts: number, value: number): Reading => ({ site: 'p', line: 'l', machine: 'm', sensor, ts, value, unit: 'bar', receivedAt: ts + 1 });

describe('services/storage/embedded-worker', () => {
  it('is what createStore gives for the embedded store unless embeddedThread is main', async () => {
    expect(createStore({ url: '' }, { logger: silentLogger(), embeddedPath: join(root, 'x.duckdb') })).toBeInstanceOf(WorkerEmbeddedStore);
    expect(createStore({ url: '' }, { logger: silentLogger(), embeddedPath: join(root, 'x.duckdb'), embeddedThread: 'main' })).not.toBeInstanceOf(WorkerEmbeddedStore);
  });

  it('writes decoded batches (series defined once, units as a table) and answers queries from them', async () => {
    const store = await openAt(join(root, `b${++n}`, 'plantwatch.duckdb'));
    const decoder = new ReadingDecoder();
    const t0 = Date.now() - 60_000;
    for (let k = 0; k < 3; k++) {
      const batch = new ReadingBatch();
      for (let i = 0; i < 100; i++) {
        const rs = [reading('a', t0 + k * 100 + i, i), { ...reading('b', t0 + k * 100 + i, -i), unit: undefined, quality: 'bad' as const }];
        expect(decoder.decode(Buffer.from(JSON.stringify(rs)), batch)).toBe(2);
      }
      expect(await store.writeReadingBatch!(batch)).toEqual({ written: 200, rejected: [] });
    }
    const series = await store.querySeries({ machine: 'm', from: t0, to: t0 + 1000, maxPoints: 1000 });
    expect(series.map((s) => [s.sensor, s.points.length])).toEqual([
      ['a', 300],
      ['b', 300],
    ]);
    expect(await store.latest({})).toEqual([
      { site: 'p', line: 'l', machine: 'm', sensor: 'a', ts: t0 + 299, value: 99, unit: 'bar' },
      { site: 'p', line: 'l', machine: 'm', sensor: 'b', ts: t0 + 299, value: -99, quality: 'bad' },
    ]);
    await store.close();
  });

  it('a crashed worker fails pending writes as retriable, then starts again with the data', async () => {
    const path = join(root, `c${++n}`, 'plantwatch.duckdb');
    const store = (await openAt(path)) as WorkerEmbeddedStore;
    const t0 = Date.now() - 60_000;
    await store.writeReadings([reading('a', t0, 1)]);
    const worker = (store as unknown as { worker: { terminate(): Promise<number> } }).worker;
    const write = store.writeReadings([reading('a', t0 + 1, 2)]);
    await worker.terminate();
    const outcome = await write.then(
      () => 'stored',
      (err: { code?: string; retriable?: boolean }) => ({ code: err.code, retriable: err.retriable }),
    );
    // Either it made it before the worker went, or it failed retriably; never an unknown state.
    if (outcome !== 'stored') expect(outcome).toEqual({ code: 'STORAGE_UNAVAILABLE', retriable: true });
    await store.writeReadings([reading('a', t0 + 1, 2), reading('a', t0 + 2, 3)]);
    const [s] = await store.querySeries({ machine: 'm', from: t0, to: t0 + 10, maxPoints: 100 });
    expect(s.points.map((p) => p.value)).toEqual([1, 2, 3]);
    await store.close();
  });

  it('forwards the cardinality guard metrics and logs to this thread', async () => {
    const metrics = createRegistry('storage');
    const lines: string[] = [];
    const logger = createLogger({ level: 'warn', destination: new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }) });
    const store = await openAt(join(root, `m${++n}`, 'plantwatch.duckdb'), { metrics, logger, maxSeriesPerMachine: 2 });
    const t = Date.now() - 1000;
    const res = await store.writeReadings([reading('a', t, 1), reading('b', t, 1), reading('c', t, 1)]);
    expect(res.written).toBe(2);
    expect(res.rejected).toMatchObject([{ code: 'STORAGE_CARDINALITY_LIMIT', item: { sensor: 'c' } }]);
    const text = await metrics.metrics();
    expect(text).toMatch(/plantwatch_storage_series_refused_total\{measurement="readings",limit="machine"[^}]*\} 1\n/);
    expect(text).toMatch(/plantwatch_storage_series(\{[^}]*\})? 2\n/);
    await store.close();
    expect(lines.join('')).toMatch(/new series refused/);
    expect(lines.join('')).toMatch(/"store":"embedded"/);
  });
});
