/**
 * The conformance suite every TimeSeriesStore implementation runs (InfluxDB and embedded), in the
 * spirit of aedes-persistence's abstract tests: the same guarantees, checked the same way.
 *
 * `open(overrides)` must give a fresh, empty, initialised store each call (a new database or file);
 * `reopen(store)` (optional) closes it and opens the same data again, to check durability.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Alert, MachineScore, Reading, SensorScore } from '../../common/messages.ts';
import type { StorageBackend, StoreOptions } from '../../services/storage/backend.ts';

export interface ConformanceTarget {
  open(overrides?: Partial<StoreOptions>): Promise<StorageBackend>;
  reopen?(store: StorageBackend, overrides?: Partial<StoreOptions>): Promise<StorageBackend>;
}

const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

export function reading(over: Partial<Reading> & { ts: number; value: number }): Reading {
  return { site: 'plant1', line: 'lineA', machine: 'press1', sensor: 'temp', receivedAt: over.ts + 5, ...over };
}

function sensorScore(over: Partial<SensorScore> & { ts: number }): SensorScore {
  return {
    kind: 'sensor',
    site: 'plant1',
    line: 'lineA',
    machine: 'press1',
    sensor: 'temp',
    value: 50,
    predicted: 49,
    lower: 45,
    upper: 55,
    rawScore: 0.5,
    likelihood: 0.1,
    modelVersion: 'ae-1',
    warmingUp: false,
    ...over,
  };
}

function alert(over: Partial<Alert> & { updatedAt: number }): Alert {
  return {
    fingerprint: 'fp-temp-high',
    rule: 'temp-high',
    severity: 'warning',
    status: 'firing',
    site: 'plant1',
    line: 'lineA',
    machine: 'press1',
    sensor: 'temp',
    labels: { team: 'maintenance' },
    summary: 'Temperature above 80 °C, "hot"',
    value: 81.5,
    startsAt: over.updatedAt - 1000,
    endsAt: null,
    acknowledgedBy: null,
    acknowledgedAt: null,
    silencedUntil: null,
    ...over,
  };
}

export function storeConformance(name: string, target: ConformanceTarget): void {
  describe(`${name} › TimeSeriesStore conformance`, () => {
    const open: StorageBackend[] = [];
    const make = async (over?: Partial<StoreOptions>) => {
      const s = await target.open(over);
      open.push(s);
      return s;
    };
    afterEach(async () => {
      for (const s of open.splice(0)) await s.close();
    });

    it('writes readings and reads them back raw when they fit the point limit', async () => {
      const store = await make();
      const t0 = Date.now() - 10 * MIN;
      const rs = Array.from({ length: 120 }, (_, i) => reading({ ts: t0 + i * 1000, value: i, unit: 'degC', quality: 'good' }));
      rs.push(...Array.from({ length: 60 }, (_, i) => reading({ sensor: 'pressure', ts: t0 + i * 2000, value: 100 + i })));
      const res = await store.writeReadings(rs);
      expect(res).toEqual({ written: 180, rejected: [] });

      const series = await store.querySeries({ machine: 'press1', from: t0, to: t0 + 10 * MIN, maxPoints: 500 });
      expect(series.map((s) => s.sensor)).toEqual(['pressure', 'temp']);
      const temp = series.find((s) => s.sensor === 'temp')!;
      expect(temp).toMatchObject({ site: 'plant1', line: 'lineA', machine: 'press1', resolution: 'raw' });
      expect(temp.points).toHaveLength(120);
      expect(temp.points[0]).toMatchObject({ ts: t0, value: 0 });
      expect(temp.points[119]).toMatchObject({ ts: t0 + 119_000, value: 119 });

      const one = await store.querySeries({ machine: 'press1', sensor: 'pressure', from: t0 + 10_000, to: t0 + 20_000, maxPoints: 100 });
      expect(one).toHaveLength(1);
      expect(one[0].points.map((p) => p.value)).toEqual([105, 106, 107, 108, 109]);
    });

    it('is idempotent: writing the same readings again stores each once', async () => {
      const store = await make();
      const t0 = Date.now() - 5 * MIN;
      const rs = Array.from({ length: 50 }, (_, i) => reading({ ts: t0 + i * 100, value: i }));
      await store.writeReadings(rs);
      await store.writeReadings(rs.slice(10, 40));
      await store.writeReadings(rs);
      const [s] = await store.querySeries({ machine: 'press1', from: t0, to: t0 + MIN, maxPoints: 1000 });
      expect(s.points).toHaveLength(50);
      expect(s.points.map((p) => p.value)).toEqual(rs.map((r) => r.value));
    });

    it('latest is by event time: late data never overwrites a newer value', async () => {
      const store = await make();
      const t = Date.now() - MIN;
      await store.writeReadings([reading({ ts: t, value: 42, unit: 'degC', quality: 'good' }), reading({ sensor: 'rpm', ts: t - 5000, value: 1500 })]);
      // Arrives later, measured earlier.
      await store.writeReadings([reading({ ts: t - 30_000, value: 1, unit: 'degC', quality: 'bad' })]);
      const latest = await store.latest({ machine: 'press1' });
      expect(latest).toEqual([
        { site: 'plant1', line: 'lineA', machine: 'press1', sensor: 'rpm', ts: t - 5000, value: 1500 },
        { site: 'plant1', line: 'lineA', machine: 'press1', sensor: 'temp', ts: t, value: 42, unit: 'degC', quality: 'good' },
      ]);
      await store.writeReadings([reading({ ts: t + 1000, value: 43, unit: 'degC' })]);
      const after = await store.latest({ site: 'plant1', machine: 'press1' });
      expect(after.find((l) => l.sensor === 'temp')).toMatchObject({ ts: t + 1000, value: 43 });
      expect(await store.latest({ machine: 'nope' })).toEqual([]);
    });

    it('lists machines with their sensors and last event time', async () => {
      const store = await make();
      const t = Date.now() - MIN;
      await store.writeReadings([
        reading({ ts: t, value: 1 }),
        reading({ sensor: 'vib', ts: t + 10, value: 2 }),
        reading({ machine: 'press2', ts: t - 100, value: 3 }),
      ]);
      expect(await store.machines()).toEqual([
        { site: 'plant1', line: 'lineA', machine: 'press1', sensors: ['temp', 'vib'], lastSeen: t + 10 },
        { site: 'plant1', line: 'lineA', machine: 'press2', sensors: ['temp'], lastSeen: t - 100 },
      ]);
    });

    it('answers a 3-day range from rollups within the point limit', async () => {
      const store = await make();
      // Three days, one reading per minute per sensor; each hour's values are h*10 + 0..59/60 so means are known.
      const end = Math.floor(Date.now() / HOUR) * HOUR - HOUR;
      const start = end - 3 * DAY;
      const rs: Reading[] = [];
      for (let ts = start; ts < end; ts += MIN) {
        const h = Math.floor((ts - start) / HOUR);
        const m = Math.floor((ts % HOUR) / MIN);
        rs.push(reading({ ts, value: h * 10 + m / 60 }));
        rs.push(reading({ sensor: 'vib', ts, value: -h }));
      }
      for (let i = 0; i < rs.length; i += 5000) expect((await store.writeReadings(rs.slice(i, i + 5000))).rejected).toEqual([]);

      const fine = await store.querySeries({ machine: 'press1', from: start, to: end, maxPoints: 2000 });
      expect(fine).toHaveLength(2);
      for (const s of fine) {
        expect(s.resolution).not.toBe('raw');
        expect(s.points.length).toBeLessThanOrEqual(2000);
        expect(s.points.length).toBeGreaterThan(500);
      }
      const temp = fine.find((s) => s.sensor === 'temp')!;
      expect(temp.resolution).toBe('5m');
      // The first 5-minute bucket of hour 0: values 0, 1/60 … 4/60.
      expect(temp.points[0].ts).toBe(start);
      expect(temp.points[0].value).toBeCloseTo(2 / 60, 6);
      expect(temp.points[0].min).toBeCloseTo(0, 6);
      expect(temp.points[0].max).toBeCloseTo(4 / 60, 6);

      const coarse = await store.querySeries({ machine: 'press1', sensor: 'temp', from: start, to: end, maxPoints: 100 });
      expect(coarse).toHaveLength(1);
      expect(coarse[0].resolution).toBe('1h');
      expect(coarse[0].points).toHaveLength(72);
      expect(coarse[0].points[5]).toMatchObject({ ts: start + 5 * HOUR });
      expect(coarse[0].points[5].value).toBeCloseTo(50 + 59 / 120, 6);
      expect(coarse[0].points[5].min).toBeCloseTo(50, 6);
      expect(coarse[0].points[5].max).toBeCloseTo(50 + 59 / 60, 6);

      const daily = await store.querySeries({ machine: 'press1', sensor: 'vib', from: start, to: end, maxPoints: 10 });
      expect(daily[0].points.length).toBeLessThanOrEqual(10);
      expect(Math.min(...daily[0].points.map((p) => p.min!))).toBe(-71);
    });

    it('groups dense raw data on the fly when even the 1-minute rollup is too coarse', async () => {
      const store = await make();
      const start = Math.floor((Date.now() - 2 * HOUR) / HOUR) * HOUR;
      const rs = Array.from({ length: 3600 }, (_, i) => reading({ ts: start + i * 1000, value: i % 10 }));
      await store.writeReadings(rs);
      const [s] = await store.querySeries({ machine: 'press1', from: start, to: start + HOUR, maxPoints: 500 });
      expect(s.resolution).toBe('10s');
      expect(s.points).toHaveLength(360);
      expect(s.points[0]).toMatchObject({ ts: start, min: 0, max: 9 });
      expect(s.points[0].value).toBeCloseTo(4.5, 9);
    });

    it('never returns more than maxPoints per series, whatever maxPoints is', async () => {
      const store = await make();
      const start = Date.now() - 30 * MIN;
      await store.writeReadings(Array.from({ length: 900 }, (_, i) => reading({ ts: start + i * 2000, value: i })));
      for (const maxPoints of [1, 2, 7, 100, 899, 900]) {
        const [s] = await store.querySeries({ machine: 'press1', from: start, to: start + 30 * MIN, maxPoints });
        expect(s.points.length, `maxPoints ${maxPoints}`).toBeLessThanOrEqual(maxPoints);
        expect(s.points.length).toBeGreaterThan(0);
      }
      await expect(store.querySeries({ machine: 'press1', from: start, to: start, maxPoints: 10 })).rejects.toMatchObject({ code: 'STORAGE_QUERY_INVALID' });
    });

    it('refuses new series beyond the cardinality limits and keeps writing known ones', async () => {
      const store = await make({ maxSeriesPerMachine: 3, maxSeries: 5 });
      const t = Date.now() - MIN;
      const first = await store.writeReadings(['a', 'b', 'c', 'd'].map((sensor, i) => reading({ sensor, ts: t + i, value: i })));
      expect(first.written).toBe(3);
      expect(first.rejected).toHaveLength(1);
      expect(first.rejected[0]).toMatchObject({ code: 'STORAGE_CARDINALITY_LIMIT', item: { sensor: 'd' } });
      // Known series still accepted; the machine stays capped.
      const again = await store.writeReadings([reading({ sensor: 'a', ts: t + 100, value: 9 }), reading({ sensor: 'e', ts: t + 100, value: 9 })]);
      expect(again.written).toBe(1);
      expect(again.rejected.map((r) => r.code)).toEqual(['STORAGE_CARDINALITY_LIMIT']);
      // Overall limit: 3 used, 2 more on another machine, then refused.
      const other = await store.writeReadings(['x', 'y', 'z'].map((sensor) => reading({ machine: 'press9', sensor, ts: t, value: 1 })));
      expect(other.written).toBe(2);
      expect(other.rejected.map((r) => (r.item as Reading).sensor)).toEqual(['z']);
      const latest = await store.latest({});
      expect(latest.map((l) => `${l.machine}/${l.sensor}`)).toEqual(['press1/a', 'press1/b', 'press1/c', 'press9/x', 'press9/y']);

      if (target.reopen) {
        // The limit survives a restart: known series are loaded from the database.
        const again2 = await target.reopen(store, { maxSeriesPerMachine: 3, maxSeries: 5 });
        open.splice(open.indexOf(store), 1, again2);
        const res = await again2.writeReadings([reading({ sensor: 'b', ts: t + 200, value: 1 }), reading({ sensor: 'q', ts: t + 200, value: 1 })]);
        expect(res.written).toBe(1);
        expect(res.rejected.map((r) => r.code)).toEqual(['STORAGE_CARDINALITY_LIMIT']);
      }
    });

    it('refuses readings older than the raw retention', async () => {
      const store = await make({ rawRetentionDays: 2 });
      const res = await store.writeReadings([reading({ ts: Date.now() - 3 * DAY, value: 1 }), reading({ ts: Date.now() - DAY, value: 2 })]);
      expect(res.written).toBe(1);
      expect(res.rejected.map((r) => r.code)).toEqual(['STORAGE_TOO_OLD']);
    });

    it('stores sensor and machine scores and reads them raw and rolled up', async () => {
      const store = await make();
      const t0 = Math.floor((Date.now() - 3 * HOUR) / HOUR) * HOUR;
      const scores: (SensorScore | MachineScore)[] = [];
      for (let i = 0; i < 120; i++) {
        scores.push(sensorScore({ ts: t0 + i * MIN, value: i, predicted: i + 1, lower: i - 2, upper: i + 2, likelihood: i === 30 ? 0.99 : 0.1 }));
        scores.push({ kind: 'machine', site: 'plant1', line: 'lineA', machine: 'press1', ts: t0 + i * MIN, rawScore: i / 10, likelihood: i / 200, contributions: { temp: 0.7, vib: 0.3 }, modelVersion: 'mv-1', warmingUp: i < 5 });
      }
      expect(await store.writeScores(scores)).toEqual({ written: 240, rejected: [] });
      const raw = await store.queryScores({ machine: 'press1', from: t0, to: t0 + 2 * HOUR, maxPoints: 500 });
      expect(raw).toHaveLength(1);
      expect(raw[0]).toMatchObject({ sensor: 'temp', resolution: 'raw' });
      expect(raw[0].points).toHaveLength(120);
      expect(raw[0].points[3]).toEqual({ ts: t0 + 3 * MIN, value: 3, predicted: 4, lower: 1, upper: 5, likelihood: 0.1 });

      const rolled = await store.queryScores({ machine: 'press1', sensor: 'temp', from: t0, to: t0 + 2 * HOUR, maxPoints: 30 });
      expect(rolled[0].resolution).toBe('5m');
      expect(rolled[0].points).toHaveLength(24);
      // Bucket 30..34 min: mean value 32, band min/max, likelihood keeps the spike (max).
      expect(rolled[0].points[6]).toMatchObject({ ts: t0 + 30 * MIN, lower: 28, upper: 36, likelihood: 0.99 });
      expect(rolled[0].points[6].value).toBeCloseTo(32, 9);
      expect(rolled[0].points[6].predicted).toBeCloseTo(33, 9);

      const machine = await store.queryMachineScores({ machine: 'press1', from: t0, to: t0 + 2 * HOUR, maxPoints: 500 });
      expect(machine).toHaveLength(1);
      expect(machine[0].resolution).toBe('raw');
      expect(machine[0].points[10]).toEqual({ ts: t0 + 10 * MIN, rawScore: 1, likelihood: 0.05, contributions: { temp: 0.7, vib: 0.3 } });
      const machineAgg = await store.queryMachineScores({ machine: 'press1', from: t0, to: t0 + 2 * HOUR, maxPoints: 12 });
      expect(machineAgg[0].points.length).toBeLessThanOrEqual(12);
      expect(machineAgg[0].points[0]).toMatchObject({ ts: t0, rawScore: 0.9 });
    });

    it('stores alert state changes and lists them newest first', async () => {
      const store = await make();
      const t = Date.now() - 10 * MIN;
      const pending = alert({ status: 'pending', updatedAt: t });
      const firing = alert({ status: 'firing', updatedAt: t + 1000 });
      const resolved = alert({ status: 'resolved', updatedAt: t + 60_000, endsAt: t + 60_000, acknowledgedBy: 'ana', acknowledgedAt: t + 30_000 });
      const other = alert({ fingerprint: 'fp-other', rule: 'vib', machine: 'press2', sensor: undefined, severity: 'critical', value: null, labels: {}, updatedAt: t + 2000 });
      delete (other as Partial<Alert>).sensor;
      expect(await store.writeAlerts([pending, firing, resolved, other])).toEqual({ written: 4, rejected: [] });
      await store.writeAlerts([firing]);
      const all = await store.queryAlerts({ from: t, to: t + HOUR, limit: 10 });
      expect(all).toEqual([resolved, other, firing, pending]);
      expect(await store.queryAlerts({ machine: 'press1', from: t, to: t + HOUR, limit: 2 })).toEqual([resolved, firing]);
    });

    if (target.reopen) {
      it('keeps acknowledged data across a restart', async () => {
        const store = await make();
        const t = Date.now() - MIN;
        await store.writeReadings([reading({ ts: t, value: 7 })]);
        const again = await target.reopen!(store);
        open.splice(open.indexOf(store), 1, again);
        expect(await again.latest({})).toMatchObject([{ sensor: 'temp', ts: t, value: 7 }]);
      });
    }
  });
}
