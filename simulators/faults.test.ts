import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SimulatorConfig, type FaultSpecInput } from './config.schema.ts';
import { parseFaultArg } from './faults.ts';
import { LabelRecorder, parseLabels } from './labels.ts';
import { PlantModel } from './model.ts';
import { SimulationRunner } from './runner.ts';
import { CaptureOutput } from './testing.ts';

const T0 = Date.parse('2026-01-05T06:00:00Z');
const FAULT_AT_S = 600;
const FAULT_S = 600;
const START = T0 + FAULT_AT_S * 1000;
const END = START + FAULT_S * 1000;
const RUN_S = 1800;
const dir = mkdtempSync(join(tmpdir(), 'sim-faults-'));

function config(faults: FaultSpecInput[]): SimulatorConfig {
  return SimulatorConfig.parse({
    seed: 11,
    clock: { start: new Date(T0).toISOString(), speed: 0, durationS: RUN_S },
    faults: { random: { enabled: false }, scheduled: faults },
    // Always running, so physical faults act the whole window.
    plant: { sites: [{ id: 's', lines: [{ id: 'l', machines: [{ id: 'p', type: 'pump', duty: { onFraction: 1, minLoad: 1 } }] }] }] },
  });
}

async function simulate(faults: FaultSpecInput[], format: 'jsonl' | 'csv' = 'jsonl') {
  const cfg = config(faults);
  const model = new PlantModel(cfg);
  const output = new CaptureOutput();
  const file = join(dir, `labels-${Math.random().toString(36).slice(2)}.${format}`);
  const labels = new LabelRecorder(file, format);
  const runner = new SimulationRunner({ model, output, labels, speed: 0, tickMs: 100, startMs: T0, endMs: T0 + RUN_S * 1000 });
  await runner.run();
  return { output, labelFile: parseLabels(readFileSync(file, 'utf8')), rawLabels: readFileSync(file, 'utf8') };
}

const baseline = await simulate([]);
const sensor = (o: CaptureOutput, s: string) => o.of(`s/l/p/${s}`);
const inWindow = <T extends { ts: number }>(xs: T[], from = START, to = END) => xs.filter((e) => e.ts >= from && e.ts < to);
const outside = <T extends { ts: number }>(xs: T[]) => xs.filter((e) => e.ts < START || e.ts >= END + 60_000);
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sd = (xs: number[]) => Math.sqrt(mean(xs.map((x) => (x - mean(xs)) ** 2)));
const values = (xs: { value: number }[]) => xs.map((e) => e.value);
const strip = (xs: { ts: number; value: number; emitAt: number }[]) => xs.map((e) => ({ ts: e.ts, value: e.value }));

function expectLabel(labels: ReturnType<typeof parseLabels>, kind: string, sensorId: string, affects: string[]) {
  expect(labels).toHaveLength(1);
  expect(labels[0]).toMatchObject({ kind, site: 's', line: 'l', machine: 'p', machineKey: 's/l/p', sensor: sensorId, start: START, end: END, startIso: new Date(START).toISOString() });
  expect([...labels[0].affects].sort()).toEqual([...affects].sort());
}

describe('simulators > faults: each kind shows up in the signal and in the label file', () => {
  it('baseline has no labels and a steady running pump', () => {
    expect(baseline.labelFile).toEqual([]);
    expect(sensor(baseline.output, 'flow')).toHaveLength(RUN_S);
  });

  it('bearing_wear: vibration and bearing temperature rise slowly; flow is untouched', async () => {
    const r = await simulate([{ kind: 'bearing_wear', machine: 's/l/p', at: FAULT_AT_S, durationS: FAULT_S }]);
    expectLabel(r.labelFile, 'bearing_wear', '*', ['vibration', 'bearing_temp']);
    const lastMinute = (o: CaptureOutput, s: string) => values(inWindow(sensor(o, s), END - 60_000, END));
    const firstMinute = (o: CaptureOutput, s: string) => values(inWindow(sensor(o, s), START, START + 60_000));
    expect(mean(lastMinute(r.output, 'vibration'))).toBeGreaterThan(3 * mean(lastMinute(baseline.output, 'vibration')));
    expect(mean(firstMinute(r.output, 'vibration'))).toBeLessThan(1.1 * mean(firstMinute(baseline.output, 'vibration'))); // slow onset
    expect(mean(lastMinute(r.output, 'bearing_temp')) - mean(lastMinute(baseline.output, 'bearing_temp'))).toBeGreaterThan(10);
    expect(strip(sensor(r.output, 'flow'))).toEqual(strip(sensor(baseline.output, 'flow')));
    expect(strip(outside(sensor(r.output, 'vibration')))).toEqual(strip(outside(sensor(baseline.output, 'vibration'))));
  });

  it('overheating: temperature climbs by ~25 °C, current a little, vibration untouched', async () => {
    const r = await simulate([{ kind: 'overheating', machine: 'p', at: FAULT_AT_S, durationS: FAULT_S }]);
    expectLabel(r.labelFile, 'overheating', '*', ['bearing_temp', 'current']);
    const late = (o: CaptureOutput, s: string) => values(inWindow(sensor(o, s), START + 300_000, END));
    expect(mean(late(r.output, 'bearing_temp')) - mean(late(baseline.output, 'bearing_temp'))).toBeGreaterThan(20);
    expect(mean(late(r.output, 'current')) / mean(late(baseline.output, 'current'))).toBeGreaterThan(1.03);
    expect(strip(sensor(r.output, 'vibration'))).toEqual(strip(sensor(baseline.output, 'vibration')));
  });

  it('cavitation: flow and pressure drop, pressure and vibration get noisy', async () => {
    const r = await simulate([{ kind: 'cavitation', machine: 'p', at: FAULT_AT_S, durationS: FAULT_S }]);
    expectLabel(r.labelFile, 'cavitation', '*', ['current', 'vibration', 'pressure', 'flow']);
    const w = (o: CaptureOutput, s: string) => values(inWindow(sensor(o, s), START + 30_000, END));
    expect(mean(w(r.output, 'flow'))).toBeLessThan(0.8 * mean(w(baseline.output, 'flow')));
    expect(mean(w(r.output, 'pressure'))).toBeLessThan(0.9 * mean(w(baseline.output, 'pressure')));
    expect(sd(w(r.output, 'pressure'))).toBeGreaterThan(3 * sd(w(baseline.output, 'pressure')));
    expect(mean(w(r.output, 'vibration'))).toBeGreaterThan(1.5 * mean(w(baseline.output, 'vibration')));
    expect(strip(sensor(r.output, 'bearing_temp'))).toEqual(strip(sensor(baseline.output, 'bearing_temp')));
  });

  it('rejects cavitation on a machine that is not a pump', () => {
    const c = SimulatorConfig.parse({
      faults: { scheduled: [{ kind: 'cavitation', machine: 'm' }] },
      plant: { sites: [{ id: 's', lines: [{ id: 'l', machines: [{ id: 'm', type: 'motor' }] }] }] },
    });
    expect(() => new PlantModel(c)).toThrow(/applies to pumps only/);
  });

  it('stuck: the sensor repeats its last value before the fault for the whole window', async () => {
    const r = await simulate([{ kind: 'stuck', machine: 'p', sensor: 'pressure', at: FAULT_AT_S, durationS: FAULT_S }]);
    expectLabel(r.labelFile, 'stuck', 'pressure', ['pressure']);
    const w = inWindow(sensor(r.output, 'pressure'));
    expect(w).toHaveLength(FAULT_S);
    const before = sensor(r.output, 'pressure').filter((e) => e.ts < START).pop()!;
    expect(new Set(values(w))).toEqual(new Set([before.value]));
    expect(new Set(values(inWindow(sensor(baseline.output, 'pressure')))).size).toBeGreaterThan(5);
    expect(strip(outside(sensor(r.output, 'pressure')))).toEqual(strip(outside(sensor(baseline.output, 'pressure'))));
    // The machine's other sensors are untouched (regression: computing the frozen value once
    // clobbered the sample being emitted for the sensors after it).
    for (const other of ['current', 'vibration', 'bearing_temp', 'flow']) expect(strip(sensor(r.output, other)), other).toEqual(strip(sensor(baseline.output, other)));
  });

  it('spike: a few samples jump by a large part of the span, the rest are unchanged', async () => {
    const r = await simulate([{ kind: 'spike', machine: 'p', sensor: 'vibration', at: FAULT_AT_S, durationS: FAULT_S, probability: 0.05 }]);
    expectLabel(r.labelFile, 'spike', 'vibration', ['vibration']);
    const got = inWindow(sensor(r.output, 'vibration'));
    const base = inWindow(sensor(baseline.output, 'vibration'));
    const diffs = got.map((e, i) => Math.abs(e.value - base[i].value));
    const spikes = diffs.filter((d) => d > 0);
    expect(spikes.length).toBeGreaterThanOrEqual(15); // ~5 % of 600
    expect(spikes.length).toBeLessThanOrEqual(60);
    // ≥ 30 % of the 10 mm/s span, or a downward spike clipped at 0 (an RMS value is never negative).
    got.forEach((e, i) => diffs[i] > 0 && expect(diffs[i] > 3 || e.value === 0, `${base[i].value} → ${e.value}`).toBe(true));
    expect(diffs[0]).toBeGreaterThan(0); // the first sample of the window is always hit
  });

  it('drift: an offset growing linearly to a quarter of the span', async () => {
    const r = await simulate([{ kind: 'drift', machine: 'p', sensor: 'bearing_temp', at: FAULT_AT_S, durationS: FAULT_S }]);
    expectLabel(r.labelFile, 'drift', 'bearing_temp', ['bearing_temp']);
    const got = inWindow(sensor(r.output, 'bearing_temp'));
    const base = inWindow(sensor(baseline.output, 'bearing_temp'));
    const off = got.map((e, i) => e.value - base[i].value);
    const expected = (i: number) => (0.25 * 100 * (got[i].ts - START)) / (END - START);
    for (const i of [100, 300, 599]) expect(Math.abs(Math.abs(off[i]) - expected(i))).toBeLessThan(0.11);
    expect(strip(outside(sensor(r.output, 'bearing_temp')))).toEqual(strip(outside(sensor(baseline.output, 'bearing_temp'))));
  });

  it('dropout: no messages from the sensor during the window', async () => {
    const r = await simulate([{ kind: 'dropout', machine: 'p', sensor: 'flow', at: FAULT_AT_S, durationS: FAULT_S }]);
    expectLabel(r.labelFile, 'dropout', 'flow', ['flow']);
    expect(inWindow(sensor(r.output, 'flow'))).toHaveLength(0);
    expect(inWindow(sensor(baseline.output, 'flow'))).toHaveLength(FAULT_S);
    expect(sensor(r.output, 'current')).toHaveLength(RUN_S);
  });

  it('dropout without a sensor silences the whole machine', async () => {
    const r = await simulate([{ kind: 'dropout', machine: 'p', at: FAULT_AT_S, durationS: FAULT_S }]);
    expectLabel(r.labelFile, 'dropout', '*', ['current', 'vibration', 'bearing_temp', 'pressure', 'flow']);
    expect(r.output.emissions.filter((e) => e.ts >= START && e.ts < END)).toHaveLength(0);
  });

  it('clock_skew: device timestamps shift by skewMs, values and send times do not', async () => {
    const r = await simulate([{ kind: 'clock_skew', machine: 'p', sensor: 'current', at: FAULT_AT_S, durationS: FAULT_S, skewMs: 90_000 }]);
    expectLabel(r.labelFile, 'clock_skew', 'current', ['current']);
    const got = sensor(r.output, 'current').filter((e) => e.emitAt >= START && e.emitAt < END);
    const base = inWindow(sensor(baseline.output, 'current'));
    expect(got.map((e) => e.ts)).toEqual(base.map((e) => e.ts + 90_000));
    expect(values(got)).toEqual(values(base));
    expect(got.map((e) => e.emitAt)).toEqual(base.map((e) => e.ts));
  });

  it('out_of_order: some samples are delivered late, after newer ones; none is lost', async () => {
    const r = await simulate([{ kind: 'out_of_order', machine: 'p', sensor: 'flow', at: FAULT_AT_S, durationS: FAULT_S }]);
    expectLabel(r.labelFile, 'out_of_order', 'flow', ['flow']);
    const got = sensor(r.output, 'flow');
    const inversions = got.filter((e, i) => i > 0 && e.ts < got[i - 1].ts).length;
    expect(inversions).toBeGreaterThan(100);
    const key = (e: { ts: number; value: number }) => `${e.ts}:${e.value}`;
    expect(got.map(key).sort()).toEqual(sensor(baseline.output, 'flow').map(key).sort());
    expect(outside(got).every((e, i, a) => i === 0 || e.ts > a[i - 1].ts)).toBe(true);
  });

  it('duplicate: some samples are sent twice', async () => {
    const r = await simulate([{ kind: 'duplicate', machine: 'p', sensor: 'vibration', at: FAULT_AT_S, durationS: FAULT_S, probability: 0.3 }]);
    expectLabel(r.labelFile, 'duplicate', 'vibration', ['vibration']);
    const got = inWindow(sensor(r.output, 'vibration'));
    const extra = got.length - FAULT_S;
    expect(extra).toBeGreaterThan(120);
    expect(extra).toBeLessThan(240);
    expect(new Set(got.map((e) => `${e.ts}:${e.value}`)).size).toBe(FAULT_S);
  });

  it('malformed: some payloads are broken (not valid readings); the others are intact', async () => {
    const r = await simulate([{ kind: 'malformed', machine: 'p', sensor: 'pressure', at: FAULT_AT_S, durationS: FAULT_S, probability: 0.5 }]);
    expectLabel(r.labelFile, 'malformed', 'pressure', ['pressure']);
    const got = inWindow(sensor(r.output, 'pressure'));
    expect(got).toHaveLength(FAULT_S);
    const bad = got.filter((e) => e.malformed !== undefined);
    expect(bad.length).toBeGreaterThan(240);
    expect(bad.length).toBeLessThan(360);
    for (const e of bad) {
      let ok = false;
      try {
        const v = JSON.parse(e.malformed!) as { ts?: unknown; value?: unknown };
        ok = typeof v.value === 'number' && typeof v.ts === 'number';
      } catch {
        ok = false;
      }
      expect(ok, e.malformed).toBe(false);
    }
  });

  it('writes CSV labels with a header when asked', async () => {
    const r = await simulate([{ kind: 'spike', machine: 'p', sensor: 'flow', at: FAULT_AT_S, durationS: FAULT_S }], 'csv');
    expect(r.rawLabels.split('\n')[0]).toBe('id,site,line,machine,machineKey,sensor,kind,start,end,startIso,endIso,affects,severity,source');
    expectLabel(r.labelFile, 'spike', 'flow', ['flow']);
  });

  it('injects a fault on demand and labels it at once', async () => {
    const cfg = config([]);
    const model = new PlantModel(cfg);
    const output = new CaptureOutput();
    const labels = new LabelRecorder();
    const runner = new SimulationRunner({ model, output, labels, speed: 0, tickMs: 100, startMs: T0, endMs: T0 + 120_000 });
    const label = runner.injectFault({ kind: 'dropout', machine: 'p', sensor: 'flow', at: 30, durationS: 30 });
    expect(labels.labels).toEqual([label]);
    expect(label).toMatchObject({ kind: 'dropout', source: 'injected', start: T0 + 30_000, end: T0 + 60_000 });
    await runner.run();
    expect(output.of('s/l/p/flow').filter((e) => e.ts >= T0 + 30_000 && e.ts < T0 + 60_000)).toHaveLength(0);
    expect(output.of('s/l/p/flow')).toHaveLength(90);
  });

  it('labels random faults when the simulation reaches them', async () => {
    const cfg = SimulatorConfig.parse({ seed: 5, clock: { start: new Date(T0).toISOString() }, faults: { random: { meanIntervalS: 120, minDurationS: 20, maxDurationS: 40 } } });
    const model = new PlantModel(cfg);
    const labels = new LabelRecorder();
    const runner = new SimulationRunner({ model, output: new CaptureOutput(), labels, speed: 0, tickMs: 100, startMs: T0, endMs: T0 + 3_600_000 });
    await runner.run();
    expect(labels.labels.length).toBeGreaterThanOrEqual(28);
    expect(labels.labels.length).toBeLessThanOrEqual(31);
    for (const l of labels.labels) {
      expect(l.start).toBeGreaterThanOrEqual(T0);
      expect(l.end - l.start).toBeGreaterThanOrEqual(20_000);
      expect(l.end - l.start).toBeLessThanOrEqual(40_000);
      expect(cfg.faults.random.kinds).toContain(l.kind);
    }
  });
});

describe('simulators > faults > CLI syntax', () => {
  it('parses kind:target@start+duration,key=value', () => {
    expect(parseFaultArg('spike:demo/line-1/pump-1/vibration@30+20,probability=0.2,severity=2')).toMatchObject({
      kind: 'spike',
      machine: 'demo/line-1/pump-1',
      sensor: 'vibration',
      at: 30,
      durationS: 20,
      probability: 0.2,
      severity: 2,
    });
    expect(parseFaultArg('bearing_wear:pump-1+3600')).toMatchObject({ kind: 'bearing_wear', machine: 'pump-1', at: 0, durationS: 3600 });
    expect(parseFaultArg('stuck:pump-1/flow')).toMatchObject({ machine: 'pump-1', sensor: 'flow' });
    expect(() => parseFaultArg('melting:pump-1')).toThrow(/invalid --fault "melting:pump-1": kind/);
    expect(() => parseFaultArg('spike pump')).toThrow(/expected kind:machine/);
  });
});
