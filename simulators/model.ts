/**
 * The plant model: a pure function of (config, seed, time). `generate(t0, t1)` returns every message
 * the plant emits in simulated time [t0, t1), computed without hidden state, so it can run in
 * virtual time (tests, back-fill, load) or against the wall clock (demo) and gives identical data
 * for the same config and seed however the time range is cut into ticks.
 *
 * Operating state: each machine repeats a duty cycle (run at a per-cycle load, then idle/stop), off
 * outside its shifts. Speed and temperature follow the load through first-order lags (seconds and
 * minutes); each lag's value at a cycle start is computed from a fixed checkpoint far enough back that
 * the history before it has decayed, so the value never depends on where a run started.
 */
import { ConfigError } from '../common/errors.ts';
import { machineKey } from '../common/topics.ts';
import { FAULT_KINDS, type FaultKind, type MachineSpec, type ShiftPattern, type SimulatorConfig } from './config.schema.ts';
import {
  affectedSensors,
  applyPhysicalFault,
  buildFault,
  DEFAULT_PROBABILITY,
  faultApplies,
  isPhysical,
  labelOf,
  malformedPayload,
  parseFaultSpec,
  type Fault,
  type FaultLabel,
  type ResolvedTarget,
} from './faults.ts';
import type { FaultSpecInput } from './config.schema.ts';
import { MACHINE_TYPE_DEFS, neutralEffects, type DutyDefaults, type Effects, type MachineState, type MachineTypeDef, type SensorDef } from './machines.ts';
import { gaussian, hash3, streamId, uniform } from './prng.ts';

export interface SensorModel {
  id: string;
  /** `<site>/<line>/<machine>/<sensor>` (the MQTT topic without its prefix). */
  path: string;
  unit: string;
  def: SensorDef;
  /** Index into the type's sensor list (evaluate's output slot). */
  slot: number;
  rateHz: number;
  noiseStd: number;
  quantum: number;
  /** Decimal places of `quantum`, to print 0.3 rather than 0.30000000000000004; scale = 10^decimals. */
  decimals: number;
  scale: number;
  stream: number;
  /** Per-unit calibration offset (a real fleet is never identical). */
  offset: number;
}

/** One message the plant emits. `malformed` replaces the JSON payload with broken bytes. */
export interface Emission {
  sensor: SensorModel;
  /** Device timestamp (epoch ms), after clock skew. */
  ts: number;
  value: number;
  /** Simulated time at which it is sent (later than ts when held back out of order). */
  emitAt: number;
  malformed?: string;
}

export interface MachineBatch {
  machine: MachineModel;
  emissions: Emission[];
}

interface Segment {
  from: number;
  to: number;
  target: number;
  kind: 'on' | 'idle' | 'off';
}
interface Period {
  start: number;
  segments: Segment[];
  random: number;
  /** For periods outside the shifts: when the machine stopped (start of the off run). */
  offSince?: number;
}
interface LagState {
  tau: number;
  /** Periods between checkpoints, also the history length used to seed a checkpoint. */
  block: number;
  cache: Map<number, number>;
}

const DAY_MS = 86_400_000;

export class ShiftCalendar {
  private readonly offsetMs: number;
  private readonly shifts: { start: number; end: number; days: Set<number> }[];
  constructor(p: ShiftPattern) {
    this.offsetMs = p.utcOffsetMinutes * 60_000;
    this.shifts = p.shifts.map((s) => ({ start: toMinutes(s.start), end: toMinutes(s.end), days: new Set(s.days) }));
  }
  get alwaysOn(): boolean {
    return this.shifts.length === 0;
  }
  isOn(t: number): boolean {
    if (this.shifts.length === 0) return true;
    const local = t + this.offsetMs;
    const day = Math.floor(local / DAY_MS);
    const dow = (((day + 4) % 7) + 7) % 7; // 1970-01-01 was a Thursday
    const minute = Math.floor((local - day * DAY_MS) / 60_000);
    for (const s of this.shifts) {
      if (s.start < s.end) {
        if (s.days.has(dow) && minute >= s.start && minute < s.end) return true;
      } else if ((s.days.has(dow) && minute >= s.start) || (s.days.has((dow + 6) % 7) && minute < s.end)) {
        return true;
      }
    }
    return false;
  }
  /** Local hour of day as a fraction, for the daily ambient swing. */
  hourOfDay(t: number): number {
    const local = t + this.offsetMs;
    return ((((local % DAY_MS) + DAY_MS) % DAY_MS) / 3_600_000);
  }
}

function toMinutes(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number);
  return h * 60 + m;
}

function decimalsOf(q: number): number {
  if (q <= 0) return 6;
  const s = String(q);
  const i = s.indexOf('.');
  if (s.includes('e-')) return Math.min(12, Number(s.split('e-')[1]) + (i >= 0 ? s.indexOf('e') - i - 1 : 0));
  return i < 0 ? 0 : Math.min(12, s.length - i - 1);
}

export class MachineModel {
  readonly site: string;
  readonly line: string;
  readonly id: string;
  /** `<site>/<line>/<machine>`: the Kafka record key. */
  readonly key: string;
  readonly typeDef: MachineTypeDef;
  readonly params: Record<string, number>;
  readonly sensors: SensorModel[];
  /** Sensors grouped by sampling rate: one machine state per sample instant. */
  readonly rateGroups: { rateHz: number; sensors: SensorModel[] }[];
  readonly duty: DutyDefaults;
  readonly shifts: ShiftCalendar;
  private readonly stream: number;
  private readonly periodMs: number;
  private readonly phaseMs: number;
  private readonly wanderPeriods: [number, number, number, number];
  private readonly periods = new Map<number, Period>();
  private readonly mech: LagState;
  private readonly thermal: LagState;
  private readonly clean: Float64Array;
  private readonly gain: Float64Array;

  constructor(seed: number, site: string, line: string, spec: MachineSpec, shifts: ShiftPattern) {
    this.site = site;
    this.line = line;
    this.id = spec.id;
    this.key = machineKey({ site, line, machine: spec.id });
    this.typeDef = MACHINE_TYPE_DEFS[spec.type];
    this.stream = streamId(seed, this.key);
    const unknown = Object.keys(spec.params).filter((k) => !(k in this.typeDef.params));
    if (unknown.length > 0) {
      throw new ConfigError(`invalid config: machine ${this.key}: unknown param "${unknown[0]}" for a ${spec.type} (known: ${Object.keys(this.typeDef.params).join(', ')})`);
    }
    // Each unit's rated values differ a little from the nameplate (±4 %), unless set explicitly.
    this.params = {};
    let i = 0;
    for (const [k, v] of Object.entries(this.typeDef.params)) {
      this.params[k] = spec.params[k] ?? v * (1 + 0.08 * (uniform(this.stream, i++, 11) - 0.5));
    }
    const d = this.typeDef.duty;
    this.duty = {
      periodS: spec.duty.periodS ?? d.periodS,
      onFraction: spec.duty.onFraction ?? d.onFraction,
      minLoad: spec.duty.minLoad ?? d.minLoad,
      maxLoad: spec.duty.maxLoad ?? spec.duty.minLoad ?? d.maxLoad,
      idleLoad: spec.duty.idleLoad ?? d.idleLoad,
      jitter: spec.duty.jitter ?? d.jitter,
      mechTauS: d.mechTauS,
      thermalTauS: d.thermalTauS,
    };
    if (this.duty.maxLoad < this.duty.minLoad) this.duty.maxLoad = this.duty.minLoad;
    this.shifts = new ShiftCalendar(shifts);
    this.periodMs = Math.round(this.duty.periodS * 1000);
    this.phaseMs = Math.floor(uniform(this.stream, 0, 12) * this.periodMs);
    this.wanderPeriods = [
      (30 + 15 * uniform(this.stream, 0, 13)) * 60_000,
      (5 + 5 * uniform(this.stream, 0, 14)) * 60_000,
      2 * Math.PI * uniform(this.stream, 0, 15),
      2 * Math.PI * uniform(this.stream, 0, 16),
    ];
    const lag = (tauS: number): LagState => {
      const block = Math.max(1, Math.min(2000, Math.ceil((8 * tauS * 1000) / this.periodMs)));
      return { tau: tauS * 1000, block, cache: new Map() };
    };
    this.mech = lag(this.duty.mechTauS);
    this.thermal = lag(this.duty.thermalTauS);

    const byId = new Map(this.typeDef.sensors.map((s, slot) => [s.id, { def: s, slot }]));
    const wanted = spec.sensors ?? this.typeDef.sensors.map((s) => ({ id: s.id, noise: 1 }) as NonNullable<MachineSpec['sensors']>[number]);
    this.sensors = wanted.map((w) => {
      const found = byId.get(w.id);
      if (!found) {
        throw new ConfigError(`invalid config: machine ${this.key}: a ${spec.type} has no sensor "${w.id}" (has ${[...byId.keys()].join(', ')})`);
      }
      const quantum = w.quantum ?? found.def.quantum;
      const path = `${this.key}/${w.id}`;
      const stream = streamId(seed, path);
      return {
        id: w.id,
        path,
        unit: w.unit ?? found.def.unit,
        def: found.def,
        slot: found.slot,
        rateHz: w.rateHz ?? spec.rateHz,
        noiseStd: found.def.noise * (w.noise ?? 1),
        quantum,
        decimals: decimalsOf(quantum),
        scale: 10 ** decimalsOf(quantum),
        stream,
        offset: found.def.noise * 0.8 * (uniform(stream, 0, 17) - 0.5),
      };
    });
    const groups = new Map<number, SensorModel[]>();
    for (const s of this.sensors) groups.set(s.rateHz, [...(groups.get(s.rateHz) ?? []), s]);
    this.rateGroups = [...groups].map(([rateHz, sensors]) => ({ rateHz, sensors }));
    this.clean = new Float64Array(this.typeDef.sensors.length);
    this.gain = new Float64Array(this.typeDef.sensors.length);
  }

  get type(): string {
    return this.typeDef.type;
  }

  /** Readings per second this machine produces (all sensors). */
  get naturalRate(): number {
    return this.sensors.reduce((a, s) => a + s.rateHz, 0);
  }

  private period(p: number): Period {
    let info = this.periods.get(p);
    if (info) return info;
    if (this.periods.size > 8192) this.periods.clear();
    const start = p * this.periodMs + this.phaseMs;
    const end = start + this.periodMs;
    const random = uniform(this.stream, p, 3);
    if (!this.shifts.isOn(start)) {
      info = { start, segments: [{ from: start, to: end, target: 0, kind: 'off' }], random };
    } else {
      const d = this.duty;
      // Jitter never pushes the on-time past 0 or 1: an always-on machine (onFraction 1) never stops.
      const amplitude = d.jitter * Math.min(d.onFraction, 1 - d.onFraction);
      const f = d.onFraction + amplitude * (2 * uniform(this.stream, p, 1) - 1);
      const level = d.minLoad + (d.maxLoad - d.minLoad) * uniform(this.stream, p, 2);
      const onEnd = start + Math.round(f * this.periodMs);
      info = {
        start,
        segments: [
          { from: start, to: onEnd, target: level, kind: 'on' },
          { from: onEnd, to: end, target: d.idleLoad, kind: 'idle' },
        ],
        random,
      };
    }
    this.periods.set(p, info);
    return info;
  }

  /** Start of the run of 'off' periods that period p belongs to (the shift break), memoised. */
  private offSince(p: number): number {
    const info = this.period(p);
    if (info.offSince !== undefined) return info.offSince;
    // Walk back to the last period that is on (or already known), then fill forward. Shift patterns are
    // weekly, so an on-period is always found within 8 days: the answer never depends on query order.
    const limit = p - Math.ceil((8 * DAY_MS) / this.periodMs);
    let q = p;
    while (q > limit && this.period(q - 1).segments[0].kind === 'off' && this.period(q - 1).offSince === undefined) q--;
    const prev = this.period(q - 1);
    const since = prev.segments[0].kind === 'off' && prev.offSince !== undefined ? prev.offSince : this.period(q).start;
    for (let r = q; r <= p; r++) this.period(r).offSince = since;
    return since;
  }

  private stepPeriod(p: number, y: number, tau: number): number {
    for (const s of this.period(p).segments) y = s.target + (y - s.target) * Math.exp(-(s.to - s.from) / tau);
    return y;
  }

  /** Lag output at the start of period p; identical whatever was computed before (see file comment). */
  private lagAtPeriodStart(p: number, lag: LagState): number {
    const hit = lag.cache.get(p);
    if (hit !== undefined) return hit;
    if (lag.cache.size > 8192) lag.cache.clear();
    const checkpoint = Math.floor(p / lag.block) * lag.block;
    let q = p;
    while (q > checkpoint && !lag.cache.has(q)) q--;
    let y: number;
    if (lag.cache.has(q)) y = lag.cache.get(q)!;
    else {
      // Seed the checkpoint as if settled `block` periods earlier: that history has decayed by e^-8.
      const seedPeriod = this.period(checkpoint - lag.block - 1).segments;
      y = seedPeriod[seedPeriod.length - 1].target;
      for (let r = checkpoint - lag.block; r < checkpoint; r++) y = this.stepPeriod(r, y, lag.tau);
      lag.cache.set(checkpoint, y);
    }
    for (let r = q; r < p; r++) {
      y = this.stepPeriod(r, y, lag.tau);
      lag.cache.set(r + 1, y);
    }
    return y;
  }

  private lagAt(t: number, p: number, lag: LagState): number {
    let y = this.lagAtPeriodStart(p, lag);
    for (const s of this.period(p).segments) {
      if (t <= s.from) break;
      const d = Math.min(t, s.to) - s.from;
      y = s.target + (y - s.target) * Math.exp(-d / lag.tau);
    }
    return y;
  }

  /** The machine's operating state at time t (pure). */
  state(t: number, out: MachineState = emptyState()): MachineState {
    const p = Math.floor((t - this.phaseMs) / this.periodMs);
    const info = this.period(p);
    let seg = info.segments[0];
    for (const s of info.segments) if (t >= s.from && t < s.to) seg = s;
    out.load = seg.target;
    out.speed = this.lagAt(t, p, this.mech);
    out.heat = this.lagAt(t, p, this.thermal);
    out.cycleRandom = info.random;
    const [w1, w2, f1, f2] = this.wanderPeriods;
    out.wander = 0.6 * Math.sin((2 * Math.PI * t) / w1 + f1) + 0.4 * Math.sin((2 * Math.PI * t) / w2 + f2);
    out.daily = Math.sin((2 * Math.PI * (this.shifts.hourOfDay(t) - 9)) / 24);
    out.segment = seg.kind;
    out.sinceSegmentStart = t - seg.from;
    out.segmentLength = seg.to - seg.from;
    if (seg.kind === 'off') out.sinceSegmentStart = t - this.offSince(p);
    return out;
  }

  /** Clean sensor values at time t given the active physical faults, into `clean`/`gain` (type's sensor order). */
  private evaluate(t: number, physical: Fault[], st: MachineState, e: Effects, clean = this.clean, gain = this.gain): void {
    this.state(t, st);
    resetEffects(e);
    for (const f of physical) if (t >= f.start && t < f.end) applyPhysicalFault(f, t, st, e);
    this.typeDef.evaluate(st, this.params, e, clean, gain);
  }

  private finish(s: SensorModel, k: number, clean: number, gain: number): number {
    let v = clean + s.offset + s.noiseStd * gain * gaussian(s.stream, k);
    if (s.def.min !== undefined && v < s.def.min) v = s.def.min;
    return v;
  }

  private quantise(s: SensorModel, v: number): number {
    if (s.quantum > 0) v = Math.round(v / s.quantum) * s.quantum;
    return Math.round(v * s.scale) / s.scale;
  }

  /** Value of sensor `s` at sample k with physical faults and drift but no stuck/spike (for `stuck`). */
  private baseValue(s: SensorModel, k: number, physical: Fault[], signal: Fault[]): number {
    const ts = sampleTime(k, s.rateHz);
    // Own buffers: the caller is in the middle of reading this.clean for the current sample.
    const clean = new Float64Array(this.clean.length);
    const gain = new Float64Array(this.gain.length);
    this.evaluate(ts, physical, emptyState(), neutralEffects(), clean, gain);
    let v = this.finish(s, k, clean[s.slot], gain[s.slot]);
    for (const f of signal) if (f.kind === 'drift' && ts >= f.start && ts < f.end) v += driftOffset(f, s, ts);
    return this.quantise(s, v);
  }

  /**
   * Messages of this machine sent in [t0, t1), in send order. `faults` are the faults of this
   * machine that may matter in this window (the plant pre-filters).
   */
  generate(t0: number, t1: number, faults: Fault[], out: Emission[] = []): Emission[] {
    const physical = faults.filter((f) => isPhysical(f.kind));
    let lookback = 0;
    for (const f of faults) {
      if (f.kind === 'out_of_order') {
        const maxDelay = f.delayMs ?? Math.ceil((3 * 1000) / Math.min(...this.sensors.map((s) => s.rateHz)));
        if (f.end + maxDelay > t0) lookback = Math.max(lookback, maxDelay);
      }
    }
    const st = emptyState();
    const e = neutralEffects();
    const first = out.length;
    let needsSort = this.rateGroups.length > 1;
    const stuckCache = new Map<string, number>();
    for (const group of this.rateGroups) {
      const r = group.rateHz;
      const lo = t0 - lookback;
      const kEnd = Math.ceil((t1 * r) / 1000) + 1;
      const perSensor = group.sensors.map((s) => faults.filter((f) => !isPhysical(f.kind) && (f.sensor === null || f.sensor === s.id)));
      const anySensorFault = perSensor.some((l) => l.length > 0);
      for (let k = Math.floor((lo * r) / 1000) - 1; k < kEnd; k++) {
        const ts = sampleTime(k, r);
        if (ts < lo || ts >= t1) continue;
        this.evaluate(ts, physical, st, e);
        for (let i = 0; i < group.sensors.length; i++) {
          const s = group.sensors[i];
          let v = this.finish(s, k, this.clean[s.slot], this.gain[s.slot]);
          if (!anySensorFault || perSensor[i].length === 0) {
            if (ts >= t0) out.push({ sensor: s, ts, value: this.quantise(s, v), emitAt: ts });
            continue;
          }
          // Signal faults, then stream faults, in a fixed order.
          let dropped = false;
          let stuck: Fault | undefined;
          let emitTs = ts;
          let emitAt = ts;
          let malformed: string | undefined;
          let duplicate = false;
          for (const f of perSensor[i]) {
            if (ts < f.start || ts >= f.end) continue;
            const firstHit = sampleTime(k - 1, r) < f.start;
            const hit = firstHit || uniform(s.stream, k, hashKind(f.kind)) < f.probability;
            switch (f.kind) {
              case 'drift':
                v += driftOffset(f, s, ts);
                break;
              case 'spike':
                if (hit) {
                  const u = uniform(s.stream, k, 41);
                  // Mostly upward for quantities that cannot go negative.
                  const sign = s.def.min !== undefined ? (u < 0.85 ? 1 : -1) : u < 0.5 ? 1 : -1;
                  v += sign * f.severity * s.def.span * (0.3 + 0.3 * uniform(s.stream, k, 42));
                  if (s.def.min !== undefined && v < s.def.min) v = s.def.min;
                }
                break;
              case 'stuck':
                stuck = f;
                break;
              case 'dropout':
                dropped = true;
                break;
              case 'clock_skew':
                emitTs = ts + f.skewMs;
                break;
              case 'out_of_order':
                if (hit) {
                  emitAt = ts + (f.delayMs ?? Math.ceil((3 * 1000) / r));
                  needsSort = true;
                }
                break;
              case 'duplicate':
                if (hit) duplicate = true;
                break;
              case 'malformed':
                if (hit) malformed = malformedPayload(hash3(s.stream, k, 43), emitTs, v);
                break;
            }
          }
          if (dropped) continue;
          if (stuck) {
            const key = `${stuck.id}/${s.id}`;
            let frozen = stuckCache.get(key);
            if (frozen === undefined) {
              let kPrev = Math.ceil((stuck.start * r) / 1000);
              while (sampleTime(kPrev, r) >= stuck.start) kPrev--;
              frozen = this.baseValue(s, kPrev, physical, perSensor[i].filter((f) => f.kind === 'drift'));
              stuckCache.set(key, frozen);
            }
            v = frozen;
          }
          if (emitAt < t0 || emitAt >= t1) continue;
          if (s.def.min !== undefined && v < s.def.min) v = s.def.min;
          const value = this.quantise(s, v);
          const em: Emission = { sensor: s, ts: emitTs, value, emitAt };
          if (malformed !== undefined) em.malformed = malformed;
          out.push(em);
          if (duplicate) out.push({ ...em });
        }
      }
    }
    if (needsSort && out.length - first > 1) {
      const mine = out.splice(first).map((em, i) => ({ em, i }));
      mine.sort((a, b) => a.em.emitAt - b.em.emitAt || a.i - b.i);
      for (const x of mine) out.push(x.em);
    }
    return out;
  }
}

function hashKind(kind: FaultKind): number {
  return 100 + FAULT_KINDS.indexOf(kind);
}

function driftOffset(f: Fault, s: SensorModel, ts: number): number {
  // Up or down per fault; reaches 25 % of the sensor's span × severity at the end of the window.
  const sign = (f.id.length + f.start) % 2 === 0 ? 1 : -1;
  return (sign * f.severity * 0.25 * s.def.span * (ts - f.start)) / (f.end - f.start);
}

/** Sample k of a sensor at `rateHz` is taken at this epoch ms (same instants for every run). */
export function sampleTime(k: number, rateHz: number): number {
  return Math.round((k * 1000) / rateHz);
}

function emptyState(): MachineState {
  return { load: 0, speed: 0, heat: 0, cycleRandom: 0, wander: 0, daily: 0, segment: 'off', sinceSegmentStart: 0, segmentLength: 0 };
}

function resetEffects(e: Effects): void {
  e.vibrationGain = 1;
  e.vibrationNoise = 1;
  e.bearingTempAdd = 0;
  e.tempAdd = 0;
  e.currentGain = 1;
  e.currentNoise = 1;
  e.flowGain = 1;
  e.pressureGain = 1;
  e.pressureNoise = 1;
}

/** Longest window before t0 in which a fault can still matter (out-of-order delays, long faults). */
const FAULT_HORIZON_MS = 7 * DAY_MS;

export interface PlantModelOptions {
  /** The simulation start (anchor of scheduled faults' `at` seconds); defaults to config.clock.start or now. */
  startMs?: number;
}

export class PlantModel {
  readonly seed: number;
  readonly startMs: number;
  readonly machines: MachineModel[];
  private readonly byKey = new Map<string, MachineModel>();
  private readonly byId = new Map<string, MachineModel[]>();
  private readonly scheduled: Fault[];
  private readonly injected: Fault[] = [];
  private readonly random: SimulatorConfig['faults']['random'];
  private readonly randomStream: number;

  constructor(config: SimulatorConfig, opts: PlantModelOptions = {}) {
    this.seed = config.seed;
    this.startMs = opts.startMs ?? (config.clock.start === 'now' ? Date.now() : Date.parse(config.clock.start));
    this.machines = [];
    for (const site of config.plant.sites) {
      for (const line of site.lines) {
        for (const spec of line.machines) {
          const m = new MachineModel(config.seed, site.id, line.id, spec, spec.shifts ?? line.shifts ?? site.shifts);
          this.machines.push(m);
          this.byKey.set(m.key, m);
          this.byId.set(m.id, [...(this.byId.get(m.id) ?? []), m]);
        }
      }
    }
    this.random = config.faults.random;
    if (this.random.minDurationS > this.random.maxDurationS) {
      throw new ConfigError(`invalid config: faults.random.minDurationS (${this.random.minDurationS}) is above maxDurationS (${this.random.maxDurationS})`);
    }
    this.randomStream = streamId(config.seed, 'random-faults');
    this.scheduled = config.faults.scheduled.map((spec, i) => buildFault(spec, `s${i}`, 'scheduled', this.startMs, (ref) => this.resolve(ref)));
  }

  /** Finds a machine by `site/line/machine` or unique machine id. */
  machine(ref: string): MachineModel {
    const m = this.byKey.get(ref) ?? (this.byId.get(ref)?.length === 1 ? this.byId.get(ref)![0] : undefined);
    if (!m) {
      const many = (this.byId.get(ref)?.length ?? 0) > 1;
      throw new ConfigError(
        `unknown machine "${ref}"${many ? ' (id is not unique: use site/line/machine)' : ''}; machines: ${this.machines.map((x) => x.key).join(', ')}`,
      );
    }
    return m;
  }

  private resolve(ref: string): ResolvedTarget {
    const m = this.machine(ref);
    return { site: m.site, line: m.line, machine: m.id, type: m.type, sensors: m.sensors.map((s) => s.id) };
  }

  /** Readings per second of the whole plant in real time. */
  get naturalRate(): number {
    return this.machines.reduce((a, m) => a + m.naturalRate, 0);
  }

  /** Adds a fault now (on demand); returns its label. */
  injectFault(spec: FaultSpecInput, nowMs: number): FaultLabel {
    const parsed = parseFaultSpec(spec);
    const anchored = typeof parsed.at === 'number' ? { ...parsed, at: 0 } : parsed;
    const offset = typeof parsed.at === 'number' ? parsed.at * 1000 : 0;
    const f = buildFault(anchored, `i${this.injected.length}`, 'injected', nowMs + offset, (ref) => this.resolve(ref));
    this.injected.push(f);
    return this.label(f);
  }

  label(f: Fault): FaultLabel {
    const m = this.byKey.get(machineKey(f))!;
    return labelOf(f, affectedSensors(f, m.sensors));
  }

  /** Random faults whose slot could overlap [t0, t1). One per slot of meanIntervalS. */
  private randomFaults(t0: number, t1: number): Fault[] {
    const r = this.random;
    if (!r.enabled) return [];
    const slotMs = r.meanIntervalS * 1000;
    const out: Fault[] = [];
    const firstSlot = Math.floor((t0 - r.maxDurationS * 1000 - slotMs) / slotMs);
    const lastSlot = Math.floor(t1 / slotMs);
    for (let k = firstSlot; k <= lastSlot; k++) {
      const kind = r.kinds[Math.floor(uniform(this.randomStream, k, 1) * r.kinds.length)];
      const candidates = this.machines.filter((m) => faultApplies(kind, m.type));
      if (candidates.length === 0) continue;
      const m = candidates[Math.floor(uniform(this.randomStream, k, 2) * candidates.length)];
      const start = Math.round(k * slotMs + uniform(this.randomStream, k, 3) * slotMs * 0.5);
      // Only faults that start inside the run: each one is fully present in the data it labels.
      if (start < this.startMs) continue;
      const durationMs = Math.round((r.minDurationS + (r.maxDurationS - r.minDurationS) * uniform(this.randomStream, k, 4)) * 1000);
      const sensor = isPhysical(kind) ? null : m.sensors[Math.floor(uniform(this.randomStream, k, 5) * m.sensors.length)].id;
      const f: Fault = {
        id: `r${k}`,
        kind,
        site: m.site,
        line: m.line,
        machine: m.id,
        sensor,
        start,
        end: start + durationMs,
        severity: 1,
        probability: DEFAULT_PROBABILITY[kind] ?? 1,
        skewMs: 60_000,
        delayMs: null,
        source: 'random',
      };
      if (f.end > t0 && f.start < t1) out.push(f);
    }
    return out;
  }

  /** Every fault (scheduled, random, injected) that overlaps [t0, t1), or whose late messages do. */
  faultsBetween(t0: number, t1: number): Fault[] {
    const slack = (f: Fault) => (f.kind === 'out_of_order' ? (f.delayMs ?? 30_000) : 0);
    const fixed = [...this.scheduled, ...this.injected].filter((f) => f.start < t1 && f.end + slack(f) > t0 && f.end > t0 - FAULT_HORIZON_MS);
    return [...fixed, ...this.randomFaults(t0, t1)];
  }

  /** All messages of the plant sent in [t0, t1), per machine, each machine's in send order. */
  generate(t0: number, t1: number): MachineBatch[] {
    const faults = this.faultsBetween(t0, t1);
    return this.machines.map((m) => {
      const mine = faults.length === 0 ? faults : faults.filter((f) => f.site === m.site && f.line === m.line && f.machine === m.id);
      return { machine: m, emissions: m.generate(t0, t1, mine) };
    });
  }

  /** The clean (fault-free) operating state of a machine at t; for tests and the README's plots. */
  stateOf(ref: string, t: number): MachineState {
    return this.machine(ref).state(t);
  }

}
