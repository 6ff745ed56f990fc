import { afterEach, describe, expect, it } from 'vitest';
import type { Reading } from '../../../common/messages.ts';
import { MachineScore as MachineScoreSchema, SensorScore as SensorScoreSchema } from '../../../common/messages.ts';
import { ReadingBatch, SeriesInterner } from '../../../common/reading-batch.ts';
import { createDetector, DetectorConfig, type StreamDetector } from './index.ts';
import { NOISE_SD, syntheticStream, type Injection } from './synthetic.ts';

const cfg = DetectorConfig.parse({});
const open: StreamDetector[] = [];
async function detector(overrides: Partial<DetectorConfig> = {}): Promise<StreamDetector> {
  const d = await createDetector(DetectorConfig.parse(overrides), { now: () => 0 });
  open.push(d);
  return d;
}
afterEach(() => {
  while (open.length) open.pop()!.dispose();
});

/** Feeds readings in service-sized batches and returns every sensor score in order. */
async function feed(det: StreamDetector, rs: Reading[], batch = 50) {
  const out = [];
  for (let i = 0; i < rs.length; i += batch) out.push(...(await det.scoreBatch(rs.slice(i, i + batch))).sensor);
  return out;
}

const AT = 3000;
const LENGTH = 3600;

describe('services > anomaly > detector', () => {
  it('stays quiet on clean noise after warm-up (false-alarm rate below 1e-4 per reading)', async () => {
    let alerts = 0;
    let n = 0;
    for (let seed = 1; seed <= 10; seed++) {
      const det = await detector();
      const scores = (await feed(det, syntheticStream({ length: 5000, at: 5000, injection: 'none', seed: seed * 13 }), 100)).slice(500);
      n += scores.length;
      alerts += scores.filter((s) => s.likelihood >= cfg.alertLikelihood).length;
      // most readings look ordinary, not borderline
      const median = scores.map((s) => s.likelihood).sort((a, b) => a - b)[Math.floor(scores.length / 2)];
      expect(median).toBeLessThan(0.9);
      expect(scores.at(-1)!.warmingUp).toBe(false);
    }
    expect(alerts / n).toBeLessThan(1e-4);
  });

  const cases: Array<{ injection: Injection; maxDelay: number }> = [
    { injection: 'spike', maxDelay: 0 },
    { injection: 'levelShift', maxDelay: 2 },
    { injection: 'drift', maxDelay: 200 }, // 0.02σ per reading: flagged once it leaves the range seen (≈ 2-4σ)
    { injection: 'stuck', maxDelay: 10 },
  ];
  for (const { injection, maxDelay } of cases) {
    it(`flags a ${injection} within ${maxDelay} readings, without alarms before it`, async () => {
      for (const seed of [1, 2]) {
        const det = await detector();
        const scores = await feed(det, syntheticStream({ length: LENGTH, at: AT, injection, seed }));
        const first = scores.findIndex((s, i) => i >= AT && s.likelihood >= cfg.alertLikelihood);
        expect(first, `seed ${seed}: not flagged`).toBeGreaterThanOrEqual(AT);
        expect(first - AT, `seed ${seed}`).toBeLessThanOrEqual(maxDelay);
        expect(scores.slice(500, AT).filter((s) => s.likelihood >= cfg.alertLikelihood)).toHaveLength(0);
      }
    });
  }

  it('reports one event once: the readings after a level shift are damped, a much bigger jump inside it is reported', async () => {
    const noRefractory = { refractory: { ...cfg.refractory, readings: 0 } };
    for (const seed of [1, 2, 3]) {
      const rs = syntheticStream({ length: 3300, at: AT, injection: 'levelShift', seed });
      rs[AT + 20] = { ...rs[AT + 20], value: rs[AT + 20].value + 40 * NOISE_SD }; // the event grows
      const flagged = (scores: Array<{ likelihood: number }>, level: number) =>
        scores.flatMap((s, i) => (i >= AT - 10 && s.likelihood >= level ? [i] : []));
      const damped = await feed(await detector(), rs);
      expect(flagged(damped, cfg.alertLikelihood), `seed ${seed}`).toEqual([AT, AT + 20]);
      // without the refractory period the same event raises more near-alarms (other evidence kinds
      // catching up over the next readings): what the refractory period removes
      const undamped = await feed(await detector(noRefractory), rs);
      expect(flagged(undamped, 0.9994).length, `seed ${seed}`).toBeGreaterThan(flagged(damped, 0.9994).length);
    }
  });

  it("scores each reading from the readings up to it only: the same scores whatever the batch size", async () => {
    // training off, so the shared model is the same at every reading whatever the batching
    const frozen = { model: { ...cfg.model, trainEvery: 1e9, trainSteps: 1 } };
    const rs = syntheticStream({ length: 1500, at: 1200, injection: 'spike', seed: 3 });
    const by = async (batch: number) => (await feed(await detector(frozen), rs, batch)).map((s) => s.likelihood);
    const one = await by(1);
    expect(await by(64)).toEqual(one);
    expect(await by(500)).toEqual(one);
  });

  it('gives each reading a prediction with a band that covers ordinary readings', async () => {
    const det = await detector();
    const scores = await feed(det, syntheticStream({ length: 2000, at: 2000, injection: 'none' }));
    const tail = scores.slice(1000);
    const inside = tail.filter((s) => s.value >= s.lower && s.value <= s.upper).length / tail.length;
    expect(inside).toBeGreaterThan(0.95);
    const mae = tail.reduce((a, s) => a + Math.abs(s.value - s.predicted), 0) / tail.length;
    expect(mae).toBeLessThan(2 * NOISE_SD); // it tracks the signal, not just its mean
    for (const s of tail.slice(0, 20)) expect(SensorScoreSchema.safeParse(s).success).toBe(true);
  });

  it('forecasts a ramp and predicts when it crosses the configured limit', async () => {
    const det = await detector({ forecastHorizonMs: 60_000 });
    det.setLimits!({ 'plant/l1/oven/temp': { upper: 200 } });
    // 0.1 per second from 100: crosses 200 after 1000 s
    const rs: Reading[] = Array.from({ length: 600 }, (_, i) => ({
      site: 'plant', line: 'l1', machine: 'oven', sensor: 'temp', ts: 1_000_000 + i * 1000, value: 100 + 0.1 * i, receivedAt: 0,
    }));
    const last = (await feed(det, rs)).at(-1)!;
    expect(last.forecast!.horizonMs).toBe(60_000);
    expect(last.forecast!.value).toBeCloseTo(100 + 0.1 * 599 + 6, 0);
    expect(last.forecast!.lower).toBeLessThan(last.forecast!.value);
    // remaining: (200 - 159.9) / 0.1 per s ≈ 401 s
    expect(last.timeToLimitMs!).toBeGreaterThan(380_000);
    expect(last.timeToLimitMs!).toBeLessThan(420_000);
  });

  it('rejects duplicates and hopelessly late readings, scores late ones without changing later scores', async () => {
    const rs = syntheticStream({ length: 1500, at: 1500, injection: 'none' });
    const clean = await detector();
    const cleanScores = await feed(clean, rs);

    const det = await detector({ maxLatenessMs: 60_000 });
    await feed(det, rs.slice(0, 1000));
    const late = { ...rs[996], value: rs[996].value + 0.1 }; // same timestamp as a reading already scored
    const lateOk = { ...rs[995], ts: rs[995].ts + 1, value: rs[995].value }; // 4 s late, unseen timestamp
    const tooLate = { ...rs[100], ts: rs[100].ts + 1 };
    const dup = { ...rs[999] };
    const out = await det.scoreBatch([late, lateOk, tooLate, dup]);
    expect(out.rejected.map((r) => r.reason.split(':')[0]).sort()).toEqual(['duplicate', 'duplicate', 'too late']);
    expect(out.sensor).toHaveLength(1);
    expect(out.sensor[0].ts).toBe(lateOk.ts);
    expect(out.sensor[0].likelihood).toBeGreaterThanOrEqual(0);
    // the late reading did not poison the stream: what follows scores exactly as without it
    const after = await feed(det, rs.slice(1000));
    expect(after.map((s) => s.likelihood)).toEqual(cleanScores.slice(1000).map((s) => s.likelihood));
    expect(after.map((s) => s.predicted)).toEqual(cleanScores.slice(1000).map((s) => s.predicted));
  });

  it('scores bad-quality readings without learning from them', async () => {
    const rs = syntheticStream({ length: 1500, at: 1500, injection: 'none', seed: 4 });
    const clean = await feed(await detector(), rs);
    const det = await detector();
    await feed(det, rs.slice(0, 1000));
    const bad = await det.scoreBatch([{ ...rs[999], ts: rs[999].ts + 1, value: 1e6, quality: 'bad' }]);
    expect(bad.sensor).toHaveLength(1);
    expect(bad.sensor[0].rawScore).toBeGreaterThan(10);
    const after = await feed(det, rs.slice(1000));
    expect(after.map((s) => s.likelihood)).toEqual(clean.slice(1000).map((s) => s.likelihood));
  });

  it('handles gaps and irregular sampling: no extra alarms, every reading scored', async () => {
    for (const seed of [5, 6]) {
      const rs = syntheticStream({ length: 3000, at: 3000, injection: 'none', seed });
      let t = rs[0].ts;
      const irregular = rs.map((r, i) => {
        t += i === 2000 ? 6 * 3600_000 : 500 + ((i * 7919) % 1000); // 0.5–1.5 s steps, one 6 h outage
        return { ...r, ts: t };
      });
      const alarms = async (input: Reading[]) => {
        const scores = await feed(await detector(), input);
        expect(scores).toHaveLength(input.length);
        for (const s of scores) expect(Number.isFinite(s.predicted) && Number.isFinite(s.rawScore) && Number.isFinite(s.forecast!.value)).toBe(true);
        return scores.slice(500).filter((s) => s.likelihood >= cfg.alertLikelihood).length;
      };
      const regular = await alarms(rs);
      expect(await alarms(irregular)).toBeLessThanOrEqual(regular);
      expect(regular).toBeLessThanOrEqual(1);
    }
  });

  it('restores a snapshot into a fresh detector that then scores identically', async () => {
    const rs = [
      ...syntheticStream({ length: 2400, at: 2200, injection: 'spike', sensor: 'a', seed: 1 }),
      ...syntheticStream({ length: 2400, at: 2300, injection: 'levelShift', sensor: 'b', seed: 2 }),
    ].sort((x, y) => x.ts - y.ts);
    const a = await detector({ model: { ...cfg.model, trainEvery: 500 } });
    await feed(a, rs.slice(0, 2500));
    const snap = JSON.parse(JSON.stringify(await a.snapshot()));
    const b = await detector({ model: { ...cfg.model, trainEvery: 500 } });
    await b.restore(snap);
    expect(b.streamCount()).toBe(2);
    const fromA = await a.scoreBatch(rs.slice(2500));
    const fromB = await b.scoreBatch(rs.slice(2500));
    expect(fromB).toEqual(fromA);
    // and across training rounds too
    const moreA = await feed(a, rs.slice(2500).map((r) => ({ ...r, ts: r.ts + 10_000_000 })));
    const moreB = await feed(b, rs.slice(2500).map((r) => ({ ...r, ts: r.ts + 10_000_000 })));
    expect(moreB).toEqual(moreA);
  });

  it('trains by reading count: one Adam step per trainEvery/trainSteps readings whatever the batch size, slower once mature', async () => {
    const rs = syntheticStream({ length: 3000, at: 3000, injection: 'none', seed: 3 });
    const steps = async (batch: number, model: Partial<DetectorConfig['model']> = {}) => {
      const d = await detector({ model: { ...cfg.model, ...model } });
      await feed(d, rs, batch);
      return (await d.snapshot()).model.step;
    };
    // 3000 readings, one step per 125 of them, whether they come 50 or 3000 at a time
    expect([await steps(50), await steps(1000), await steps(3000)]).toEqual([24, 24, 24]);
    // mature after 8 steps (1000 readings): then one step per 500 readings
    const mature = { matureSteps: 8, matureTrainEvery: 4000 };
    expect([await steps(50, mature), await steps(3000, mature)]).toEqual([12, 12]);
  });

  it('a captured snapshot completes to the state at capture while scoring goes on (evictions and new streams included)', async () => {
    const mk = (m: number, s: number, i: number): Reading => ({ site: 'p', line: 'l', machine: `m${m}`, sensor: `s${s}`, ts: 1_000_000 + i * 1000, value: Math.sin(i / 5 + s) + ((i * 7919 + m) % 13) / 100, receivedAt: 0 });
    const round = (i: number, machines: number) => Array.from({ length: machines * 3 }, (_, k) => mk(Math.floor(k / 3), k % 3, i));
    const a = await detector({ maxStreams: 30 });
    const b = await detector({ maxStreams: 30 });
    for (let i = 0; i < 40; i++) for (const d of [a, b]) await d.scoreBatch(round(i, 10));
    const captured = a.captureSnapshot();
    const reference = await b.snapshot();
    // a keeps scoring: its streams change, machine m10 evicts the oldest streams, new ones appear
    for (let i = 40; i < 45; i++) await a.scoreBatch([...round(i, 10), mk(10, 0, i), mk(10, 1, i), mk(11 + i, 0, i)]);
    const snap = await captured.complete();
    expect({ ...snap, createdAt: 0 }).toEqual({ ...reference, createdAt: 0 });
    // and it restores into a detector that scores like b
    const c = await detector({ maxStreams: 30 });
    await c.restore(JSON.parse(JSON.stringify(snap)));
    expect(await c.scoreBatch(round(50, 10))).toEqual(await b.scoreBatch(round(50, 10)));
  });

  it('scores a machine with per-sensor contributions pointing at the sensor that broke ranks', async () => {
    const det = await detector();
    const rs: Reading[] = [];
    let seed = 1;
    const noise = () => ((seed = (seed * 16807) % 2147483647) / 2147483647 - 0.5) * 0.2;
    for (let i = 0; i < 2000; i++) {
      const load = 50 + 20 * Math.sin((2 * Math.PI * i) / 200);
      const base = { site: 'plant', line: 'l1', machine: 'pump', ts: 1_000_000 + i * 1000, receivedAt: 0 };
      rs.push({ ...base, sensor: 'load', value: load + noise() });
      rs.push({ ...base, sensor: 'current', value: 0.2 * load + noise() });
      // vibration decouples from load at the end
      rs.push({ ...base, sensor: 'vibration', value: (i < 1990 ? 0.05 * load : 4.5) + noise() });
    }
    const machines = [];
    for (let i = 0; i < rs.length; i += 30) machines.push(...(await det.scoreBatch(rs.slice(i, i + 30))).machine);
    for (const m of machines.slice(-3)) expect(MachineScoreSchema.safeParse(m).success).toBe(true);
    const last = machines.at(-1)!;
    expect(last.likelihood).toBeGreaterThanOrEqual(cfg.alertLikelihood);
    const top = Object.entries(last.contributions).sort((x, y) => y[1] - x[1])[0][0];
    expect(top).toBe('vibration');
    expect(Object.values(last.contributions).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
    const calm = machines[Math.floor(machines.length / 2)];
    expect(calm.likelihood).toBeLessThan(cfg.alertLikelihood);
  });

  it('bounds memory: evicts the least recently used stream beyond maxStreams', async () => {
    const det = await detector({ maxStreams: 10 });
    const mk = (s: number, i: number): Reading => ({ site: 's', line: 'l', machine: `m${s}`, sensor: 'v', ts: 1000 + i, value: i, receivedAt: 0 });
    for (let s = 0; s < 10; s++) await det.scoreBatch([mk(s, 0), mk(s, 1)]);
    const bytes10 = det.stateBytes();
    expect(det.streamCount()).toBe(10);
    await det.scoreBatch([mk(0, 2)]); // touch stream 0: stream 1 is now the oldest
    await det.scoreBatch([mk(99, 0)]);
    expect(det.streamCount()).toBe(10);
    expect(det.stateBytes()).toBeLessThanOrEqual(bytes10 * 1.05);
    // stream 1 was evicted: it starts over (warming up again), stream 0 kept its history
    const out = await det.scoreBatch([mk(1, 5), mk(0, 5)]);
    expect(out.sensor[0].warmingUp).toBe(true);
    expect(det.streamCount()).toBe(10);
  });

  it('reports state bytes kept up to date through churn, evictions and a restore (no walk per /metrics scrape)', async () => {
    const det = await detector({ maxStreams: 12 });
    const mk = (m: number, s: number, i: number): Reading => ({ site: 's', line: 'l', machine: `m${m}`, sensor: `sensor-${s}`, ts: 1000 + i, value: i % 7, receivedAt: 0 });
    const empty = det.stateBytes();
    for (let i = 0; i < 30; i++) await det.scoreBatch([mk(i % 5, i % 4, i), mk((i * 3) % 7, (i + 1) % 4, i)]);
    expect(det.streamCount()).toBe(12);
    const busy = det.stateBytes();
    expect(busy).toBeGreaterThan(empty);
    // A detector restored from the snapshot holds the same streams and machines: the same bytes.
    const twin = await detector({ maxStreams: 12 });
    await twin.restore(await det.snapshot());
    expect(twin.streamCount()).toBe(12);
    expect(twin.stateBytes()).toBe(busy);
    // Every stream evicted by newcomers of one-sensor machines: the old streams' and machines' bytes are gone.
    for (let i = 0; i < 12; i++) await twin.scoreBatch([{ site: 'x', line: 'l', machine: `n${i}`, sensor: 'sensor-0', ts: 5000, value: 1, receivedAt: 0 }]);
    const fresh = await detector({ maxStreams: 12 });
    for (let i = 0; i < 12; i++) await fresh.scoreBatch([{ site: 'x', line: 'l', machine: `n${i}`, sensor: 'sensor-0', ts: 5000, value: 1, receivedAt: 0 }]);
    expect(twin.stateBytes() - fresh.stateBytes()).toBe(0);
  });

  it('scores column batches exactly as scoreBatch does, across evictions, a restore and series entries of several interners', async () => {
    // 3 machines × 4 sensors, room for 9 streams: streams are evicted and come back all the time.
    const mk = (m: number, s: number, i: number): Reading => ({
      site: 'p', line: 'l', machine: `m${m}`, sensor: `s${s}`, ts: 1_000_000 + i * 1000, value: Math.sin(i / 7 + s) * (m + 1) + ((i * 7919 + s) % 17) / 50, receivedAt: 0,
    });
    const round = (i: number): Reading[] => {
      const rs: Reading[] = [];
      for (let k = 0; k < 12; k++) {
        const j = (k * 5 + i) % 12; // a different stream order every round
        if ((i + j) % 5 === 0) continue;
        rs.push(mk(Math.floor(j / 4), j % 4, i));
      }
      rs.push({ ...rs[0] }); // duplicate
      rs.push({ ...rs[1], ts: rs[1].ts - 500, quality: 'bad' });
      return rs;
    };
    const objects = await detector({ maxStreams: 9 });
    let columns = await detector({ maxStreams: 9 });
    objects.setLimits!({ 'p/l/m1/s2': { upper: 1.5 } });
    columns.setLimits!({ 'p/l/m1/s2': { upper: 1.5 } });
    const interner = new SeriesInterner();
    const encoder = {};
    let compared = 0;
    for (let i = 0; i < 120; i++) {
      const batch = round(i);
      const expected = await objects.scoreBatch(batch);
      const input = ReadingBatch.fromReadings(batch, i % 3 === 0 ? new SeriesInterner() : interner);
      const out = await columns.scoreColumns(input);
      // Another user of the entries' cache slot (the service's score encoder) must keep it.
      if (i % 2 === 1) for (let k = 0; k < input.n; k++) Object.assign(input.series[k], { cacheOwner: encoder, cacheValue: k });
      if (i % 2 === 0) for (let k = 0; k < input.n; k++) if (input.series[k].cacheOwner === encoder) expect(input.series[k].cacheValue).toBeTypeOf('number');
      expect(out.sensor.toSensorScores(input, columns.modelVersion)).toEqual(expected.sensor);
      expect(out.machine).toEqual(expected.machine);
      expect(out.rejected.map((r) => [batch[r.point], r.reason])).toEqual(expected.rejected.map((r) => [r.reading, r.reason]));
      compared += expected.sensor.length;
      if (i === 60) {
        // In place (every cached stream state goes stale) and into a fresh detector; the eviction
        // order's second chances are not checkpointed, so the reference is restored too.
        await objects.restore(JSON.parse(JSON.stringify(await objects.snapshot())));
        await columns.restore(JSON.parse(JSON.stringify(await columns.snapshot())));
      }
      if (i === 90) {
        const fresh = await detector({ maxStreams: 9 });
        await fresh.restore(JSON.parse(JSON.stringify(await columns.snapshot())));
        await objects.restore(JSON.parse(JSON.stringify(await objects.snapshot())));
        columns = fresh;
      }
    }
    expect(compared).toBeGreaterThan(1000);
    expect(columns.streamCount()).toBe(9);
  });

  it('sends machine scores only for machines fed in the call, in the order the machines first appeared', async () => {
    const det = await detector();
    const mk = (m: string, i: number): Reading => ({ site: 's', line: 'l', machine: m, sensor: 'v', ts: 1000 + i, value: i % 3, receivedAt: 0 });
    await det.scoreBatch([mk('a', 0), mk('b', 0), mk('c', 0)]);
    expect((await det.scoreBatch([mk('c', 1), mk('a', 1)])).machine.map((m) => m.machine)).toEqual(['a', 'c']);
    expect((await det.scoreBatch([mk('b', 2)])).machine.map((m) => m.machine)).toEqual(['b']);
  });

  it('evicts streams idle longer than idleEvictMs, wherever they sit in the eviction order', async () => {
    let clock = 0;
    const det = await createDetector(DetectorConfig.parse({ idleEvictMs: 1000 }), { now: () => clock });
    open.push(det);
    const mk = (m: string, i: number): Reading => ({ site: 's', line: 'l', machine: m, sensor: 'v', ts: 1000 + i, value: i, receivedAt: 0 });
    await det.scoreBatch([mk('a', 0), mk('b', 0), mk('c', 0)]);
    clock = 600;
    await det.scoreBatch([mk('a', 1)]); // a is fresh again (it stays first in the map)
    clock = 1300;
    await det.scoreBatch([mk('d', 0)]);
    expect(det.streamCount()).toBe(2); // b and c went, a and d stay
    const out = await det.scoreBatch([mk('a', 2), mk('b', 5)]);
    expect(out.sensor.map((x) => x.warmingUp)).toEqual([true, true]);
    expect((await det.snapshot()).streams.map((x) => [x.machine, x.n])).toEqual([['a', 3], ['d', 1], ['b', 1]]);
  });
});

describe('services > anomaly > detector > stats', () => {
  it('surprise is 0 for a perfect prediction and grows without saturating', async () => {
    const { twoSidedSurprise, chiSquareSurprise } = await import('./stats.ts');
    expect(twoSidedSurprise(0)).toBe(0);
    expect(twoSidedSurprise(1.959964)).toBeCloseTo(-Math.log10(0.05), 3);
    expect(twoSidedSurprise(10)).toBeGreaterThan(twoSidedSurprise(5));
    expect(twoSidedSurprise(100)).toBeGreaterThan(twoSidedSurprise(50));
    expect(chiSquareSurprise(3.841, 1)).toBeCloseTo(-Math.log10(0.05), 2);
    expect(chiSquareSurprise(500, 4)).toBeGreaterThan(chiSquareSurprise(100, 4));
  });
});
