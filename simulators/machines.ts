/**
 * Machine types: which sensors a machine has and how their clean values follow from the machine's
 * operating state. The physics is deliberately simple but keeps the correlations an engineer expects:
 * a centrifugal pump's flow ∝ speed, head ∝ speed², shaft power (current) ∝ speed³; temperatures lag
 * load with a thermal time constant of minutes; vibration grows with speed² and with bearing wear.
 */
import type { MachineType } from './config.schema.ts';

/** Operating state of one machine at one instant (computed by the model, shared by its sensors). */
export interface MachineState {
  /** Target load of the current segment (0 = stopped). */
  load: number;
  /** Mechanical response: load filtered with the machine's short time constant (speed fraction). */
  speed: number;
  /** Thermal response: load filtered with the long time constant (0 = ambient, 1 = rated rise). */
  heat: number;
  /** Per-cycle random number in [0, 1): e.g. the part being machined, the belt load. */
  cycleRandom: number;
  /** Slow process wander in about [-1, 1] (demand, ambient), periods of minutes. */
  wander: number;
  /** Daily ambient swing in [-1, 1]. */
  daily: number;
  /** 'on' (running at level), 'idle' (between runs, idleLoad) or 'off' (outside shifts). */
  segment: 'on' | 'idle' | 'off';
  /** Milliseconds since the current segment started, and its length. */
  sinceSegmentStart: number;
  segmentLength: number;
}

/** What active physical faults do to the machine at this instant (all neutral = 1 or 0). */
export interface Effects {
  vibrationGain: number;
  vibrationNoise: number;
  /** Added to the bearing (or the type's bearing-side) temperature, °C. */
  bearingTempAdd: number;
  /** Added to every temperature, °C. */
  tempAdd: number;
  currentGain: number;
  currentNoise: number;
  flowGain: number;
  pressureGain: number;
  pressureNoise: number;
}

export function neutralEffects(): Effects {
  return { vibrationGain: 1, vibrationNoise: 1, bearingTempAdd: 0, tempAdd: 0, currentGain: 1, currentNoise: 1, flowGain: 1, pressureGain: 1, pressureNoise: 1 };
}

export interface SensorDef {
  id: string;
  unit: string;
  /** Typical full-scale range: sizes spikes and drifts. */
  span: number;
  /** Noise standard deviation in the unit. */
  noise: number;
  /** Default quantisation step. */
  quantum: number;
  /** Physical lower bound (currents, speeds, RMS values are never negative). */
  min?: number;
  /** Which physical faults move this sensor (for the label's `affects`). */
  role: ('vibration' | 'temperature' | 'bearing_temperature' | 'current' | 'flow' | 'pressure' | 'speed' | 'load')[];
}

export interface DutyDefaults {
  periodS: number;
  onFraction: number;
  minLoad: number;
  maxLoad: number;
  idleLoad: number;
  jitter: number;
  mechTauS: number;
  thermalTauS: number;
}

export interface MachineTypeDef {
  type: MachineType;
  description: string;
  sensors: SensorDef[];
  params: Record<string, number>;
  duty: DutyDefaults;
  /**
   * Clean values (before noise) of every sensor, in `sensors` order, into `out`; noise multipliers
   * into `noiseGain`.
   */
  evaluate(s: MachineState, p: Record<string, number>, e: Effects, out: Float64Array, noiseGain: Float64Array): void;
}

/** Motor inrush when starting: a few times rated current decaying in a fraction of a second. */
function inrush(s: MachineState, rated: number): number {
  return s.segment === 'on' && s.sinceSegmentStart < 2000 ? 2.5 * rated * Math.exp(-s.sinceSegmentStart / 250) : 0;
}

const pump: MachineTypeDef = {
  type: 'pump',
  description: 'centrifugal pump with induction motor',
  sensors: [
    { id: 'current', unit: 'A', span: 60, noise: 0.35, quantum: 0.1, min: 0, role: ['current'] },
    { id: 'vibration', unit: 'mm/s', span: 10, noise: 0.06, quantum: 0.01, min: 0, role: ['vibration'] },
    { id: 'bearing_temp', unit: '°C', span: 100, noise: 0.15, quantum: 0.1, role: ['temperature', 'bearing_temperature'] },
    { id: 'pressure', unit: 'bar', span: 10, noise: 0.03, quantum: 0.01, min: 0, role: ['pressure'] },
    { id: 'flow', unit: 'm3/h', span: 200, noise: 0.8, quantum: 0.1, min: 0, role: ['flow'] },
  ],
  params: { ratedFlow: 120, ratedPressure: 6, ratedCurrent: 42, ratedVibration: 2.2, ambient: 24, bearingRise: 32 },
  duty: { periodS: 900, onFraction: 0.85, minLoad: 0.8, maxLoad: 1.0, idleLoad: 0, jitter: 0.1, mechTauS: 2, thermalTauS: 600 },
  evaluate(s, p, e, out, g) {
    const n = s.speed;
    const flow = p.ratedFlow * n * (0.92 + 0.06 * s.wander) * e.flowGain;
    const q = flow / p.ratedFlow;
    // Pump curve: shut-off head ∝ n², falling with the square of flow.
    const head = Math.max(0, 1.12 * n * n - 0.12 * q * q);
    out[0] = n < 0.01 ? 0 : (p.ratedCurrent * (0.18 + 0.82 * n * n * n) + inrush(s, p.ratedCurrent)) * e.currentGain;
    out[1] = 0.12 + p.ratedVibration * n * n * e.vibrationGain;
    out[2] = p.ambient + 2 * s.daily + p.bearingRise * s.heat + e.bearingTempAdd + e.tempAdd;
    out[3] = 0.2 + p.ratedPressure * head * e.pressureGain;
    out[4] = flow;
    g[0] = e.currentNoise * (n < 0.01 ? 0.1 : 1);
    g[1] = e.vibrationNoise * (0.3 + n);
    g[2] = 1;
    g[3] = e.pressureNoise * (0.2 + n);
    g[4] = 0.1 + n;
  },
};

const cncSpindle: MachineTypeDef = {
  type: 'cnc_spindle',
  description: 'CNC machining-centre spindle running machining cycles',
  sensors: [
    { id: 'speed', unit: 'rpm', span: 15000, noise: 6, quantum: 1, min: 0, role: ['speed'] },
    { id: 'load', unit: '%', span: 100, noise: 1.2, quantum: 0.1, min: 0, role: ['load'] },
    { id: 'current', unit: 'A', span: 40, noise: 0.25, quantum: 0.1, min: 0, role: ['current'] },
    { id: 'vibration', unit: 'mm/s', span: 6, noise: 0.04, quantum: 0.01, min: 0, role: ['vibration'] },
    { id: 'spindle_temp', unit: '°C', span: 80, noise: 0.1, quantum: 0.1, role: ['temperature', 'bearing_temperature'] },
  ],
  params: { ratedRpm: 12000, ratedCurrent: 28, ratedVibration: 1.2, ambient: 22, tempRise: 18 },
  duty: { periodS: 120, onFraction: 0.7, minLoad: 0.35, maxLoad: 0.95, idleLoad: 0, jitter: 0.15, mechTauS: 1.5, thermalTauS: 400 },
  evaluate(s, p, e, out, g) {
    const n = s.speed;
    // Cutting load depends on the part (per cycle) and only exists while the spindle turns.
    const cut = (0.25 + 0.5 * s.cycleRandom) * (1 + 0.06 * s.wander);
    const loadPct = s.segment === 'on' ? 100 * (0.06 + cut * n) : 100 * 0.06 * n;
    out[0] = p.ratedRpm * n;
    out[1] = loadPct;
    out[2] = (0.4 + p.ratedCurrent * (0.15 * n + 0.85 * (loadPct / 100)) + inrush(s, p.ratedCurrent * 0.3)) * e.currentGain;
    out[3] = 0.05 + p.ratedVibration * (0.6 * n * n + 0.8 * (loadPct / 100)) * e.vibrationGain;
    out[4] = p.ambient + 1.5 * s.daily + p.tempRise * s.heat + e.bearingTempAdd + e.tempAdd;
    g[0] = 0.2 + n;
    g[1] = 0.2 + n;
    g[2] = e.currentNoise;
    g[3] = e.vibrationNoise * (0.3 + n);
    g[4] = 1;
  },
};

const compressor: MachineTypeDef = {
  type: 'compressor',
  description: 'screw air compressor with load/unload control',
  sensors: [
    { id: 'pressure', unit: 'bar', span: 10, noise: 0.015, quantum: 0.01, min: 0, role: ['pressure'] },
    { id: 'current', unit: 'A', span: 100, noise: 0.5, quantum: 0.1, min: 0, role: ['current'] },
    { id: 'discharge_temp', unit: '°C', span: 150, noise: 0.3, quantum: 0.1, role: ['temperature'] },
    { id: 'oil_temp', unit: '°C', span: 100, noise: 0.1, quantum: 0.1, role: ['temperature', 'bearing_temperature'] },
    { id: 'vibration', unit: 'mm/s', span: 10, noise: 0.05, quantum: 0.01, min: 0, role: ['vibration'] },
  ],
  params: { cutInPressure: 7.0, cutOutPressure: 7.6, ratedCurrent: 65, ratedVibration: 2.8, ambient: 25, dischargeRise: 60, oilRise: 38 },
  duty: { periodS: 90, onFraction: 0.6, minLoad: 1, maxLoad: 1, idleLoad: 0.35, jitter: 0.2, mechTauS: 1, thermalTauS: 300 },
  evaluate(s, p, e, out, g) {
    const n = s.speed;
    // Receiver pressure: saw-tooth between cut-in and cut-out while loaded/unloaded; vented when stopped.
    const frac = s.segmentLength > 0 ? Math.min(1, s.sinceSegmentStart / s.segmentLength) : 0;
    const band = p.cutOutPressure - p.cutInPressure;
    let pressure: number;
    if (s.segment === 'on') pressure = p.cutInPressure + band * frac;
    else if (s.segment === 'idle') pressure = p.cutOutPressure - band * frac;
    else pressure = p.cutInPressure * Math.exp(-s.sinceSegmentStart / 120_000);
    out[0] = pressure * e.pressureGain;
    out[1] = n < 0.01 ? 0 : (p.ratedCurrent * n + inrush(s, p.ratedCurrent * 0.5)) * e.currentGain;
    out[2] = p.ambient + 1.5 * s.daily + p.dischargeRise * s.heat + e.tempAdd;
    out[3] = p.ambient + 1.5 * s.daily + p.oilRise * s.heat + e.bearingTempAdd + e.tempAdd;
    out[4] = 0.1 + p.ratedVibration * (0.5 * n + 0.5 * n * n) * e.vibrationGain;
    g[0] = e.pressureNoise;
    g[1] = e.currentNoise * (n < 0.01 ? 0.1 : 1);
    g[2] = 1;
    g[3] = 1;
    g[4] = e.vibrationNoise * (0.3 + n);
  },
};

const conveyor: MachineTypeDef = {
  type: 'conveyor',
  description: 'belt conveyor driven by a geared motor',
  sensors: [
    { id: 'speed', unit: 'm/s', span: 2.5, noise: 0.008, quantum: 0.01, min: 0, role: ['speed'] },
    { id: 'current', unit: 'A', span: 30, noise: 0.2, quantum: 0.1, min: 0, role: ['current'] },
    { id: 'vibration', unit: 'mm/s', span: 8, noise: 0.05, quantum: 0.01, min: 0, role: ['vibration'] },
    { id: 'motor_temp', unit: '°C', span: 100, noise: 0.1, quantum: 0.1, role: ['temperature', 'bearing_temperature'] },
    { id: 'load', unit: '%', span: 100, noise: 1, quantum: 0.1, min: 0, role: ['load'] },
  ],
  params: { ratedSpeed: 1.6, ratedCurrent: 18, ratedVibration: 1.5, ambient: 22, motorRise: 35 },
  duty: { periodS: 600, onFraction: 0.9, minLoad: 1, maxLoad: 1, idleLoad: 0, jitter: 0.05, mechTauS: 3, thermalTauS: 900 },
  evaluate(s, p, e, out, g) {
    const n = s.speed;
    const beltLoad = s.segment === 'on' ? (0.3 + 0.6 * s.cycleRandom) * (1 + 0.1 * s.wander) : 0;
    out[0] = p.ratedSpeed * n;
    out[1] = n < 0.01 ? 0 : (p.ratedCurrent * (0.35 + 0.65 * beltLoad) * n + inrush(s, p.ratedCurrent)) * e.currentGain;
    out[2] = 0.08 + p.ratedVibration * n * (0.7 + 0.3 * beltLoad) * e.vibrationGain;
    out[3] = p.ambient + 1.5 * s.daily + p.motorRise * s.heat * (0.6 + 0.4 * beltLoad) + e.bearingTempAdd + e.tempAdd;
    out[4] = 100 * beltLoad * n;
    g[0] = 0.2 + n;
    g[1] = e.currentNoise;
    g[2] = e.vibrationNoise * (0.3 + n);
    g[3] = 1;
    g[4] = 0.1 + n;
  },
};

const motor: MachineTypeDef = {
  type: 'motor',
  description: 'general-purpose induction motor (fan, mixer, blower)',
  sensors: [
    { id: 'speed', unit: 'rpm', span: 1800, noise: 1.5, quantum: 1, min: 0, role: ['speed'] },
    { id: 'current', unit: 'A', span: 50, noise: 0.3, quantum: 0.1, min: 0, role: ['current'] },
    { id: 'vibration', unit: 'mm/s', span: 8, noise: 0.05, quantum: 0.01, min: 0, role: ['vibration'] },
    { id: 'winding_temp', unit: '°C', span: 150, noise: 0.15, quantum: 0.1, role: ['temperature', 'bearing_temperature'] },
  ],
  params: { ratedRpm: 1480, ratedCurrent: 30, ratedVibration: 1.8, ambient: 24, windingRise: 50 },
  duty: { periodS: 1800, onFraction: 0.85, minLoad: 0.6, maxLoad: 1, idleLoad: 0, jitter: 0.1, mechTauS: 4, thermalTauS: 1200 },
  evaluate(s, p, e, out, g) {
    const n = s.speed;
    // Induction motor slip grows with load (≈2 % at rated).
    out[0] = p.ratedRpm * n * (1 - 0.02 * s.load);
    out[1] = n < 0.01 ? 0 : (p.ratedCurrent * (0.3 + 0.7 * s.load) * n + inrush(s, p.ratedCurrent)) * e.currentGain;
    out[2] = 0.08 + p.ratedVibration * n * n * e.vibrationGain;
    out[3] = p.ambient + 2 * s.daily + p.windingRise * s.heat + e.bearingTempAdd + e.tempAdd;
    g[0] = 0.2 + n;
    g[1] = e.currentNoise;
    g[2] = e.vibrationNoise * (0.3 + n);
    g[3] = 1;
  },
};

export const MACHINE_TYPE_DEFS: Record<MachineType, MachineTypeDef> = {
  pump,
  cnc_spindle: cncSpindle,
  compressor,
  conveyor,
  motor,
};
