/**
 * Plantwatch's streaming anomaly detector: per-sensor online models plus a per-machine multivariate
 * model, scored in batches across any number of streams. See README.md for the model.
 *
 * Per reading (O(window + prototypes) work, plus ONE shared tensor call per batch):
 *   1. event time: duplicates and hopelessly late readings are rejected, late ones are scored
 *      against the current state without updating it, a gap restarts the window;
 *   2. the shared tfjs predictor forecasts the value from the stream's last `window` values, its
 *      daily profile and the phase of day (`predicted`, band from the error scale);
 *   3. four kinds of evidence, each turned into a likelihood against the stream's own record:
 *      prediction surprise (= `rawScore`), pattern novelty (prototype memory), sustained departure
 *      from the daily profile, values beyond the all-time range; plus the onset of a stuck sensor;
 *   4. `likelihood` = the strongest of them; a Holt level/trend in event time gives the forecast and
 *      the time until a configured limit is crossed.
 *
 * Cost per reading (README › Performance): the core scores a column batch (`scoreColumns`, the
 * service's path) straight into score columns; `scoreBatch` is a thin wrapper that builds the
 * columns from Reading objects and the messages from the score columns. A stream's numbers live in
 * pooled typed-array slots (state-pool.ts) behind one small object, found from the interned series
 * through a cache on the series entry, so a reading allocates nothing and the heap the garbage
 * collector marks is a few objects per stream.
 */
import type { Logger } from '../../../common/logger.ts';
import type { MachineScore, Reading, SensorScore } from '../../../common/messages.ts';
import { IdentifierStrings, QUALITIES, ReadingBatch, SeriesInterner, type SeriesEntry } from '../../../common/reading-batch.ts';
import { SensorScoreColumns, TTL_NONE, type ColumnScoreOutput } from '../score-columns.ts';
import { initTf } from '../tf.ts';
import { DetectorConfig } from './config.ts';
import { Predictor, type PredictorState } from './model.ts';
import { scoreAndLearnAt, type NoveltyJson } from './novelty.ts';
import { SlotPool } from './state-pool.ts';
import { Rng, choleskySolveInto, chiSquareSurprise, normalTail, toArray, twoSidedSurprise } from './stats.ts';

export { DetectorConfig };

export interface DetectorSnapshot {
  version: string;
  createdAt: number;
  modelVersion: string;
  config: DetectorConfig;
  rngState: number;
  sinceTrain: number;
  trainings: number;
  replay: { seen: number; count: number; x: number[]; y: number[] };
  model: PredictorState;
  streams: SensorStateJson[];
  machines: MachineStateJson[];
  limits: Record<string, { upper?: number; lower?: number }>;
}

export interface ScoreOutput {
  sensor: SensorScore[];
  machine: MachineScore[];
  rejected: { reading: Reading; reason: string }[];
}

export interface StreamDetector {
  readonly modelVersion: string;
  /**
   * Scores readings of any number of streams in one call (batched inference across streams). Returns
   * one SensorScore per accepted reading (same order), plus MachineScores for machines whose readings
   * were in the batch. Late/out-of-order readings (by event time) are scored without poisoning state
   * (rejected only if hopelessly old / duplicate).
   */
  scoreBatch(readings: Reading[]): Promise<ScoreOutput>;
  /**
   * The same scoring on a column batch: one score row per accepted point (input order), rejected
   * points by index. Exactly the scores `scoreBatch` gives for the same readings; no object per
   * reading or score.
   */
  scoreColumns(input: ReadingBatch): Promise<ColumnScoreOutput>;
  /** Configure limits for time-to-limit prediction: key `${site}/${line}/${machine}/${sensor}` */
  setLimits?(limits: Record<string, { upper?: number; lower?: number }>): void;
  snapshot(): Promise<DetectorSnapshot>;
  /**
   * The state as of now, without stopping scoring while it is serialised: what is cheap (model,
   * counters) is copied at once; a stream or machine is copied just before scoring changes it, the
   * rest by `complete()`, which yields to the event loop as it goes. `snapshot()` = capture + complete.
   */
  captureSnapshot(): { complete(): Promise<DetectorSnapshot> };
  restore(s: DetectorSnapshot): Promise<void>;
  streamCount(): number;
  /** Bytes of state held for streams (for memory bounds / bench). */
  stateBytes(): number;
  dispose(): void;
}

const SNAPSHOT_VERSION = 'plantwatch-detector-snapshot/1';

// ---------------------------------------------------------------------------------------------
// Per-sensor state

interface SensorStateJson {
  key: string;
  site: string;
  line: string;
  machine: string;
  sensor: string;
  n: number;
  lastTs: number;
  recentTs: number[];
  dt: number;
  ring: number[];
  ringLen: number;
  ringPos: number;
  valMean: number;
  valVar: number;
  stepVar: number;
  min: number;
  max: number;
  errAbs: number;
  short: number[];
  shortLen: number;
  shortPos: number;
  shortSum: number;
  histN: number;
  histMean: number;
  histVar: number;
  level: number;
  trend: number;
  lastAlert: number;
  peak: number;
  run: number;
  runMax: number;
  lastSeen: number;
  novelty: NoveltyJson;
  nov: HistJson;
  seasonMean: number[];
  seasonDev: number[];
  seasonN: number[];
  seasonZ: number;
  season: HistJson;
  recMax: number;
  recBlocks: number[];
  recPos: number;
  recFill: number;
  recLong: number;
  pat: number[];
  patLen: number;
  patPos: number;
  strideSum: number;
  strideN: number;
}

interface HistJson {
  histN: number;
  histMean: number;
  histVar: number;
  /** Record calibration: maximum score of each of the last REC_BLOCKS blocks of the history window. */
  recMax: number;
  recBlocks: number[];
  recPos: number;
  recFill: number;
  /** Long-memory record (exponentially decaying maximum over `longHistoryWindow`). */
  recLong: number;
}

const RECENT_TS = 8;
/** The record is the maximum over the history window, kept as this many block maxima (bounded state). */
const REC_BLOCKS = 8;
/** Surprise is in decimal digits of improbability; beyond this it carries no more information. */
const MAX_SURPRISE = 300;

/*
 * Slot layout. A stream's doubles: the scalars below, three score histories (`Hist`: distribution
 * and record of a score), the recent timestamps, then (offsets depend on the configuration, see
 * `createDetector`) the value window, the short-term surprises, the pattern ring and the novelty
 * memory's use stamps. Its float32s: the seasonal profile (mean, deviation, count per bin) and the
 * novelty prototypes — float32 as they always were.
 */
const S_N = 0;
const S_LAST_TS = 1;
/** EWMA of the event-time step (ms). */
const S_DT = 2;
const S_RING_LEN = 3;
const S_RING_POS = 4;
const S_VAL_MEAN = 5;
const S_VAL_VAR = 6;
/** EWMA of squared first differences: the stream's typical step, the unit the predictor works in. */
const S_STEP_VAR = 7;
const S_MIN = 8;
const S_MAX = 9;
/** EWMA of |prediction error|. */
const S_ERR_ABS = 10;
const S_SHORT_LEN = 11;
const S_SHORT_POS = 12;
const S_SHORT_SUM = 13;
const S_LEVEL = 14;
const S_TREND = 15;
const S_LAST_ALERT = 16;
const S_PEAK = 17;
/** Current run of identical values, and the longest recent run (decaying). */
const S_RUN = 18;
const S_RUN_MAX = 19;
const S_LAST_SEEN = 20;
/** EWMA of the signed seasonal z-score: a sustained departure from the usual daily shape. */
const S_SEASON_Z = 21;
const S_PAT_LEN = 22;
const S_PAT_POS = 23;
const S_STRIDE_SUM = 24;
const S_STRIDE_N = 25;
const S_RECENT_N = 26;
const S_RECENT_POS = 27;
const S_NOV_COUNT = 28;
const S_NOV_CLOCK = 29;
/** A score history: Welford-like EWMA of the score, and its record as block maxima. */
const H_N = 0;
const H_MEAN = 1;
const H_VAR = 2;
const H_REC_MAX = 3;
const H_REC_POS = 4;
const H_REC_FILL = 5;
const H_REC_LONG = 6;
const H_BLOCKS = 7;
const HIST_SIZE = H_BLOCKS + REC_BLOCKS;
/** Distribution and record of the short-term mean surprise. */
const S_HIST = 30;
/** … of the pattern novelty distance. */
const S_NOV_HIST = S_HIST + HIST_SIZE;
/** … of the seasonal departure. */
const S_SEASON_HIST = S_NOV_HIST + HIST_SIZE;
/** Ring of the last RECENT_TS accepted/late timestamps (duplicate detection). */
const S_RECENT = S_SEASON_HIST + HIST_SIZE;
const S_FIXED = S_RECENT + RECENT_TS;

/**
 * A stream: its identity and where its numbers are. Every field is a string, a small integer or a
 * reference, so the object holds no boxed number.
 */
class SensorState {
  /** 1 when scored since it was last placed at the tail of the eviction order: a second chance (not checkpointed). */
  touchSeq = 0;
  /** False once evicted (or the detector restored): caches holding it must look the stream up again. */
  alive = true;
  /** Its machine's state and this sensor's slot in it (-2: not looked up yet), while `m.alive`. */
  m: MachineState | undefined = undefined;
  mSlot = -2;
  /** The series entry it was last found from by id (see `stateOf`). */
  entry: SeriesEntry | undefined = undefined;
  /** Its configured limit, as of `limitsVersion` (limits are looked up once per change, not per reading). */
  lim: { upper?: number; lower?: number } | undefined = undefined;
  limVer = -1;

  constructor(
    readonly key: string,
    readonly site: string,
    readonly line: string,
    readonly machine: string,
    readonly sensor: string,
    readonly machineKey: string,
    readonly slot: number,
    /** Its pooled doubles, from `b` on. */
    readonly d: Float64Array,
    readonly b: number,
    /** Its pooled float32s, from `fb` on. */
    readonly f: Float32Array,
    readonly fb: number,
  ) {}
}

// ---------------------------------------------------------------------------------------------
// Per-machine multivariate state: EWMA mean and covariance of the sensors' standardised values.

interface MachineStateJson {
  key: string;
  site: string;
  line: string;
  machine: string;
  sensors: string[];
  latest: number[];
  has: number[];
  mean: number[];
  cov: number[];
  updates: number;
  histN: number;
  histMean: number;
  histVar: number;
}

/*
 * Machine slot layout (doubles; MC = maxSensorsPerMachine): counters, the score history (the same
 * first three fields as a stream's Hist block, so the same functions serve both), then the sensors'
 * latest standardised values, their EWMA mean, this call's largest surprise, the presence flags and
 * the MC×MC covariance.
 */
const M_UPDATES = 0;
const M_HIST = 1;
const M_BATCH_LIK = 4;
const M_BATCH_TS = 5;
const M_LATEST = 6;

/** A machine: identity, sensor names, and where its numbers are (no boxed number, no array buffer of its own). */
class MachineState {
  sensors: string[] = [];
  /** Fed in this call (machine scores go out for touched machines only; in `touched` while true). */
  touched = false;
  /** Place in the machine map's insertion order: touched machines are scored in that order. */
  seq = 0;
  /** False once removed from the machine map (evicted, or the detector restored). */
  alive = true;

  constructor(
    readonly key: string,
    readonly site: string,
    readonly line: string,
    readonly machine: string,
    readonly cap: number,
    readonly slotId: number,
    /** Its pooled doubles, from `b` on (layout above; offsets of the arrays in `MachineLayout`). */
    readonly d: Float64Array,
    readonly b: number,
  ) {}
}

/** Offsets of a machine's arrays in its slot (they depend on maxSensorsPerMachine). */
interface MachineLayout {
  latest: number;
  mean: number;
  surprise: number;
  has: number;
  cov: number;
  size: number;
}

function machineLayout(cap: number): MachineLayout {
  const latest = M_LATEST;
  const mean = latest + cap;
  const surprise = mean + cap;
  const has = surprise + cap;
  const cov = has + cap;
  return { latest, mean, surprise, has, cov, size: cov + cap * cap };
}

// ---------------------------------------------------------------------------------------------

/** A snapshot being completed: the streams and machines it has not copied yet, and early copies. */
interface SnapshotCopy {
  streams: Set<SensorState>;
  machines: Set<MachineState>;
  streamJson: Map<SensorState, SensorStateJson>;
  machineJson: Map<MachineState, MachineStateJson>;
}

/** Longest stretch a snapshot's completion holds the event loop. */
const SNAPSHOT_SLICE_MS = 10;

/** Rough heap bytes of a SensorState object, its map entry and a few words of bookkeeping. */
const STREAM_OBJECT_BYTES = 160;
/** … of a machine's object, and per sensor name it holds. */
const MACHINE_OBJECT_BYTES = 128;
const MACHINE_SENSOR_BYTES = 64;
const BAD_QUALITY = QUALITIES.indexOf('bad');

/**
 * Likelihood of a z-score of the short-term surprise: the normal CDF up to z = 3, then a polynomial
 * (heavy, Cauchy-like) tail 1 - Q(3)(3/z)^2. Real sensor errors are heavy-tailed, and unlike the
 * normal tail this one stays resolvable in double precision up to z ~ 1e6, so larger deviations always
 * rank higher (one threshold must work across all streams).
 */
export function likelihoodOf(z: number): number {
  if (!(z > -40)) return 0;
  if (z <= 3) return 1 - normalTail(z);
  return 1 - Q3 * (3 / z) * (3 / z);
}
const Q3 = normalTail(3);

/**
 * Likelihood of a record ratio r (a score divided by the stream's recent record): r = 1 is a 3-sigma
 * event, and z = 3r^3 keeps ordinary readings (r well below 1) near 0.5 while anything beyond the
 * record climbs steeply towards 1.
 */
export function ratioLikelihood(r: number): number {
  return likelihoodOf(3 * r * r * r);
}

/** Evidence kinds, in the order `EvidenceTrace` reports them. */
export const EVIDENCE_KINDS = ['prediction', 'novelty', 'season', 'range', 'stuck'] as const;
/**
 * Development hook (NAB analysis): called once per scored reading, in the order of the returned
 * scores, with each evidence kind's record ratio (same order as EVIDENCE_KINDS; 0 when the kind did
 * not fire, all 0 for late readings). The array is reused.
 */
export type EvidenceTrace = (key: string, n: number, likelihoods: Float64Array) => void;

export async function createDetector(
  config: DetectorConfig,
  deps: { logger?: Logger; now?: () => number; trace?: EvidenceTrace } = {},
): Promise<StreamDetector> {
  const cfg = DetectorConfig.parse(config);
  await initTf(deps.logger);
  const now = deps.now ?? Date.now;
  const W = cfg.window;
  const K = cfg.shortWindow;
  /** Predictor inputs: the window, the seasonal profile's expectation, and the phase of the period. */
  const F = W + 3;
  const ND = cfg.novelty.dim;
  const NP = cfg.novelty.prototypes;
  const SB = cfg.season.bins;
  // The configuration-dependent part of the slot layout (see S_FIXED).
  const S_RING = S_FIXED;
  const S_SHORT = S_RING + W;
  const S_PAT = S_SHORT + K;
  const S_NOV_USED = S_PAT + ND;
  const F64_SIZE = S_NOV_USED + NP;
  const F_SEASON_MEAN = 0;
  const F_SEASON_DEV = SB;
  const F_SEASON_N = 2 * SB;
  const F_PROTOS = 3 * SB;
  const F32_SIZE = F_PROTOS + ND * NP;
  const newPool = () => new SlotPool(F64_SIZE, F32_SIZE, 256);
  let pool = newPool();
  const MC = cfg.maxSensorsPerMachine;
  const ML = machineLayout(MC);
  const newMachinePool = () => new SlotPool(ML.size, 0, 64);
  let machinePool = newMachinePool();
  /** Owner token of the state cache on series entries (a cached state is valid while `alive`). */
  const token: object = {};
  /** Stream states by series entry id, for entries whose cache slot another user owns (see stateOf). */
  const byEntryId = new Map<number, SensorState>();
  const rng = new Rng(cfg.model.seed);
  const model = new Predictor(F, cfg.model.hidden, cfg.model.learningRate, rng);
  const streams = new Map<string, SensorState>();
  const machines = new Map<string, MachineState>();
  /** One machine-key string per machine for its sensors' states (a stream is often created before its machine's state). */
  const machineKeys = new IdentifierStrings();
  let machineSeq = 0;
  /**
   * Heap bytes of what is not in the pools, kept up to date as streams and machines come and go, so
   * `stateBytes()` is O(1): summing them at every /metrics scrape walked all streams (~100 ms at
   * 100k streams, a stall in live scoring).
   */
  let keyBytes = 0;
  let machineSensorBytes = 0;
  const streamKeyBytes = (st: SensorState) => st.key.length + 16;
  /** Snapshots being completed (copy-on-write; usually none). */
  const copies: SnapshotCopy[] = [];
  function keepStream(st: SensorState): void {
    for (const c of copies) if (c.streams.delete(st)) c.streamJson.set(st, streamJson(st));
  }
  function keepMachine(m: MachineState): void {
    for (const c of copies) if (c.machines.delete(m)) c.machineJson.set(m, machineJson(m));
  }
  let limits: Record<string, { upper?: number; lower?: number }> = {};
  let limitsVersion = 0;
  // Replay reservoir of (window, target) examples over all streams.
  const R = cfg.model.replaySize;
  let replayX = new Float32Array(R * F);
  let replayY = new Float32Array(R);
  let replayCount = 0;
  let replaySeen = 0;
  let sinceTrain = 0;
  let trainings = 0;
  let lastIdleSweep = now();
  const normAlpha = 1 / cfg.normWindow;
  const patScratch = new Float64Array(ND);
  const histAlpha = 1 / cfg.historyWindow;
  const trace = deps.trace;
  // Runs of identical values are remembered long: count data (0, 0, 0…) has long runs weeks apart.
  const runAlpha = 1 / cfg.longHistoryWindow;
  const ev = new Float64Array(EVIDENCE_KINDS.length);
  /** The interner of `scoreBatch`'s own column batches (the service brings its own entries). */
  const interner = new SeriesInterner();
  /** Slots of streams evicted during a call: freed when it ends (pending readings may still use them). */
  let inCall = false;
  const deadSlots: number[] = [];
  const deadMachineSlots: number[] = [];

  // Per-call scratch, reused: one entry per accepted point (`Pending` of the object era).
  let cap = 0;
  let pSt: (SensorState | undefined)[] = [];
  let pPoint = new Int32Array(0);
  /** 1: late or bad-quality, scored against the current state with no state change. */
  let pLate = new Uint8Array(0);
  /** Row in the inference batch, or -1 when the window is not full yet (persistence forecast). */
  let pRow = new Int32Array(0);
  let pLast = new Float64Array(0);
  let pScale = new Float64Array(0);
  let pHasLast = new Uint8Array(0);
  let pDt = new Float64Array(0);
  /** The stream's reading count including this reading (n runs ahead within a call). */
  let pN = new Float64Array(0);
  let xs = new Float32Array(0);
  function reserve(n: number): void {
    if (n <= cap) return;
    cap = Math.max(n, 2 * cap, 256);
    pSt = new Array(cap).fill(undefined);
    pPoint = new Int32Array(cap);
    pLate = new Uint8Array(cap);
    pRow = new Int32Array(cap);
    pLast = new Float64Array(cap);
    pScale = new Float64Array(cap);
    pHasLast = new Uint8Array(cap);
    pDt = new Float64Array(cap);
    pN = new Float64Array(cap);
    xs = new Float32Array(cap * F);
  }
  const touched: MachineState[] = [];
  const bySeq = (a: MachineState, b: MachineState) => a.seq - b.seq;
  // scoreMachine scratch
  const mIdx = new Int32Array(MC);
  const mD = new Float64Array(MC);
  const mA = new Float64Array(MC * MC);
  const mParts = new Float64Array(MC);
  const mL = new Float64Array(MC * MC);
  const mY = new Float64Array(MC);
  const mX = new Float64Array(MC);

  function newState(key: string, site: string, line: string, machine: string, sensor: string): SensorState {
    const slot = pool.alloc();
    // join, not a template: a flat string, where concatenation leaves a tree of cons-string objects
    // Keys of machines long gone pile up: start afresh now and then.
    if (machineKeys.size > 2 * machines.size + 1024) machineKeys.clear();
    const mk = machineKeys.of([site, line, machine].join('/'));
    const st = new SensorState(key, site, line, machine, sensor, mk, slot, pool.f64Of(slot), pool.f64Base(slot), pool.f32Of(slot), pool.f32Base(slot));
    const d = st.d;
    const b = st.b;
    d[b + S_LAST_TS] = -1;
    d[b + S_MIN] = Infinity;
    d[b + S_MAX] = -Infinity;
    d[b + S_LAST_ALERT] = -1e12;
    return st;
  }

  function newMachine(key: string, site: string, line: string, machine: string): MachineState {
    const slot = machinePool.alloc();
    return new MachineState(key, site, line, machine, MC, slot, machinePool.f64Of(slot), machinePool.f64Base(slot));
  }

  /** The sensor's index in the machine model; a new sensor gets the next free one (-1 when full). */
  function machineSlot(m: MachineState, sensor: string): number {
    let i = m.sensors.indexOf(sensor);
    if (i < 0 && m.sensors.length < m.cap) {
      i = m.sensors.length;
      m.sensors.push(sensor);
      machineSensorBytes += MACHINE_SENSOR_BYTES;
      m.d[m.b + ML.cov + i * m.cap + i] = 1;
    }
    return i;
  }

  function addMachine(m: MachineState): void {
    m.seq = machineSeq++;
    machines.set(m.key, m);
    machineSensorBytes += MACHINE_SENSOR_BYTES * m.sensors.length;
  }

  /**
   * The stream of a series entry, without building its key: from the entry's cache slot when this
   * detector owns it, else from `byEntryId` (the slot is shared with other users of the same entries —
   * the service's score encoder keeps its per-series bytes there — and is never taken from them).
   * Either way the state is checked (`alive`; `entry` for ids, which other interners reuse) and the
   * map by key is the fallback.
   */
  function stateOf(e: SeriesEntry): SensorState | undefined {
    if (e.cacheOwner === token) {
      const c = e.cacheValue as SensorState;
      return c.alive ? c : undefined;
    }
    const c = byEntryId.get(e.id);
    return c !== undefined && c.entry === e && c.alive ? c : undefined;
  }

  function remember(e: SeriesEntry, st: SensorState): void {
    if (e.cacheOwner === undefined || e.cacheOwner === token) {
      e.cacheOwner = token;
      e.cacheValue = st;
      return;
    }
    // Entries of evicted streams and of other interners pile up: start afresh now and then.
    if (byEntryId.size > 2 * streams.size + 1024) byEntryId.clear();
    st.entry = e;
    byEntryId.set(e.id, st);
  }

  function touchStream(e: SeriesEntry, t: number): SensorState {
    let st = stateOf(e);
    if (st === undefined) {
      const key = [e.site, e.line, e.machine, e.sensor].join('/');
      st = streams.get(key);
      if (!st) {
        // A new stream starts without a second chance (touchSeq 0).
        st = newState(key, e.site, e.line, e.machine, e.sensor);
        while (streams.size >= cfg.maxStreams) evictOldest();
        streams.set(key, st);
        keyBytes += streamKeyBytes(st);
        remember(e, st);
        st.d[st.b + S_LAST_SEEN] = t;
        return st;
      }
      remember(e, st);
    }
    if (copies.length > 0) keepStream(st);
    st.touchSeq = 1;
    st.d[st.b + S_LAST_SEEN] = t;
    return st;
  }

  /**
   * Approximately least recently used (CLOCK): map order is the order streams were placed in; one
   * scored since then gets a second chance (moved to the tail, once), the first one that was not is
   * evicted. The map is reordered only when evicting, never per reading: at 100k streams moving every
   * touched key churned the map's table and the young generation (scavenges 3x as long).
   */
  function evictOldest(): void {
    for (;;) {
      const first = streams.entries().next();
      if (first.done) return;
      const [key, st] = first.value;
      if (st.touchSeq === 0) {
        evictStream(key);
        return;
      }
      st.touchSeq = 0;
      streams.delete(key);
      streams.set(key, st);
    }
  }

  function evictStream(key: string): void {
    const st = streams.get(key);
    if (!st) return;
    if (copies.length > 0) keepStream(st);
    streams.delete(key);
    keyBytes -= streamKeyBytes(st);
    st.alive = false;
    if (inCall) deadSlots.push(st.slot);
    else pool.release(st.slot);
    const mk = st.machineKey;
    const m = machines.get(mk);
    if (m) {
      if (copies.length > 0) keepMachine(m);
      const md = m.d;
      const hb = m.b + ML.has;
      const i = m.sensors.indexOf(st.sensor);
      if (i >= 0) md[hb + i] = 0;
      let any = false;
      for (let j = 0; j < MC; j++) if (md[hb + j] === 1) any = true;
      if (!any) {
        machines.delete(mk);
        machineSensorBytes -= MACHINE_SENSOR_BYTES * m.sensors.length;
        m.alive = false;
        if (inCall) deadMachineSlots.push(m.slotId);
        else machinePool.release(m.slotId);
      }
    }
  }

  function sweepIdle(): void {
    if (cfg.idleEvictMs <= 0) return;
    const t = now();
    if (t - lastIdleSweep < cfg.idleEvictMs / 4) return;
    lastIdleSweep = t;
    // Map order is not recency order (see evictOldest): look at every stream.
    const idle: string[] = [];
    for (const [key, st] of streams) if (t - st.d[st.b + S_LAST_SEEN] > cfg.idleEvictMs) idle.push(key);
    for (const key of idle) evictStream(key);
  }

  function addExample(x: Float32Array, off: number, y: number): void {
    replaySeen++;
    let slot: number;
    if (replayCount < R) slot = replayCount++;
    else {
      // Reservoir biased to recent data: replace a random slot with probability 1/2, so old examples decay.
      if (rng.next() < 0.5) return;
      slot = Math.floor(rng.next() * R);
    }
    replayX.set(x.subarray(off, off + F), slot * F);
    replayY[slot] = y;
  }

  /**
   * The training schedule: `trainSteps` Adam steps per `trainEvery` accepted readings (per
   * `matureTrainEvery` once the model took `matureSteps` steps), taken one at a time every
   * `trainEvery / trainSteps` readings (counted across calls), so training costs the same per reading
   * whatever the batch size and a big batch never carries a burst of steps. Driven only by the
   * reading count: the same input gives the same model, however fast it arrives.
   */
  const readingsPerStep = Math.max(1, Math.round(cfg.model.trainEvery / cfg.model.trainSteps));
  const matureReadingsPerStep = Math.max(1, Math.round(cfg.model.matureTrainEvery / cfg.model.trainSteps));
  function trainDue(): void {
    for (;;) {
      const every = cfg.model.matureSteps > 0 && model.step >= cfg.model.matureSteps ? matureReadingsPerStep : readingsPerStep;
      if (sinceTrain < every) return;
      sinceTrain -= every;
      trainStep();
    }
  }

  function trainStep(): void {
    const B = Math.min(cfg.model.batchSize, replayCount);
    if (B < 16) return;
    const xb = new Float32Array(B * F);
    const yb = new Float32Array(B);
    for (let i = 0; i < B; i++) {
      const j = Math.floor(rng.next() * replayCount);
      xb.set(replayX.subarray(j * F, j * F + F), i * F);
      yb[i] = replayY[j];
    }
    model.trainStep(xb, yb, B);
    trainings++;
  }

  /** Gaussian-fit likelihood of a score against a history (`h`: offset of a Hist block in `d`). */
  function surpriseToLikelihood(d: Float64Array, h: number, u: number, minSpread: number): number {
    if (d[h + H_N] < 8) return 0;
    // Floor: on a very regular stream the surprise barely varies, and a tiny spread would turn the
    // first wobble into an extreme z (and, across streams, outrank real anomalies elsewhere).
    const sd = Math.max(Math.sqrt(d[h + H_VAR]), minSpread);
    return likelihoodOf((u - d[h + H_MEAN]) / sd);
  }


  /**
   * Record calibration: a score as large as the largest of the stream's recent history (a maximum
   * decaying over `historyWindow` readings) is a 3-sigma event; twice as large is 6 sigma. Judges each
   * stream by its own rare events whatever the shape of its score distribution.
   */
  function recordLikelihood(d: Float64Array, h: number, s: number, floor: number): number {
    return ratioLikelihood(recordRatio(d, h, s, floor));
  }

  /** A score divided by the stream's record for its kind (0 while the record is not established). */
  function recordRatio(d: Float64Array, h: number, s: number, floor: number): number {
    if (d[h + H_N] < 8) return 0;
    // The bar is the recent record, or a share of the long-memory one: a heavy-tailed stream whose
    // big bursts are weeks apart should not alarm at every burst half their size.
    return s / Math.max(d[h + H_REC_MAX], cfg.longRecordShare * d[h + H_REC_LONG], floor);
  }

  /** The Gaussian-fit z of a score as the record ratio with the same likelihood (z = 3r³). */
  function gaussianRatio(d: Float64Array, h: number, u: number, minSpread: number): number {
    if (d[h + H_N] < 8) return 0;
    const z = (u - d[h + H_MEAN]) / Math.max(Math.sqrt(d[h + H_VAR]), minSpread);
    return z > 0 ? Math.cbrt(z / 3) : 0;
  }

  const weights = EVIDENCE_KINDS.map((k) => cfg.evidenceWeights[k]);
  /** The reading's evidence: the strongest of the kinds' weighted ratios. */
  function combineEvidence(r: Float64Array): number {
    let m = 0;
    for (let k = 0; k < r.length; k++) if (weights[k] * r[k] > m) m = weights[k] * r[k];
    return m;
  }

  const recordBlock = Math.max(1, Math.round(cfg.historyWindow / REC_BLOCKS));
  const longDecay = 1 - 1 / cfg.longHistoryWindow;
  function updateRecord(d: Float64Array, h: number, s: number, n: number): void {
    // The first readings only seed the scales; their transients must not set the bar for later.
    if (n <= cfg.warmupReadings) return;
    if (d[h + H_REC_FILL] >= recordBlock) {
      const pos = ((d[h + H_REC_POS] | 0) + 1) % REC_BLOCKS;
      d[h + H_REC_POS] = pos;
      d[h + H_BLOCKS + pos] = 0;
      d[h + H_REC_FILL] = 0;
      let mx = d[h + H_BLOCKS];
      for (let j = 1; j < REC_BLOCKS; j++) mx = Math.max(mx, d[h + H_BLOCKS + j]);
      d[h + H_REC_MAX] = mx;
    }
    d[h + H_REC_FILL]++;
    const at = h + H_BLOCKS + (d[h + H_REC_POS] | 0);
    if (s > d[at]) d[at] = s;
    if (s > d[h + H_REC_MAX]) d[h + H_REC_MAX] = s;
    d[h + H_REC_LONG] = Math.max(d[h + H_REC_LONG] * longDecay, s);
  }

  function updateHist(d: Float64Array, h: number, u: number): void {
    // An outlier enters the history clipped, so one burst does not mute the stream for the whole window.
    if (d[h + H_N] >= 8) u = Math.min(u, d[h + H_MEAN] + 5 * Math.sqrt(d[h + H_VAR]) + 0.1);
    const hn = d[h + H_N] + 1;
    d[h + H_N] = hn;
    const a = Math.max(1 / hn, histAlpha);
    const dd = u - d[h + H_MEAN];
    d[h + H_MEAN] += a * dd;
    d[h + H_VAR] = (1 - a) * (d[h + H_VAR] + a * dd * dd);
  }


  function limitOf(st: SensorState): { upper?: number; lower?: number } | undefined {
    if (st.limVer !== limitsVersion) {
      st.lim = limits[st.key];
      st.limVer = limitsVersion;
    }
    return st.lim;
  }

  function forecastAndLimit(st: SensorState, cols: SensorScoreColumns, row: number): void {
    const d = st.d;
    const b = st.b;
    const h = cfg.forecastHorizonMs;
    const sd = 1.2533 * d[b + S_ERR_ABS];
    const dt = d[b + S_DT];
    const steps = dt > 0 ? h / dt : 1;
    const level = d[b + S_LEVEL];
    const trend = d[b + S_TREND];
    const value = level + trend * h;
    const spread = cfg.bandSigmas * sd * Math.sqrt(1 + 0.1 * steps);
    cols.forecastHorizonMs[row] = h;
    cols.forecastValue[row] = value;
    cols.forecastLower[row] = value - spread;
    cols.forecastUpper[row] = value + spread;
    const lim = limitOf(st);
    if (!lim) return;
    let ttl: number | null = null;
    if (lim.upper !== undefined) {
      if (level >= lim.upper) ttl = 0;
      else if (trend > 0) ttl = (lim.upper - level) / trend;
    }
    if (lim.lower !== undefined) {
      let t2: number | null = null;
      if (level <= lim.lower) t2 = 0;
      else if (trend < 0) t2 = (lim.lower - level) / trend;
      if (t2 !== null && (ttl === null || t2 < ttl)) ttl = t2;
    }
    cols.timeToLimitMs[row] = ttl !== null && ttl <= cfg.limitHorizonMs ? Math.round(ttl) : TTL_NONE;
  }

  /** Scale of one step, floored so that a flat-lined stream still has a finite, tiny unit. */
  function stepScale(d: Float64Array, b: number): number {
    const mx = d[b + S_MAX];
    const mn = d[b + S_MIN];
    const range = mx > mn ? mx - mn : 0;
    return Math.max(Math.sqrt(d[b + S_STEP_VAR]), 1e-3 * range, 1e-6 * Math.abs(d[b + S_VAL_MEAN]), 1e-9);
  }

  function recentHas(d: Float64Array, b: number, ts: number): boolean {
    const n = d[b + S_RECENT_N] | 0;
    for (let j = 0; j < n; j++) if (d[b + S_RECENT + j] === ts) return true;
    return false;
  }
  function recentPush(d: Float64Array, b: number, ts: number): void {
    const pos = d[b + S_RECENT_POS] | 0;
    d[b + S_RECENT + pos] = ts;
    d[b + S_RECENT_POS] = (pos + 1) % RECENT_TS;
    if (d[b + S_RECENT_N] < RECENT_TS) d[b + S_RECENT_N]++;
  }

  async function scoreColumns(input: ReadingBatch): Promise<ColumnScoreOutput> {
    return scoreCore(input);
  }

  async function scoreBatch(readings: Reading[]): Promise<ScoreOutput> {
    const input = ReadingBatch.fromReadings(readings, interner);
    // A Float64Array column would coerce a non-number; the object API rejects it as non-finite.
    for (let i = 0; i < readings.length; i++) {
      const r = readings[i];
      if (typeof r.value !== 'number') input.value[i] = Number.NaN;
      if (typeof r.ts !== 'number') input.ts[i] = Number.NaN;
    }
    const out = scoreCore(input);
    const rejected: ScoreOutput['rejected'] = new Array(out.rejected.length);
    for (let k = 0; k < out.rejected.length; k++) rejected[k] = { reading: readings[out.rejected[k].point], reason: out.rejected[k].reason };
    return { sensor: out.sensor.toSensorScores(input, cfg.modelVersion), machine: out.machine, rejected };
  }

  function scoreCore(input: ReadingBatch): ColumnScoreOutput {
    sweepIdle();
    inCall = true;
    try {
      return scoreCoreIn(input);
    } finally {
      inCall = false;
      for (const s of deadSlots) pool.release(s);
      deadSlots.length = 0;
      for (const s of deadMachineSlots) machinePool.release(s);
      deadMachineSlots.length = 0;
      for (let k = 0; k < cap && pSt[k] !== undefined; k++) pSt[k] = undefined;
    }
  }

  function scoreCoreIn(input: ReadingBatch): ColumnScoreOutput {
    const batchNow = now();
    const nIn = input.n;
    const cols = new SensorScoreColumns(nIn);
    const rejected: { point: number; reason: string }[] = [];
    const machineOut: MachineScore[] = [];
    reserve(nIn);
    const tsCol = input.ts;
    const valCol = input.value;
    const season = cfg.season;
    let np = 0;
    let rows = 0;

    // Pass 1: event-time bookkeeping and window capture, in order (windows of later readings of the
    // same stream include earlier readings of this batch).
    for (let i = 0; i < nIn; i++) {
      const value = valCol[i];
      const ts = tsCol[i];
      if (!Number.isFinite(value) || !Number.isFinite(ts)) {
        rejected.push({ point: i, reason: 'value and ts must be finite numbers' });
        continue;
      }
      const st = touchStream(input.series[i], batchNow);
      const d = st.d;
      const b = st.b;
      const n0 = d[b + S_N];
      if (n0 > 0 && ts <= d[b + S_LAST_TS]) {
        if (recentHas(d, b, ts)) {
          rejected.push({ point: i, reason: 'duplicate: a reading with this timestamp was already scored' });
          continue;
        }
        const lastTs = d[b + S_LAST_TS];
        if (lastTs - ts > cfg.maxLatenessMs) {
          rejected.push({ point: i, reason: `too late: ${lastTs - ts} ms behind the stream (max ${cfg.maxLatenessMs})` });
          continue;
        }
        const k = np++;
        pSt[k] = st;
        pPoint[k] = i;
        pLate[k] = 1;
        pRow[k] = -1;
        pLast[k] = d[b + S_LEVEL];
        pScale[k] = stepScale(d, b);
        pHasLast[k] = 1;
        pDt[k] = 0;
        pN[k] = n0;
        recentPush(d, b, ts);
        continue;
      }
      if (input.quality[i] === BAD_QUALITY) {
        // The device itself says the value is bad: score it, but do not learn from it.
        const k = np++;
        pSt[k] = st;
        pPoint[k] = i;
        pLate[k] = 1;
        pRow[k] = -1;
        pLast[k] = n0 > 0 ? d[b + S_LEVEL] : value;
        pScale[k] = stepScale(d, b);
        pHasLast[k] = n0 > 0 ? 1 : 0;
        pDt[k] = 0;
        pN[k] = n0;
        continue;
      }
      const dtMs = n0 > 0 ? ts - d[b + S_LAST_TS] : 0;
      if (n0 > 0 && d[b + S_DT] > 0 && dtMs > cfg.gapFactor * d[b + S_DT]) d[b + S_RING_LEN] = 0; // gap: old window says nothing about now
      const scale = stepScale(d, b);
      // Counters and positions are small integers: read as such (a double `%` is a slow fmod).
      const ringLen = d[b + S_RING_LEN] | 0;
      const ringPos = d[b + S_RING_POS] | 0;
      const hasLast = ringLen > 0;
      const last = hasLast ? d[b + S_RING + ((ringPos - 1 + W) % W)] : value;
      let row = -1;
      if (ringLen >= W) {
        row = rows++;
        const off = row * F;
        for (let j = 0; j < W; j++) {
          const v = d[b + S_RING + ((ringPos + j) % W)];
          xs[off + j] = Math.max(-10, Math.min(10, (v - last) / scale));
        }
        const phase = (((ts % season.periodMs) + season.periodMs) % season.periodMs) / season.periodMs;
        const bin = Math.floor(phase * SB) % SB;
        const f = st.f;
        const fb = st.fb;
        xs[off + W] = season.enabled && f[fb + F_SEASON_N + bin] >= season.minSamples ? Math.max(-10, Math.min(10, (f[fb + F_SEASON_MEAN + bin] - last) / scale)) : 0;
        xs[off + W + 1] = Math.sin(2 * Math.PI * phase);
        xs[off + W + 2] = Math.cos(2 * Math.PI * phase);
      }
      const k = np++;
      pSt[k] = st;
      pPoint[k] = i;
      pLate[k] = 0;
      pRow[k] = row;
      pLast[k] = last;
      pScale[k] = scale;
      pHasLast[k] = hasLast ? 1 : 0;
      pDt[k] = dtMs;
      pN[k] = n0 + 1;
      // Update what later windows in this batch depend on.
      if (hasLast) {
        const dv = value - last;
        const a = Math.max(1 / n0, normAlpha);
        d[b + S_STEP_VAR] = n0 <= 1 ? dv * dv : (1 - a) * d[b + S_STEP_VAR] + a * dv * dv;
      }
      d[b + S_RING + ringPos] = value;
      d[b + S_RING_POS] = (ringPos + 1) % W;
      d[b + S_RING_LEN] = Math.min(W, ringLen + 1);
      if (n0 > 0 && dtMs > 0) {
        const dt = d[b + S_DT];
        d[b + S_DT] = dt === 0 ? dtMs : dt + 0.05 * (dtMs - dt);
      }
      d[b + S_LAST_TS] = ts;
      recentPush(d, b, ts);
      d[b + S_N] = n0 + 1;
    }

    // Pass 2: one tensor call for every full window in the batch, whatever stream it belongs to.
    const preds = model.predict(xs.subarray(0, rows * F), rows);

    // Pass 3: errors, likelihoods, forecasts, in reading order.
    const record = cfg.calibration === 'record';
    for (let k = 0; k < np; k++) {
      const st = pSt[k]!;
      const i = pPoint[k];
      const n = pN[k];
      const value = valCol[i];
      const ts = tsCol[i];
      const d = st.d;
      const b = st.b;
      let m = st.m;
      if (m === undefined || !m.alive) {
        m = machines.get(st.machineKey);
        if (!m) {
          const e = input.series[i];
          m = newMachine(st.machineKey, e.site, e.line, e.machine);
          addMachine(m);
        }
        st.m = m;
        st.mSlot = -2;
      }
      if (copies.length > 0) keepMachine(m);
      const row = cols.add(i);
      cols.warmingUp[row] = n < cfg.warmupReadings ? 1 : 0;
      const last = pLast[k];
      const scale = pScale[k];
      const hasLast = pHasLast[k] === 1;
      const errSd = Math.max(1.2533 * d[b + S_ERR_ABS], 1e-3 * scale, 1e-12);
      if (pLate[k] === 1) {
        // Late or bad-quality: scored against the current state, which it must not change.
        const e = value - last;
        const u = hasLast ? Math.min(twoSidedSurprise(e / errSd), MAX_SURPRISE) : 0;
        cols.predicted[row] = last;
        cols.lower[row] = last - cfg.bandSigmas * errSd;
        cols.upper[row] = last + cfg.bandSigmas * errSd;
        cols.rawScore[row] = u;
        cols.likelihood[row] = record ? recordLikelihood(d, b + S_HIST, u, cfg.minSurpriseSpread) : surpriseToLikelihood(d, b + S_HIST, u, cfg.minSurpriseSpread);
        if (trace) {
          ev.fill(0);
          trace(st.key, n, ev);
        }
        continue;
      }
      const pr = pRow[k];
      const predicted = pr >= 0 ? last + scale * preds[pr] : last;
      const e = value - predicted;
      // The first few errors only seed the error scale; capped so one absurd value cannot wreck the statistics.
      const u = hasLast && n > 3 ? Math.min(twoSidedSurprise(e / errSd), MAX_SURPRISE) : 0;
      cols.predicted[row] = predicted;
      cols.lower[row] = predicted - cfg.bandSigmas * errSd;
      cols.upper[row] = predicted + cfg.bandSigmas * errSd;
      cols.rawScore[row] = u;
      // Short-term mean surprise against its own history.
      const shortPos = d[b + S_SHORT_POS] | 0;
      if (d[b + S_SHORT_LEN] === K) d[b + S_SHORT_SUM] -= d[b + S_SHORT + shortPos];
      else d[b + S_SHORT_LEN]++;
      d[b + S_SHORT + shortPos] = u;
      d[b + S_SHORT_SUM] += u;
      d[b + S_SHORT_POS] = (shortPos + 1) % K;
      const shortMean = d[b + S_SHORT_SUM] / d[b + S_SHORT_LEN];
      ev.fill(0);
      ev[0] = record ? recordRatio(d, b + S_HIST, shortMean, cfg.minSurpriseSpread) : gaussianRatio(d, b + S_HIST, shortMean, cfg.minSurpriseSpread);
      updateHist(d, b + S_HIST, shortMean);
      updateRecord(d, b + S_HIST, shortMean, n);
      // Pattern novelty of the latest stride-averaged window.
      d[b + S_STRIDE_SUM] += value;
      d[b + S_STRIDE_N]++;
      if (d[b + S_STRIDE_N] >= cfg.novelty.stride) {
        const patPos = d[b + S_PAT_POS] | 0;
        d[b + S_PAT + patPos] = d[b + S_STRIDE_SUM] / d[b + S_STRIDE_N];
        const nextPos = (patPos + 1) % ND;
        d[b + S_PAT_POS] = nextPos;
        const patLen = Math.min(ND, (d[b + S_PAT_LEN] | 0) + 1);
        d[b + S_PAT_LEN] = patLen;
        d[b + S_STRIDE_SUM] = 0;
        d[b + S_STRIDE_N] = 0;
        if (patLen === ND) {
          const w = patScratch;
          for (let j = 0; j < ND; j++) w[j] = d[b + S_PAT + ((nextPos + j) % ND)];
          const lo = Math.min(d[b + S_MIN], value);
          const hi = Math.max(d[b + S_MAX], value);
          const range = Math.max(hi - lo, 1e-9 * Math.abs(hi), 1e-12);
          const dist = scoreAndLearnAt(st.f, st.fb + F_PROTOS, d, b + S_NOV_COUNT, b + S_NOV_CLOCK, b + S_NOV_USED, ND, NP, w, range, cfg.novelty.vigilance);
          if (dist >= 0) {
            ev[1] = record ? recordRatio(d, b + S_NOV_HIST, dist, cfg.novelty.minSpread) : gaussianRatio(d, b + S_NOV_HIST, dist, cfg.novelty.minSpread);
            updateHist(d, b + S_NOV_HIST, dist);
            updateRecord(d, b + S_NOV_HIST, dist, n);
          }
        }
      }
      // Seasonal profile: how far the value is from what this phase of the period usually shows.
      if (season.enabled) {
        const f = st.f;
        const fb = st.fb;
        const bin = Math.floor((((ts % season.periodMs) + season.periodMs) % season.periodMs) / (season.periodMs / SB)) % SB;
        const cnt = f[fb + F_SEASON_N + bin];
        if (cnt >= season.minSamples) {
          const dev = Math.max(1.2533 * f[fb + F_SEASON_DEV + bin], errSd, 1e-12);
          const zs = Math.max(-10, Math.min(10, (value - f[fb + F_SEASON_MEAN + bin]) / dev));
          const seasonZ = d[b + S_SEASON_Z] + season.smoothing * (zs - d[b + S_SEASON_Z]);
          d[b + S_SEASON_Z] = seasonZ;
          // an EWMA of N(0,1) has variance a/(2-a): rescale so the sustained departure is in sigmas
          const zbar = seasonZ / Math.sqrt(season.smoothing / (2 - season.smoothing));
          const us = twoSidedSurprise(zbar);
          if (n > cfg.warmupReadings) {
            ev[2] = recordRatio(d, b + S_SEASON_HIST, us, cfg.minSurpriseSpread);
            updateRecord(d, b + S_SEASON_HIST, us, n);
          }
          d[b + S_SEASON_HIST + H_N]++;
        }
        const a = Math.max(1 / (cnt + 1), season.learningRate);
        if (cnt === 0) f[fb + F_SEASON_MEAN + bin] = value;
        const dm = value - f[fb + F_SEASON_MEAN + bin];
        f[fb + F_SEASON_MEAN + bin] += a * dm;
        f[fb + F_SEASON_DEV + bin] += a * (Math.abs(dm) - f[fb + F_SEASON_DEV + bin]);
        f[fb + F_SEASON_N + bin] = cnt + 1;
      }
      // Range novelty: a value clearly outside everything the stream has ever shown.
      const mn = d[b + S_MIN];
      const mx = d[b + S_MAX];
      if (cfg.rangeTolerance > 0 && n > cfg.warmupReadings && mx > mn) {
        // Tolerance: a fraction of the range, but never less than the noise (a noisy stream's tails keep
        // stretching its range by chance).
        const tol = Math.max(cfg.rangeTolerance * (mx - mn), cfg.rangeNoiseSigmas * errSd);
        const excess = Math.max(value - mx, mn - value);
        if (excess > tol) ev[3] = 1 + excess / tol;
      }
      // Stuck sensor: a run of identical values twice as long as the longest run the stream showed
      // recently (at least `stuckMinRun`) is reported once, at the moment it becomes that long.
      if (hasLast) {
        if (value === last) d[b + S_RUN]++;
        else {
          d[b + S_RUN_MAX] = Math.max(d[b + S_RUN_MAX], d[b + S_RUN]);
          d[b + S_RUN] = 0;
        }
        d[b + S_RUN_MAX] *= 1 - runAlpha;
        const run = d[b + S_RUN];
        if (run > 0 && n > cfg.warmupReadings && run === Math.max(cfg.stuckMinRun, Math.ceil(2 * d[b + S_RUN_MAX]))) {
          ev[4] = 3;
        }
      }
      const evidence = combineEvidence(ev);
      let lik = ratioLikelihood(evidence);
      if (n <= cfg.warmupReadings / 4) lik = 0;
      // One event, one alarm: within the refractory period after a peak only a higher likelihood
      // counts as news; the rest of the excursion is reported damped.
      if (n - d[b + S_LAST_ALERT] <= cfg.refractory.readings && evidence <= d[b + S_PEAK] * cfg.refractory.margin) lik *= 0.5;
      else if (evidence >= cfg.refractory.trigger) {
        d[b + S_LAST_ALERT] = n;
        d[b + S_PEAK] = evidence;
      }
      cols.likelihood[row] = lik;
      if (trace) trace(st.key, n, ev);
      // Error scale and value statistics (after scoring: a reading never explains itself away).
      if (hasLast) {
        const a = Math.max(1 / Math.max(n - 1, 1), normAlpha);
        const ae = Math.min(Math.abs(e), 10 * errSd + 1e-12); // clip so one outlier does not blow up the scale
        const errAbs = d[b + S_ERR_ABS];
        d[b + S_ERR_ABS] = errAbs === 0 ? Math.abs(e) : errAbs + a * (ae - errAbs);
      }
      const av = Math.max(1 / n, normAlpha);
      const dv = value - d[b + S_VAL_MEAN];
      d[b + S_VAL_MEAN] += av * dv;
      d[b + S_VAL_VAR] = (1 - av) * (d[b + S_VAL_VAR] + av * dv * dv);
      if (value < d[b + S_MIN]) d[b + S_MIN] = value;
      if (value > d[b + S_MAX]) d[b + S_MAX] = value;
      // Holt level/trend in event time for the forecast.
      const dtMs = pDt[k];
      if (n === 1) {
        d[b + S_LEVEL] = value;
        d[b + S_TREND] = 0;
      } else if (dtMs > 0) {
        const level = d[b + S_LEVEL];
        const prior = level + d[b + S_TREND] * dtMs;
        const lvl = prior + 0.3 * (value - prior);
        d[b + S_TREND] += 0.05 * ((lvl - level) / dtMs - d[b + S_TREND]);
        d[b + S_LEVEL] = lvl;
      } else d[b + S_LEVEL] += 0.3 * (value - d[b + S_LEVEL]);
      forecastAndLimit(st, cols, row);
      if (pr >= 0) addExample(xs, pr * F, Math.max(-10, Math.min(10, (value - last) / scale)));
      sinceTrain++;
      // Feed the machine model.
      let slot = st.mSlot;
      if (slot === -2) slot = st.mSlot = machineSlot(m, st.sensor);
      const md = m.d;
      const mb = m.b;
      if (slot >= 0) {
        md[mb + ML.latest + slot] = (value - d[b + S_VAL_MEAN]) / Math.max(Math.sqrt(d[b + S_VAL_VAR]), 1e-3 * scale, 1e-12);
        md[mb + ML.has + slot] = 1;
        md[mb + ML.surprise + slot] = Math.max(md[mb + ML.surprise + slot], u);
      }
      md[mb + M_BATCH_LIK] = Math.max(md[mb + M_BATCH_LIK], lik);
      md[mb + M_BATCH_TS] = Math.max(md[mb + M_BATCH_TS], ts);
      if (!m.touched) {
        m.touched = true;
        touched.push(m);
      }
    }

    // Machine scores: once per machine touched in this call, in the machine map's order. (After a
    // call that failed half-way its touched machines are scored with the next call, as they always were.)
    touched.sort(bySeq);
    for (const m of touched) if (m.alive) machineOut.push(scoreMachine(m));
    touched.length = 0;

    trainDue();
    return { sensor: cols, machine: machineOut, rejected };
  }

  function scoreMachine(m: MachineState): MachineScore {
    const cap = m.cap;
    const md = m.d;
    const mb = m.b;
    const latest = mb + ML.latest;
    const mean = mb + ML.mean;
    const surprise = mb + ML.surprise;
    const has = mb + ML.has;
    const cov = mb + ML.cov;
    const idx = mIdx;
    let k = 0;
    for (let i = 0; i < m.sensors.length; i++) if (md[has + i]) idx[k++] = i;
    const d = mD;
    const a = mA;
    for (let i = 0; i < k; i++) {
      d[i] = md[latest + idx[i]] - md[mean + idx[i]];
      for (let j = 0; j < k; j++) a[i * k + j] = md[cov + idx[i] * cap + idx[j]] + (i === j ? 0.05 : 0); // shrinkage
    }
    const solved = choleskySolveInto(a, d, k, mL, mY, mX);
    const parts = mParts;
    let d2 = 0;
    if (solved) {
      for (let i = 0; i < k; i++) {
        parts[i] = d[i] * mX[i];
        d2 += parts[i];
      }
    } else parts.fill(0, 0, k);
    d2 = Math.max(d2, 0);
    const u = k > 0 ? chiSquareSurprise(d2, k) : 0;
    const updates = md[mb + M_UPDATES];
    let lik = updates >= 16 ? surpriseToLikelihood(md, mb + M_HIST, u, cfg.minSurpriseSpread) : 0;
    lik = Math.max(lik, md[mb + M_BATCH_LIK]);
    // Contributions: half from the multivariate decomposition, half from each sensor's own surprise.
    const contributions: Record<string, number> = {};
    let sp = 0;
    let ss = 0;
    for (let i = 0; i < k; i++) {
      sp += Math.max(parts[i], 0);
      ss += md[surprise + idx[i]];
    }
    for (let i = 0; i < k; i++) {
      const c = (sp > 0 ? 0.5 * Math.max(parts[i], 0) / sp : 0.5 / k) + (ss > 0 ? 0.5 * md[surprise + idx[i]] / ss : 0.5 / k);
      contributions[m.sensors[idx[i]]] = c;
    }
    const score: MachineScore = {
      kind: 'machine',
      site: m.site,
      line: m.line,
      machine: m.machine,
      ts: md[mb + M_BATCH_TS],
      rawScore: Math.sqrt(d2),
      likelihood: lik,
      contributions,
      modelVersion: cfg.modelVersion,
      warmingUp: updates < cfg.warmupReadings,
    };
    // Learn (after scoring): EWMA mean and covariance over the sensors present.
    const n = updates + 1;
    md[mb + M_UPDATES] = n;
    const al = Math.max(1 / n, normAlpha);
    for (let q = 0; q < k; q++) {
      const i = idx[q];
      md[mean + i] += al * (md[latest + i] - md[mean + i]);
    }
    for (let p = 0; p < k; p++) {
      const i = idx[p];
      for (let q = 0; q < k; q++) {
        const j = idx[q];
        const c = (md[latest + i] - md[mean + i]) * (md[latest + j] - md[mean + j]);
        md[cov + i * cap + j] = (1 - al) * md[cov + i * cap + j] + al * c;
      }
    }
    updateHist(md, mb + M_HIST, u);
    m.touched = false;
    md[mb + M_BATCH_LIK] = 0;
    md[mb + M_BATCH_TS] = 0;
    md.fill(0, surprise, surprise + cap);
    return score;
  }

  function machineJson(m: MachineState): MachineStateJson {
    const md = m.d;
    const mb = m.b;
    return {
      key: m.key,
      site: m.site,
      line: m.line,
      machine: m.machine,
      sensors: [...m.sensors],
      latest: valuesAt(md, mb + ML.latest, MC),
      has: valuesAt(md, mb + ML.has, MC),
      mean: valuesAt(md, mb + ML.mean, MC),
      cov: valuesAt(md, mb + ML.cov, MC * MC),
      updates: md[mb + M_UPDATES],
      histN: md[mb + M_HIST + H_N],
      histMean: md[mb + M_HIST + H_MEAN],
      histVar: md[mb + M_HIST + H_VAR],
    };
  }

  function machineFromJson(j: MachineStateJson): MachineState {
    const m = newMachine(j.key, j.site, j.line, j.machine);
    const md = m.d;
    const mb = m.b;
    m.sensors = [...j.sensors];
    md.set(j.latest.slice(0, MC), mb + ML.latest);
    // presence flags were a Uint8Array: the same conversion
    for (let i = 0; i < Math.min(MC, j.has.length); i++) md[mb + ML.has + i] = j.has[i] & 255;
    md.set(j.mean.slice(0, MC), mb + ML.mean);
    md.set(j.cov.slice(0, MC * MC), mb + ML.cov);
    md[mb + M_UPDATES] = j.updates;
    md[mb + M_HIST + H_N] = j.histN;
    md[mb + M_HIST + H_MEAN] = j.histMean;
    md[mb + M_HIST + H_VAR] = j.histVar;
    return m;
  }

  // ------------------------------------------------------------------ checkpoint form of a stream

  /** `n` values of a typed array from `off` as a plain array (no view object per field). */
  function valuesAt(t: Float64Array | Float32Array, off: number, n: number): number[] {
    const a = new Array<number>(n);
    for (let i = 0; i < n; i++) a[i] = t[off + i];
    return a;
  }

  function histJson(d: Float64Array, h: number): HistJson {
    return {
      histN: d[h + H_N],
      histMean: d[h + H_MEAN],
      histVar: d[h + H_VAR],
      recMax: d[h + H_REC_MAX],
      recBlocks: valuesAt(d, h + H_BLOCKS, REC_BLOCKS),
      recPos: d[h + H_REC_POS],
      recFill: d[h + H_REC_FILL],
      recLong: d[h + H_REC_LONG],
    };
  }

  /** The stream as checkpoint JSON: the same keys, in the same order, as ever. */
  function streamJson(st: SensorState): SensorStateJson {
    const d = st.d;
    const b = st.b;
    const f = st.f;
    const fb = st.fb;
    const rn = d[b + S_RECENT_N];
    const rp = d[b + S_RECENT_POS];
    const recentTs = new Array<number>(rn);
    for (let j = 0; j < rn; j++) recentTs[j] = d[b + S_RECENT + ((rp - rn + j + RECENT_TS) % RECENT_TS)];
    const count = d[b + S_NOV_COUNT];
    const main = histJson(d, b + S_HIST);
    const json = {
      key: st.key,
      site: st.site,
      line: st.line,
      machine: st.machine,
      sensor: st.sensor,
      n: d[b + S_N],
      lastTs: d[b + S_LAST_TS],
      recentTs,
      dt: d[b + S_DT],
      ringLen: d[b + S_RING_LEN],
      ringPos: d[b + S_RING_POS],
      valMean: d[b + S_VAL_MEAN],
      valVar: d[b + S_VAL_VAR],
      stepVar: d[b + S_STEP_VAR],
      min: d[b + S_MIN],
      max: d[b + S_MAX],
      errAbs: d[b + S_ERR_ABS],
      shortLen: d[b + S_SHORT_LEN],
      shortPos: d[b + S_SHORT_POS],
      shortSum: d[b + S_SHORT_SUM],
      histN: main.histN,
      histMean: main.histMean,
      histVar: main.histVar,
      level: d[b + S_LEVEL],
      trend: d[b + S_TREND],
      lastAlert: d[b + S_LAST_ALERT],
      peak: d[b + S_PEAK],
      run: d[b + S_RUN],
      runMax: d[b + S_RUN_MAX],
      lastSeen: d[b + S_LAST_SEEN],
      nov: histJson(d, b + S_NOV_HIST),
      seasonZ: d[b + S_SEASON_Z],
      season: histJson(d, b + S_SEASON_HIST),
      recMax: main.recMax,
      recBlocks: main.recBlocks,
      recPos: main.recPos,
      recFill: main.recFill,
      recLong: main.recLong,
      patLen: d[b + S_PAT_LEN],
      patPos: d[b + S_PAT_POS],
      strideSum: d[b + S_STRIDE_SUM],
      strideN: d[b + S_STRIDE_N],
      ring: valuesAt(d, b + S_RING, W),
      short: valuesAt(d, b + S_SHORT, K),
      pat: valuesAt(d, b + S_PAT, ND),
      seasonMean: valuesAt(f, fb + F_SEASON_MEAN, SB),
      seasonDev: valuesAt(f, fb + F_SEASON_DEV, SB),
      seasonN: valuesAt(f, fb + F_SEASON_N, SB),
      novelty: {
        protos: valuesAt(f, fb + F_PROTOS, count * ND),
        used: valuesAt(d, b + S_NOV_USED, count),
        count,
        clock: d[b + S_NOV_CLOCK],
      },
    };
    return json as SensorStateJson;
  }

  /** A stream from checkpoint JSON (a field a checkpoint lacks keeps its initial value). */
  function streamFromJson(j: SensorStateJson): SensorState {
    const st = newState(j.key, j.site, j.line, j.machine, j.sensor);
    const d = st.d;
    const b = st.b;
    const f = st.f;
    const fb = st.fb;
    const put = (at: number, v: number | undefined) => {
      if (v !== undefined) d[b + at] = v;
    };
    put(S_N, j.n);
    put(S_LAST_TS, j.lastTs);
    put(S_DT, j.dt);
    put(S_RING_LEN, j.ringLen);
    put(S_RING_POS, j.ringPos);
    put(S_VAL_MEAN, j.valMean);
    put(S_VAL_VAR, j.valVar);
    put(S_STEP_VAR, j.stepVar);
    put(S_MIN, j.min);
    put(S_MAX, j.max);
    put(S_ERR_ABS, j.errAbs);
    put(S_SHORT_LEN, j.shortLen);
    put(S_SHORT_POS, j.shortPos);
    put(S_SHORT_SUM, j.shortSum);
    put(S_LEVEL, j.level);
    put(S_TREND, j.trend);
    put(S_LAST_ALERT, j.lastAlert);
    put(S_PEAK, j.peak);
    put(S_RUN, j.run);
    put(S_RUN_MAX, j.runMax);
    put(S_LAST_SEEN, j.lastSeen);
    put(S_SEASON_Z, j.seasonZ);
    put(S_PAT_LEN, j.patLen);
    put(S_PAT_POS, j.patPos);
    put(S_STRIDE_SUM, j.strideSum);
    put(S_STRIDE_N, j.strideN);
    const hist = (h: number, x: HistJson) => {
      put(h + H_N, x.histN);
      put(h + H_MEAN, x.histMean);
      put(h + H_VAR, x.histVar);
      put(h + H_REC_MAX, x.recMax);
      put(h + H_REC_POS, x.recPos);
      put(h + H_REC_FILL, x.recFill);
      put(h + H_REC_LONG, x.recLong);
      d.set(x.recBlocks.slice(0, REC_BLOCKS), b + h + H_BLOCKS);
    };
    hist(S_HIST, j);
    hist(S_NOV_HIST, j.nov);
    hist(S_SEASON_HIST, j.season);
    const recent = j.recentTs.slice(-RECENT_TS);
    for (const t of recent) recentPush(d, b, t);
    d.set(j.ring.slice(0, W), b + S_RING);
    d.set(j.short.slice(0, K), b + S_SHORT);
    d.set(j.pat.slice(0, ND), b + S_PAT);
    f.set(j.seasonMean.slice(0, SB), fb + F_SEASON_MEAN);
    f.set(j.seasonDev.slice(0, SB), fb + F_SEASON_DEV);
    f.set(j.seasonN.slice(0, SB), fb + F_SEASON_N);
    const count = Math.min(j.novelty.count, NP);
    d[b + S_NOV_COUNT] = count;
    d[b + S_NOV_CLOCK] = j.novelty.clock;
    f.set(j.novelty.protos.slice(0, count * ND), fb + F_PROTOS);
    d.set(j.novelty.used.slice(0, count), b + S_NOV_USED);
    return st;
  }

  function captureSnapshot(): { complete(): Promise<DetectorSnapshot> } {
    const streamOrder = [...streams.values()];
    const machineOrder = [...machines.values()];
    const copy: SnapshotCopy = { streams: new Set(streamOrder), machines: new Set(machineOrder), streamJson: new Map(), machineJson: new Map() };
    copies.push(copy);
    const head = {
      version: SNAPSHOT_VERSION,
      createdAt: now(),
      modelVersion: cfg.modelVersion,
      config: cfg,
      rngState: rng.state,
      sinceTrain,
      trainings,
      replay: { seen: replaySeen, count: replayCount, x: toArray(replayX, replayCount * F), y: toArray(replayY, replayCount) },
      model: model.state(),
    };
    const limitsThen = { ...limits };
    let done: Promise<DetectorSnapshot> | undefined;
    const complete = async (): Promise<DetectorSnapshot> => {
      try {
        let since = performance.now();
        const pause = async (i: number) => {
          if ((i & 127) !== 127 || performance.now() - since < SNAPSHOT_SLICE_MS) return;
          await new Promise((r) => setImmediate(r));
          since = performance.now();
        };
        const streamsJson: SensorStateJson[] = new Array(streamOrder.length);
        for (let i = 0; i < streamOrder.length; i++) {
          const st = streamOrder[i];
          streamsJson[i] = copy.streams.delete(st) ? streamJson(st) : copy.streamJson.get(st)!;
          await pause(i);
        }
        const machinesJson: MachineStateJson[] = new Array(machineOrder.length);
        for (let i = 0; i < machineOrder.length; i++) {
          const m = machineOrder[i];
          machinesJson[i] = copy.machines.delete(m) ? machineJson(m) : copy.machineJson.get(m)!;
          await pause(i);
        }
        return { ...head, streams: streamsJson, machines: machinesJson, limits: limitsThen };
      } finally {
        copies.splice(copies.indexOf(copy), 1);
      }
    };
    return { complete: () => (done ??= complete()) };
  }

  /** Drops every stream and machine (their states stop being valid in any cache). */
  function clearState(): void {
    for (const st of streams.values()) st.alive = false;
    for (const m of machines.values()) m.alive = false;
    streams.clear();
    machines.clear();
    keyBytes = 0;
    machineSensorBytes = 0;
    // Old slots may still be read by a snapshot being completed: a fresh pool, never a reused one.
    pool = newPool();
    machinePool = newMachinePool();
    byEntryId.clear();
  }

  return {
    modelVersion: cfg.modelVersion,
    scoreBatch,
    scoreColumns,
    setLimits(l) {
      limits = { ...limits, ...l };
      limitsVersion++;
    },
    snapshot(): Promise<DetectorSnapshot> {
      return captureSnapshot().complete();
    },
    captureSnapshot,
    async restore(s: DetectorSnapshot): Promise<void> {
      if (s.version !== SNAPSHOT_VERSION) throw new Error(`unsupported detector snapshot version ${s.version}`);
      const c = s.config;
      if (
        c.window !== W ||
        c.shortWindow !== K ||
        c.maxSensorsPerMachine !== cfg.maxSensorsPerMachine ||
        c.novelty?.dim !== cfg.novelty.dim ||
        c.novelty?.prototypes !== cfg.novelty.prototypes ||
        c.season?.bins !== cfg.season.bins ||
        c.model?.hidden !== cfg.model.hidden
      ) {
        throw new Error('snapshot was taken with different state sizes (window, shortWindow, maxSensorsPerMachine, novelty.dim/prototypes, season.bins, model.hidden)');
      }
      model.load(s.model);
      rng.state = s.rngState;
      sinceTrain = s.sinceTrain;
      trainings = s.trainings;
      replayX = new Float32Array(R * F);
      replayY = new Float32Array(R);
      replayCount = Math.min(s.replay.count, R);
      replaySeen = s.replay.seen;
      replayX.set(s.replay.x.slice(0, replayCount * F));
      replayY.set(s.replay.y.slice(0, replayCount));
      clearState();
      // Machines first: a stream takes its machine key string from its machine.
      for (const j of s.machines) addMachine(machineFromJson(j));
      for (const j of s.streams) {
        const st = streamFromJson(j);
        streams.set(j.key, st);
        keyBytes += streamKeyBytes(st);
      }
      limits = { ...s.limits };
      limitsVersion++;
    },
    streamCount: () => streams.size,
    stateBytes() {
      // The pooled slots (all chunks held, free slots too), each stream's object and key, the machines.
      return pool.bytes() + streams.size * STREAM_OBJECT_BYTES + keyBytes + machinePool.bytes() + machines.size * MACHINE_OBJECT_BYTES + machineSensorBytes;
    },
    dispose() {
      model.dispose();
      clearState();
    },
  };
}
