import { describe, expect, it } from 'vitest';
import { SimulatorConfig, type SimulatorConfigInput } from './config.schema.ts';
import { PlantModel, sampleTime, type Emission } from './model.ts';
import { loadPlant } from './plants.ts';

const T0 = Date.parse('2026-01-05T06:00:00Z'); // a Monday

function cfg(extra: SimulatorConfigInput = {}): SimulatorConfig {
  return SimulatorConfig.parse({ clock: { start: new Date(T0).toISOString() }, faults: { random: { enabled: false } }, ...extra });
}

function run(model: PlantModel, from: number, to: number, stepMs: number): { path: string; ts: number; value: number; emitAt: number }[] {
  const out: { path: string; ts: number; value: number; emitAt: number }[] = [];
  for (let t = from; t < to; t += stepMs) {
    for (const b of model.generate(t, Math.min(to, t + stepMs))) for (const e of b.emissions) out.push({ path: e.sensor.path, ts: e.ts, value: e.value, emitAt: e.emitAt });
  }
  return out;
}

function series(model: PlantModel, path: string, from: number, to: number): Emission[] {
  const m = model.machine(path.split('/').slice(0, 3).join('/'));
  return m.generate(from, to, []).filter((e) => e.sensor.path === path);
}

function pearson(a: number[], b: number[]): number {
  const n = a.length;
  const ma = a.reduce((x, y) => x + y, 0) / n;
  const mb = b.reduce((x, y) => x + y, 0) / n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) ** 2;
    sbb += (b[i] - mb) ** 2;
  }
  return sab / Math.sqrt(saa * sbb);
}

describe('simulators > model > determinism', () => {
  it('gives identical data for the same seed, however the time range is cut into ticks', () => {
    const a = run(new PlantModel(cfg({ seed: 7, faults: { random: { enabled: true, meanIntervalS: 60 } } })), T0, T0 + 600_000, 100);
    const b = run(new PlantModel(cfg({ seed: 7, faults: { random: { enabled: true, meanIntervalS: 60 } } })), T0, T0 + 600_000, 7_000);
    expect(a.length).toBeGreaterThan(14_000);
    // Same seed, different tick size: same messages (order within a tick may interleave machines differently).
    const key = (x: { path: string; emitAt: number; ts: number }) => `${x.path}|${x.emitAt}|${x.ts}`;
    expect([...a].sort((x, y) => key(x).localeCompare(key(y)))).toEqual([...b].sort((x, y) => key(x).localeCompare(key(y))));
  });

  it('computes a late window without computing the earlier ones (pure function of time)', () => {
    const later = T0 + 3 * 86_400_000 + 12_345;
    const fresh = run(new PlantModel(cfg({ seed: 3 })), later, later + 60_000, 1_000);
    const warmed = new PlantModel(cfg({ seed: 3 }));
    run(warmed, later - 7_200_000, later, 60_000);
    expect(run(warmed, later, later + 60_000, 1_000)).toEqual(fresh);
  });

  it('stays a pure function of time with shifts and long shift breaks', () => {
    const shifted = () =>
      new PlantModel(
        cfg({
          seed: 4,
          plant: {
            sites: [
              {
                id: 's',
                shifts: { utcOffsetMinutes: 120, shifts: [{ start: '22:00', end: '06:00', days: [1, 3] }] },
                lines: [{ id: 'l', machines: [{ id: 'a', type: 'compressor' }, { id: 'c', type: 'cnc_spindle' }, { id: 'm', type: 'motor', duty: { periodS: 7 } }] }],
              },
            ],
          },
        }),
      );
    const when = Date.parse('2026-01-09T12:00:00Z'); // Friday: a long break since Thursday 06:00 local
    const fresh = run(shifted(), when, when + 30_000, 1_000);
    const warmed = shifted();
    run(warmed, when - 3 * 86_400_000, when - 3 * 86_400_000 + 60_000, 60_000);
    run(warmed, when - 600_000, when, 60_000);
    expect(run(warmed, when, when + 30_000, 1_000)).toEqual(fresh);
  });

  it('gives different data for a different seed', () => {
    const a = run(new PlantModel(cfg({ seed: 1 })), T0, T0 + 60_000, 1_000);
    const b = run(new PlantModel(cfg({ seed: 2 })), T0, T0 + 60_000, 1_000);
    expect(a.length).toBe(b.length);
    const same = a.filter((x, i) => x.value === b[i].value).length;
    expect(same / a.length).toBeLessThan(0.5);
  });
});

describe('simulators > model > physics', () => {
  const pumpPlant = (duty: Record<string, number> = {}) =>
    cfg({ plant: { sites: [{ id: 's', lines: [{ id: 'l', machines: [{ id: 'p', type: 'pump', duty: { periodS: 600, ...duty } }] }] }] } });

  it('correlates a pump\'s current, flow, pressure and vibration with its speed, and stops them when stopped', () => {
    const model = new PlantModel(pumpPlant({ onFraction: 0.6 }));
    const from = T0;
    const to = T0 + 3_600_000;
    const get = (s: string) => series(model, `s/l/p/${s}`, from, to).map((e) => e.value);
    const [current, flow, pressure, vibration] = ['current', 'flow', 'pressure', 'vibration'].map(get);
    expect(pearson(current, flow)).toBeGreaterThan(0.9);
    expect(pearson(flow, pressure)).toBeGreaterThan(0.9);
    expect(pearson(current, vibration)).toBeGreaterThan(0.8);
    // While stopped (idle segments) current reads zero and flow is ~0.
    const stopped = current.map((c, i) => ({ c, f: flow[i], st: model.stateOf('s/l/p', from + i * 1000) })).filter((x) => x.st.segment === 'idle' && x.st.sinceSegmentStart > 20_000);
    expect(stopped.length).toBeGreaterThan(100);
    for (const x of stopped) {
      expect(x.c).toBeLessThan(0.5);
      expect(x.f).toBeLessThan(3);
    }
  });

  it('lets bearing temperature lag load by minutes (thermal time constant)', () => {
    const model = new PlantModel(pumpPlant({ onFraction: 0.5, periodS: 3600 }));
    // Find a start of a run segment and compare the temperature right after it with 10 minutes later.
    let start = -1;
    for (let t = T0; t < T0 + 2 * 3_600_000; t += 1000) {
      const st = model.stateOf('s/l/p', t);
      if (st.segment === 'on' && st.sinceSegmentStart < 1000) {
        start = t;
        break;
      }
    }
    expect(start).toBeGreaterThan(0);
    const temp = (t: number) => series(model, 's/l/p/bearing_temp', t, t + 1000)[0].value;
    const flow = (t: number) => series(model, 's/l/p/flow', t, t + 1000)[0].value;
    expect(flow(start + 10_000)).toBeGreaterThan(80); // speed follows within seconds
    expect(temp(start + 600_000) - temp(start + 10_000)).toBeGreaterThan(8); // temperature takes minutes
  });

  it('stops machines outside their shifts', () => {
    const model = new PlantModel(
      cfg({
        plant: {
          sites: [{ id: 's', shifts: { shifts: [{ start: '06:00', end: '14:00', days: [1, 2, 3, 4, 5] }] }, lines: [{ id: 'l', machines: [{ id: 'c', type: 'conveyor', duty: { onFraction: 1 } }] }] }],
        },
      }),
    );
    const at = (iso: string) => series(model, 's/l/c/speed', Date.parse(iso), Date.parse(iso) + 1000)[0].value;
    expect(at('2026-01-05T10:00:00Z')).toBeGreaterThan(1.3); // Monday 10:00, in shift
    expect(at('2026-01-05T20:00:00Z')).toBe(0); // Monday 20:00
    expect(at('2026-01-10T10:00:00Z')).toBe(0); // Saturday
  });

  it('vents a compressor steadily over a shift break (no saw-tooth restarts while off)', () => {
    const model = new PlantModel(
      cfg({ plant: { sites: [{ id: 's', shifts: { shifts: [{ start: '06:00', end: '14:00' }] }, lines: [{ id: 'l', machines: [{ id: 'a', type: 'compressor' }] }] }] } }),
    );
    const at = (iso: string, plusS: number) => series(model, 's/l/a/pressure', Date.parse(iso) + plusS * 1000, Date.parse(iso) + plusS * 1000 + 1000)[0].value;
    // The last cycle that started before 14:00 may still run; from 14:02 on the machine is off.
    const p = [120, 180, 240, 300, 420, 600, 900].map((s) => at('2026-01-05T14:00:00Z', s));
    for (let i = 1; i < p.length; i++) expect(p[i], p.join(' ')).toBeLessThan(p[i - 1]);
    expect(p[p.length - 1]).toBeLessThan(0.5);
    expect(at('2026-01-05T20:00:00Z', 0)).toBeLessThan(0.1);
    expect(at('2026-01-05T10:00:00Z', 0)).toBeGreaterThan(6.8); // in shift: between cut-in and cut-out
  });

  it('samples from 0.1 Hz to 1 kHz on a fixed grid and quantises values', () => {
    const model = new PlantModel(
      cfg({
        plant: {
          sites: [
            {
              id: 's',
              lines: [
                {
                  id: 'l',
                  machines: [
                    { id: 'slow', type: 'motor', rateHz: 0.1 },
                    { id: 'fast', type: 'motor', rateHz: 1, sensors: [{ id: 'vibration', rateHz: 1000, quantum: 0.05 }, { id: 'current' }] },
                  ],
                },
              ],
            },
          ],
        },
      }),
    );
    const slow = series(model, 's/l/slow/current', T0, T0 + 60_000);
    expect(slow.map((e) => e.ts - T0)).toEqual([0, 10_000, 20_000, 30_000, 40_000, 50_000]);
    const fast = series(model, 's/l/fast/vibration', T0, T0 + 1000);
    expect(fast).toHaveLength(1000);
    expect(new Set(fast.map((e) => e.ts)).size).toBe(1000);
    for (const e of fast) expect(Math.abs(e.value / 0.05 - Math.round(e.value / 0.05))).toBeLessThan(1e-9);
    expect(series(model, 's/l/fast/current', T0, T0 + 1000)).toHaveLength(1);
    expect(sampleTime(3, 0.3)).toBe(10_000);
  });

  it('adds sensor noise (no two consecutive samples of a running pump are all equal)', () => {
    const model = new PlantModel(pumpPlant({ onFraction: 1 }));
    const v = series(model, 's/l/p/vibration', T0 + 600_000, T0 + 660_000).map((e) => e.value);
    const sd = Math.sqrt(v.reduce((a, x) => a + (x - v[0]) ** 2, 0) / v.length);
    expect(sd).toBeGreaterThan(0.02);
    expect(new Set(v).size).toBeGreaterThan(20);
  });
});

describe('simulators > config', () => {
  it('defaults to the demo plant with random faults, JSON over MQTT', () => {
    const c = SimulatorConfig.parse({});
    const model = new PlantModel(c, { startMs: T0 });
    expect(model.machines.map((m) => m.key)).toEqual(['demo/line-1/pump-1', 'demo/line-1/pump-2', 'demo/line-1/compressor-1', 'demo/line-2/cnc-1', 'demo/line-2/conveyor-1']);
    expect(c.faults.random.enabled).toBe(true);
    expect(c.output).toMatchObject({ kind: 'mqtt', mqtt: { format: 'json', qos: 0, connections: 'machine' } });
  });

  it('rejects unknown keys, duplicate ids, unknown sensors and params', () => {
    expect(SimulatorConfig.safeParse({ sede: 1 }).success).toBe(false);
    const dup = SimulatorConfig.safeParse({ plant: { sites: [{ id: 's', lines: [{ id: 'l', machines: [{ id: 'a', type: 'pump' }, { id: 'a', type: 'motor' }] }] }] } });
    expect(dup.success).toBe(false);
    expect(JSON.stringify(dup.error?.issues[0])).toContain('duplicate id');
    const badSensor = SimulatorConfig.parse({ plant: { sites: [{ id: 's', lines: [{ id: 'l', machines: [{ id: 'a', type: 'pump', sensors: [{ id: 'rpm' }] }] }] }] } });
    expect(() => new PlantModel(badSensor)).toThrow(/a pump has no sensor "rpm"/);
    const badParam = SimulatorConfig.parse({ plant: { sites: [{ id: 's', lines: [{ id: 'l', machines: [{ id: 'a', type: 'pump', params: { ratedRpm: 3 } }] }] }] } });
    expect(() => new PlantModel(badParam)).toThrow(/unknown param "ratedRpm"/);
    expect(SimulatorConfig.safeParse({ plant: { sites: [{ id: 's', lines: [{ id: 'l', machines: [{ id: 'a', type: 'pump', rateHz: 2000 }] }] }] } }).success).toBe(false);
  });

  it('builds a load plant of N machines of every type', () => {
    const model = new PlantModel(cfg({ plant: loadPlant({ machines: 25, rateHz: 10 }) }));
    expect(model.machines).toHaveLength(25);
    expect(new Set(model.machines.map((m) => m.type))).toEqual(new Set(['pump', 'cnc_spindle', 'compressor', 'conveyor', 'motor']));
    expect(model.naturalRate).toBe(model.machines.reduce((a, m) => a + m.sensors.length * 10, 0));
  });
});
