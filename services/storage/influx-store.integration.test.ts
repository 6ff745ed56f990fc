import { afterAll, beforeAll, expect, it } from 'vitest';
import { silentLogger } from '../../common/logger.ts';
import { describeWith } from '../../test/helpers/integration.ts';
import { startInfluxd, type InfluxdHandle } from '../../test/helpers/influxd.ts';
import { storeConformance, reading } from '../../test/conformance/store.ts';
import { DEFAULT_STORE_OPTIONS, type StorageBackend, type StoreOptions } from './backend.ts';
import { InfluxStore, RAW_RP, ROLLUP_RP } from './influx-store.ts';

describeWith(['influxd'], 'services/storage/influx-store (InfluxDB 1.6)', () => {
  let influxd: InfluxdHandle;
  let n = 0;
  const urls = new WeakMap<StorageBackend, string>();
  beforeAll(async () => {
    influxd = await startInfluxd();
  });
  afterAll(async () => {
    await influxd?.close();
  });

  async function openAt(url: string, overrides: Partial<StoreOptions> = {}): Promise<InfluxStore> {
    const store = new InfluxStore(url, { ...DEFAULT_STORE_OPTIONS, logger: silentLogger(), embeddedPath: '', ...overrides });
    await store.init();
    urls.set(store, url);
    return store;
  }
  const freshUrl = () => `${influxd.baseUrl}/pw_test_${process.pid}_${++n}`;

  storeConformance('InfluxStore', {
    open: (overrides) => openAt(freshUrl(), overrides),
    reopen: async (store, overrides) => {
      await store.close();
      return openAt(urls.get(store)!, overrides);
    },
  });

  it('creates retention policies and continuous queries on init, idempotently', async () => {
    const url = freshUrl();
    const db = url.split('/').pop()!;
    const store = await openAt(url, { rawRetentionDays: 7, rollupRetentionDays: 400 });
    await store.close();
    // A second init with a changed raw retention alters, does not duplicate.
    const again = await openAt(url, { rawRetentionDays: 14, rollupRetentionDays: 400 });
    const rps = await influxd.query(`SHOW RETENTION POLICIES ON "${db}"`);
    const rows = rps.results[0].series![0].values.map((v) => ({ name: v[0], duration: v[1], isDefault: v[4] }));
    expect(rows).toEqual(
      expect.arrayContaining([
        { name: RAW_RP, duration: '336h0m0s', isDefault: true },
        { name: ROLLUP_RP, duration: '9600h0m0s', isDefault: false },
      ]),
    );
    const cqs = await influxd.query('SHOW CONTINUOUS QUERIES');
    const ours = cqs.results[0].series!.find((s) => s.name === db)!;
    const names = ours.values.map((v) => v[0]).sort();
    expect(names).toEqual(['pw_readings_1h_v1', 'pw_readings_1m_v1', 'pw_scores_1h_v1', 'pw_scores_1m_v1']);
    const text = ours.values.map((v) => String(v[1])).join('\n');
    expect(text).toMatch(/RESAMPLE EVERY 1m FOR 10m/);
    expect(text).toMatch(/INTO .*plantwatch_rollup.*readings_1m/);
    expect(text).toMatch(/GROUP BY time\(1h\), \*/);
    await again.close();
  });

  it('the 1-minute continuous query rolls up live data by itself', async () => {
    const url = freshUrl();
    const db = url.split('/').pop()!;
    const store = await openAt(url);
    // Points in the previous and the current minute: the CQ (run-interval 1 s in the test server)
    // computes the previous minute as soon as it has ended.
    const now = Date.now();
    const prevMinute = now - (now % 60_000) - 60_000;
    await store.writeReadings([reading({ ts: prevMinute + 1000, value: 10 }), reading({ ts: prevMinute + 2000, value: 20 })]);
    let rows: unknown[][] = [];
    for (let i = 0; i < 150 && rows.length === 0; i++) {
      const res = await influxd.query(`SELECT "value", "min", "max", "count" FROM "${db}"."${ROLLUP_RP}"."readings_1m" WHERE time >= ${prevMinute}ms`);
      rows = res.results[0].series?.[0]?.values ?? [];
      if (rows.length === 0) await new Promise((r) => setTimeout(r, 500));
    }
    expect(rows).toEqual([[prevMinute, 15, 10, 20, 2]]);
    await store.close();
  }, 90_000);

  it('writes a readable schema: tags are identifiers, values are fields, time is event time in ms', async () => {
    const url = freshUrl();
    const db = url.split('/').pop()!;
    const store = await openAt(url);
    const t = Date.now() - 1000;
    await store.writeReadings([reading({ ts: t, value: 21.5, unit: 'degC', quality: 'good' })]);
    const tagKeys = await influxd.query(`SHOW TAG KEYS ON "${db}" FROM "readings"`);
    expect(tagKeys.results[0].series![0].values.flat()).toEqual(['line', 'machine', 'sensor', 'site']);
    const fieldKeys = await influxd.query(`SHOW FIELD KEYS ON "${db}" FROM "readings"`);
    expect(Object.fromEntries(fieldKeys.results[0].series![0].values as [string, string][])).toEqual({ value: 'float', unit: 'string', quality: 'string', received_at: 'integer' });
    const res = await influxd.query(`SELECT * FROM "${db}"."${RAW_RP}"."readings"`);
    expect(res.results[0].series![0].values).toEqual([[t, 'lineA', 'press1', 'good', t + 5, 'temp', 'plant1', 'degC', 21.5]]);
    await store.close();
  });
});
