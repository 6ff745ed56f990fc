/**
 * Fault scenarios: what each kind does and to which sensors, and the ground-truth label written for
 * every injected fault. A fault is data (kind, target, window, parameters); the model applies it
 * while generating, so the same config and seed always give the same faulty signal.
 */
import { ConfigError } from '../common/errors.ts';
import { machineKey } from '../common/topics.ts';
import { FaultKind, FaultSpec, PHYSICAL_FAULTS, type FaultSpecInput } from './config.schema.ts';
import type { Effects, MachineState, SensorDef } from './machines.ts';

export interface Fault {
  /** Stable id: `s<i>` scheduled, `r<slot>` random, `i<n>` injected on demand. */
  id: string;
  kind: FaultKind;
  site: string;
  line: string;
  machine: string;
  /** One sensor, or null for the whole machine. */
  sensor: string | null;
  /** Epoch ms, [start, end). */
  start: number;
  end: number;
  severity: number;
  probability: number;
  skewMs: number;
  /** out_of_order delay; null → 3 sample periods of the sensor. */
  delayMs: number | null;
  source: 'scheduled' | 'random' | 'injected';
}

/** One line of the ground-truth label file. */
export interface FaultLabel {
  id: string;
  site: string;
  line: string;
  machine: string;
  /** `<site>/<line>/<machine>`: the Kafka record key of the machine. */
  machineKey: string;
  /** The sensor the fault was aimed at, or `*` for the whole machine. */
  sensor: string;
  kind: FaultKind;
  /** Epoch ms, end exclusive. */
  start: number;
  end: number;
  startIso: string;
  endIso: string;
  /** Sensors whose data the fault changes. */
  affects: string[];
  severity: number;
  source: Fault['source'];
}

export const DEFAULT_PROBABILITY: Partial<Record<FaultKind, number>> = {
  spike: 0.05,
  out_of_order: 0.5,
  duplicate: 0.3,
  malformed: 0.3,
};

/** Which sensor roles a physical fault moves. */
const PHYSICAL_ROLES: Record<(typeof PHYSICAL_FAULTS)[number], SensorDef['role'][number][]> = {
  bearing_wear: ['vibration', 'bearing_temperature'],
  overheating: ['temperature', 'current'],
  cavitation: ['flow', 'pressure', 'vibration', 'current'],
};

export function isPhysical(kind: FaultKind): kind is (typeof PHYSICAL_FAULTS)[number] {
  return (PHYSICAL_FAULTS as readonly string[]).includes(kind);
}

/** Whether a machine type can have this fault (cavitation needs a pump). */
export function faultApplies(kind: FaultKind, machineType: string): boolean {
  return kind !== 'cavitation' || machineType === 'pump';
}

/** Sensors (ids) whose data a fault changes, given the machine's sensors. */
export function affectedSensors(f: Pick<Fault, 'kind' | 'sensor'>, sensors: { id: string; def: SensorDef }[]): string[] {
  if (isPhysical(f.kind)) {
    const roles = PHYSICAL_ROLES[f.kind];
    return sensors.filter((s) => s.def.role.some((r) => roles.includes(r))).map((s) => s.id);
  }
  return f.sensor === null ? sensors.map((s) => s.id) : [f.sensor];
}

const clamp01 = (x: number) => (x < 0 ? 0 : x > 1 ? 1 : x);

/** Adds the effect of one active physical fault at time t to `e`. */
export function applyPhysicalFault(f: Fault, t: number, s: MachineState, e: Effects): void {
  const elapsed = t - f.start;
  switch (f.kind) {
    case 'bearing_wear': {
      // Wear accelerates: quadratic in the fraction of the window (maintenance resets it at `end`).
      const p = clamp01(elapsed / (f.end - f.start));
      const w = f.severity * p * p;
      e.vibrationGain *= 1 + 3 * w;
      e.vibrationNoise *= 1 + 4 * w;
      // Friction heat needs rotation: scales with the machine's heat state.
      e.bearingTempAdd += 18 * w * (0.2 + 0.8 * s.heat);
      break;
    }
    case 'overheating': {
      // Cooling loss: temperature climbs toward +25 °C·severity with a 90 s time constant.
      const r = f.severity * (1 - Math.exp(-elapsed / 90_000));
      e.tempAdd += 25 * r;
      e.currentGain *= 1 + 0.05 * r;
      break;
    }
    case 'cavitation': {
      // Needs flow: builds in 15 s and scales with pump speed.
      const c = f.severity * clamp01(elapsed / 15_000) * clamp01(s.speed);
      e.flowGain *= 1 - 0.3 * Math.min(c, 2.5);
      e.pressureGain *= 1 - 0.2 * Math.min(c, 4);
      e.pressureNoise *= 1 + 8 * c;
      e.vibrationGain *= 1 + 1.2 * c;
      e.vibrationNoise *= 1 + 6 * c;
      e.currentGain *= 1 - 0.08 * Math.min(c, 10);
      e.currentNoise *= 1 + 3 * c;
      break;
    }
  }
}

/** Payloads a broken device sends; the `malformed` fault picks one per hit sample. */
export function malformedPayload(variant: number, ts: number, value: number): string {
  switch (variant % 6) {
    case 0:
      return `{"ts":${ts},"value":${value}`; // truncated JSON
    case 1:
      return `{"ts":${ts},"value":"${value}V"}`; // value is a string
    case 2:
      return `{"ts":${ts}}`; // missing value
    case 3:
      return `{"ts":"yesterday","value":${value}}`; // unparseable time
    case 4:
      return `\u0000\u00ff\u0013garbage`; // binary noise
    default:
      return `{"ts":${ts},"value":NaN}`; // not JSON
  }
}

export interface ResolvedTarget {
  site: string;
  line: string;
  machine: string;
  type: string;
  sensors: string[];
}

/**
 * Turns a validated FaultSpec into a Fault with absolute times. `resolve` finds the machine named by
 * `spec.machine`; `anchorMs` is the simulation start (`at` in seconds counts from it).
 */
export function buildFault(spec: FaultSpec, id: string, source: Fault['source'], anchorMs: number, resolve: (ref: string) => ResolvedTarget): Fault {
  const target = resolve(spec.machine);
  if (!faultApplies(spec.kind, target.type)) {
    throw new ConfigError(`invalid fault ${id}: ${spec.kind} applies to pumps only, ${spec.machine} is a ${target.type}`);
  }
  if (spec.sensor !== undefined && !target.sensors.includes(spec.sensor)) {
    throw new ConfigError(`invalid fault ${id}: machine ${spec.machine} has no sensor "${spec.sensor}" (has ${target.sensors.join(', ')})`);
  }
  const start = typeof spec.at === 'number' ? anchorMs + Math.round(spec.at * 1000) : Date.parse(spec.at);
  return {
    id,
    kind: spec.kind,
    site: target.site,
    line: target.line,
    machine: target.machine,
    sensor: isPhysical(spec.kind) ? null : (spec.sensor ?? null),
    start,
    end: start + Math.round(spec.durationS * 1000),
    severity: spec.severity,
    probability: spec.probability ?? DEFAULT_PROBABILITY[spec.kind] ?? 1,
    skewMs: spec.skewMs ?? Math.round(60_000 * spec.severity),
    delayMs: spec.delayMs ?? null,
    source,
  };
}

export function labelOf(f: Fault, affects: string[]): FaultLabel {
  return {
    id: f.id,
    site: f.site,
    line: f.line,
    machine: f.machine,
    machineKey: machineKey(f),
    sensor: f.sensor ?? '*',
    kind: f.kind,
    start: f.start,
    end: f.end,
    startIso: new Date(f.start).toISOString(),
    endIso: new Date(f.end).toISOString(),
    affects,
    severity: f.severity,
    source: f.source,
  };
}

/**
 * The CLI's short fault syntax: `kind:target[@startS][+durationS][,key=value…]` where target is
 * `machine`, `machine/sensor`, `site/line/machine` or `site/line/machine/sensor`; keys are
 * severity, probability, skewMs, delayMs. Example: `spike:demo/line-1/pump-1/vibration@30+20,probability=0.2`.
 */
export function parseFaultArg(arg: string): FaultSpec {
  const m = /^([a-z_]+):([^@+,]+)(?:@([0-9.]+|\d{4}-[^+,]+))?(?:\+([0-9.]+))?((?:,[A-Za-z]+=[^,]+)*)$/.exec(arg.trim());
  if (!m) throw new ConfigError(`invalid --fault "${arg}": expected kind:machine[/sensor][@startS][+durationS][,key=value…]`);
  const [, kind, target, at, dur, opts] = m;
  const parts = target.split('/');
  let machine: string;
  let sensor: string | undefined;
  if (parts.length === 4) [machine, sensor] = [parts.slice(0, 3).join('/'), parts[3]];
  else if (parts.length === 2) [machine, sensor] = [parts[0], parts[1]];
  else machine = target;
  const raw: Record<string, unknown> = { kind, machine };
  if (sensor !== undefined) raw.sensor = sensor;
  if (at !== undefined) raw.at = /^\d{4}-/.test(at) ? at : Number(at);
  if (dur !== undefined) raw.durationS = Number(dur);
  for (const kv of (opts ?? '').split(',').filter(Boolean)) {
    const [k, v] = kv.split('=');
    raw[k] = Number(v);
  }
  const r = FaultSpec.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new ConfigError(`invalid --fault "${arg}": ${issue.path.join('.') || 'value'}: ${issue.message}`);
  }
  return r.data;
}

export function parseFaultSpec(input: FaultSpecInput): FaultSpec {
  const r = FaultSpec.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new ConfigError(`invalid fault: ${issue.path.join('.') || 'value'}: ${issue.message}`);
  }
  return r.data;
}

export { FaultKind };
