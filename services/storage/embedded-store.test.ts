import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../common/logger.ts';
import { storeConformance } from '../../test/conformance/store.ts';
import { DEFAULT_STORE_OPTIONS, type StorageBackend, type StoreOptions } from './backend.ts';
import { EmbeddedStore } from './embedded-store.ts';

const root = mkdtempSync(join(tmpdir(), 'pw-embedded-store-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const paths = new WeakMap<StorageBackend, string>();

async function openAt(path: string, overrides: Partial<StoreOptions> = {}): Promise<StorageBackend> {
  const store = new EmbeddedStore({ ...DEFAULT_STORE_OPTIONS, logger: silentLogger(), embeddedPath: path, ...overrides });
  await store.init();
  paths.set(store, path);
  return store;
}

storeConformance('services/storage/embedded-store', {
  open: (overrides) => openAt(join(root, `t${++n}`, 'plantwatch.duckdb'), overrides),
  reopen: async (store, overrides) => {
    const path = paths.get(store)!;
    await store.close();
    return openAt(path, overrides);
  },
});

describe('services/storage/embedded-store retention', () => {
  it('drops raw points after rawRetentionDays, answers from rollups, then drops rollups too', async () => {
    let now = Date.now();
    const store = await openAt(join(root, `ret${++n}`, 'plantwatch.duckdb'), { rawRetentionDays: 1, rollupRetentionDays: 10, now: () => now });
    const t0 = Math.floor((now - 2 * 3_600_000) / 3_600_000) * 3_600_000;
    const rs = Array.from({ length: 120 }, (_, i) => ({ site: 'p', line: 'l', machine: 'm', sensor: 's', ts: t0 + i * 60_000, value: i, receivedAt: t0 }));
    expect((await store.writeReadings(rs)).written).toBe(120);
    await store.flushRollups();

    now += 2 * 86_400_000;
    await store.enforceRetention();
    const [s] = await store.querySeries({ machine: 'm', from: t0, to: t0 + 2 * 3_600_000, maxPoints: 1000 });
    expect(s.resolution).toBe('1m');
    expect(s.points).toHaveLength(120);
    expect(s.points[7]).toMatchObject({ ts: t0 + 7 * 60_000, value: 7, min: 7, max: 7 });
    expect(await store.latest({})).toEqual([]);

    now += 10 * 86_400_000;
    await store.enforceRetention();
    expect(await store.querySeries({ machine: 'm', from: t0, to: t0 + 2 * 3_600_000, maxPoints: 1000 })).toEqual([]);
    await store.close();
  });
});

describe('services/storage/embedded-store compaction', () => {
  it('removes replayed copies physically on the retention run, answers stay the same', async () => {
    const path = join(root, `cmp${++n}`, 'plantwatch.duckdb');
    const store = await openAt(path);
    const t0 = Date.now() - 60_000;
    const rs = Array.from({ length: 100 }, (_, i) => ({ site: 'p', line: 'l', machine: 'm', sensor: 's', ts: t0 + i, value: i, receivedAt: t0 }));
    await store.writeReadings(rs);
    await store.enforceRetention();
    await store.writeReadings(rs.slice(0, 40));
    await store.writeReadings(rs.slice(20, 60).map((r) => ({ ...r, value: r.value + 1000 })));
    await store.enforceRetention();
    await store.close();
    const { DuckDBInstance } = await import('@duckdb/node-api');
    const db = await DuckDBInstance.create(path);
    const c = await db.connect();
    const rows = (await c.runAndReadAll('SELECT count(*), count(DISTINCT ts), sum(value) FROM readings')).getRows()[0].map(Number);
    c.closeSync();
    db.closeSync();
    // 100 distinct points; ts 20..59 carry the last write (value + 1000).
    expect(rows).toEqual([100, 100, 4950 + 40 * 1000]);
  });
});
