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
 */
import type { Logger } from '../../../common/logger.ts';
import type { MachineScore, Reading, SensorScore } from '../../../common/messages.ts';
import { initTf } from '../tf.ts';
import { DetectorConfig } from './config.ts';
import { Predictor, type PredictorState } from './model.ts';
import { NoveltyMemory, type NoveltyJson } from './novelty.ts';
import { Rng, choleskySolve, chiSquareSurprise, normalTail, toArray, twoSidedSurprise } from './stats.ts';

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
  nov: Hist;
  seasonMean: number[];
  seasonDev: number[];
  seasonN: number[];
  seasonZ: number;
  season: Hist;
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

interface Hist {
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

function newHist(): Hist {
  return { histN: 0, histMean: 0, histVar: 0, recMax: 0, recBlocks: new Array<number>(REC_BLOCKS).fill(0), recPos: 0, recFill: 0, recLong: 0 };
}
/** Surprise is in decimal digits of improbability; beyond this it carries no more information. */
const MAX_SURPRISE = 300;

class SensorState {
  n = 0;
  lastTs = -1;
  recentTs: number[] = [];
  /** EWMA of the event-time step (ms). */
  dt = 0;
  ring: Float64Array;
  ringLen = 0;
  ringPos = 0;
  valMean = 0;
  valVar = 0;
  /** EWMA of squared first differences: the stream's typical step, the unit the predictor works in. */
  stepVar = 0;
  min = Infinity;
  max = -Infinity;
  /** EWMA of |prediction error|. */
  errAbs = 0;
  short: Float64Array;
  shortLen = 0;
  shortPos = 0;
  shortSum = 0;
  /** Distribution of the short-term mean surprise. */
  histN = 0;
  histMean = 0;
  histVar = 0;
  level = 0;
  trend = 0;
  lastAlert = -1e12;
  peak = 0;
  readonly machineKey: string;
  /** Current run of identical values, and the longest recent run (decaying). */
  run = 0;
  runMax = 0;
  lastSeen = 0;
  /** 1 when scored since it was last placed at the tail of the eviction order: a second chance (not checkpointed). */
  touchSeq = 0;
  novelty: NoveltyMemory;
  nov: Hist = newHist();
  /** Seasonal profile: per phase bin of the period, EWMA of the value and of its absolute deviation. */
  seasonMean: Float32Array;
  seasonDev: Float32Array;
  seasonN: Float32Array;
  /** EWMA of the signed seasonal z-score: a sustained departure from the usual daily shape. */
  seasonZ = 0;
  season: Hist = newHist();
  recMax = 0;
  recBlocks: number[] = new Array<number>(REC_BLOCKS).fill(0);
  recPos = 0;
  recFill = 0;
  recLong = 0;
  /** Ring of stride-averaged values the pattern windows are cut from. */
  pat: Float64Array;
  patLen = 0;
  patPos = 0;
  strideSum = 0;
  strideN = 0;

  constructor(
    readonly key: string,
    readonly site: string,
    readonly line: string,
    readonly machine: string,
    readonly sensor: string,
    window: number,
    shortWindow: number,
    nov: { dim: number; prototypes: number },
    seasonBins: number,
  ) {
    this.machineKey = `${site}/${line}/${machine}`;
    // float32: the profile is a coarse expectation, and it is most of a stream's memory
    this.seasonMean = new Float32Array(seasonBins);
    this.seasonDev = new Float32Array(seasonBins);
    this.seasonN = new Float32Array(seasonBins);
    this.ring = new Float64Array(window);
    this.short = new Float64Array(shortWindow);
    this.novelty = new NoveltyMemory(nov.dim, nov.prototypes);
    this.pat = new Float64Array(nov.dim);
  }

  lastValue(): number {
    return this.ring[(this.ringPos - 1 + this.ring.length) % this.ring.length];
  }

  /** Scale of one step, floored so that a flat-lined stream still has a finite, tiny unit. */
  stepScale(): number {
    const range = this.max > this.min ? this.max - this.min : 0;
    return Math.max(Math.sqrt(this.stepVar), 1e-3 * range, 1e-6 * Math.abs(this.valMean), 1e-9);
  }

  bytes(): number {
    // typed arrays + the fixed numeric fields and strings (rough, for memory bounds)
    return this.ring.byteLength + this.short.byteLength + this.pat.byteLength + this.novelty.bytes() + 3 * this.seasonMean.byteLength + 8 * (REC_BLOCKS + 4) * 3 + 8 * 32 + 8 * RECENT_TS + 2 * this.key.length * 2 + 64;
  }

  toJson(): SensorStateJson {
    const { ring, short, pat, novelty, seasonMean, seasonDev, seasonN, machineKey: _mk, touchSeq: _ts, ...rest } = this;
    return {
      ...rest,
      ring: toArray(ring),
      short: toArray(short),
      pat: toArray(pat),
      seasonMean: toArray(seasonMean),
      seasonDev: toArray(seasonDev),
      seasonN: toArray(seasonN),
      season: { ...this.season, recBlocks: [...this.season.recBlocks] },
      novelty: novelty.toJson(),
      nov: { ...this.nov, recBlocks: [...this.nov.recBlocks] },
      recBlocks: [...this.recBlocks],
      recentTs: [...this.recentTs],
    } as SensorStateJson;
  }

  static fromJson(j: SensorStateJson, window: number, shortWindow: number, nov: { dim: number; prototypes: number }, seasonBins: number): SensorState {
    const s = new SensorState(j.key, j.site, j.line, j.machine, j.sensor, window, shortWindow, nov, seasonBins);
    const { ring, short, pat, novelty, seasonMean, seasonDev, seasonN, key: _k, site: _s, line: _l, machine: _m, sensor: _se, ...rest } = j;
    Object.assign(s, rest);
    s.ring.set(ring);
    s.short.set(short);
    s.pat.set(pat);
    s.seasonMean.set(seasonMean);
    s.seasonDev.set(seasonDev);
    s.seasonN.set(seasonN);
    s.season = { ...j.season, recBlocks: [...j.season.recBlocks] };
    s.novelty = NoveltyMemory.fromJson(novelty, nov.dim, nov.prototypes);
    s.nov = { ...j.nov, recBlocks: [...j.nov.recBlocks] };
    s.recBlocks = [...j.recBlocks];
    s.recentTs = [...j.recentTs];
    return s;
  }
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

class MachineState {
  sensors: string[] = [];
  latest: Float64Array;
  has: Uint8Array;
  mean: Float64Array;
  cov: Float64Array;
  updates = 0;
  histN = 0;
  histMean = 0;
  histVar = 0;
  /** Sensor likelihood/surprise seen in the current batch (not checkpointed: per-call scratch). */
  batchSurprise: Float64Array;
  batchLikelihood = 0;
  batchTs = 0;
  touched = false;

  constructor(
    readonly key: string,
    readonly site: string,
    readonly line: string,
    readonly machine: string,
    readonly cap: number,
  ) {
    this.latest = new Float64Array(cap);
    this.has = new Uint8Array(cap);
    this.mean = new Float64Array(cap);
    this.cov = new Float64Array(cap * cap);
    this.batchSurprise = new Float64Array(cap);
  }

  slot(sensor: string): number {
    let i = this.sensors.indexOf(sensor);
    if (i < 0 && this.sensors.length < this.cap) {
      i = this.sensors.length;
      this.sensors.push(sensor);
      this.cov[i * this.cap + i] = 1;
    }
    return i;
  }

  bytes(): number {
    return this.latest.byteLength * 3 + this.has.byteLength + this.cov.byteLength + 64 * this.sensors.length + 128;
  }

  toJson(): MachineStateJson {
    return {
      key: this.key,
      site: this.site,
      line: this.line,
      machine: this.machine,
      sensors: [...this.sensors],
      latest: toArray(this.latest),
      has: toArray(this.has),
      mean: toArray(this.mean),
      cov: toArray(this.cov),
      updates: this.updates,
      histN: this.histN,
      histMean: this.histMean,
      histVar: this.histVar,
    };
  }

  static fromJson(j: MachineStateJson, cap: number): MachineState {
    const m = new MachineState(j.key, j.site, j.line, j.machine, cap);
    m.sensors = [...j.sensors];
    m.latest.set(j.latest);
    m.has.set(j.has);
    m.mean.set(j.mean);
    m.cov.set(j.cov);
    m.updates = j.updates;
    m.histN = j.histN;
    m.histMean = j.histMean;
    m.histVar = j.histVar;
    return m;
  }
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

/** Per-reading record carried between the passes of one scoreBatch call. */
interface Pending {
  reading: Reading;
  st: SensorState;
  /** Late or bad-quality: scored against the current state, no state change. */
  late: boolean;
  /** Row in the inference batch, or -1 when the window is not full yet (persistence forecast). */
  row: number;
  last: number;
  scale: number;
  hasLast: boolean;
  dtMs: number;
  /** The stream's reading count including this reading (st.n runs ahead within a batch). */
  n: number;
}

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
  const rng = new Rng(cfg.model.seed);
  const model = new Predictor(F, cfg.model.hidden, cfg.model.learningRate, rng);
  const streams = new Map<string, SensorState>();
  const machines = new Map<string, MachineState>();
  /** Snapshots being completed (copy-on-write; usually none). */
  const copies: SnapshotCopy[] = [];
  function keepStream(st: SensorState): void {
    for (const c of copies) if (c.streams.delete(st)) c.streamJson.set(st, st.toJson());
  }
  function keepMachine(m: MachineState): void {
    for (const c of copies) if (c.machines.delete(m)) c.machineJson.set(m, m.toJson());
  }
  let limits: Record<string, { upper?: number; lower?: number }> = {};
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
  const patScratch = new Float64Array(cfg.novelty.dim);
  const histAlpha = 1 / cfg.historyWindow;
  const trace = deps.trace;
  // Runs of identical values are remembered long: count data (0, 0, 0…) has long runs weeks apart.
  const runAlpha = 1 / cfg.longHistoryWindow;
  const ev = new Float64Array(EVIDENCE_KINDS.length);

  function touchStream(r: Reading, t: number): SensorState {
    const key = `${r.site}/${r.line}/${r.machine}/${r.sensor}`;
    let st = streams.get(key);
    if (st && copies.length > 0) keepStream(st);
    if (st) st.touchSeq = 1;
    else {
      st = new SensorState(key, r.site, r.line, r.machine, r.sensor, W, K, cfg.novelty, cfg.season.bins);
      while (streams.size >= cfg.maxStreams) evictOldest();
      streams.set(key, st);
    }
    st.lastSeen = t;
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
    const mk = st.machineKey;
    const m = machines.get(mk);
    if (m) {
      if (copies.length > 0) keepMachine(m);
      const i = m.sensors.indexOf(st.sensor);
      if (i >= 0) m.has[i] = 0;
      if (!m.has.some((h) => h === 1)) machines.delete(mk);
    }
  }

  function sweepIdle(): void {
    if (cfg.idleEvictMs <= 0) return;
    const t = now();
    if (t - lastIdleSweep < cfg.idleEvictMs / 4) return;
    lastIdleSweep = t;
    // Map order is not recency order (see evictOldest): look at every stream.
    const idle: string[] = [];
    for (const [key, st] of streams) if (t - st.lastSeen > cfg.idleEvictMs) idle.push(key);
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

  function surpriseToLikelihood(st: { histN: number; histMean: number; histVar: number }, u: number, minSpread = cfg.minSurpriseSpread): number {
    if (st.histN < 8) return 0;
    // Floor: on a very regular stream the surprise barely varies, and a tiny spread would turn the
    // first wobble into an extreme z (and, across streams, outrank real anomalies elsewhere).
    const sd = Math.max(Math.sqrt(st.histVar), minSpread);
    return likelihoodOf((u - st.histMean) / sd);
  }

  /**
   * Record calibration: a score as large as the largest of the stream's recent history (a maximum
   * decaying over `historyWindow` readings) is a 3-sigma event; twice as large is 6 sigma. Judges each
   * stream by its own rare events whatever the shape of its score distribution.
   */
  function recordLikelihood(h: Hist, s: number, floor: number): number {
    return ratioLikelihood(recordRatio(h, s, floor));
  }

  /** A score divided by the stream's record for its kind (0 while the record is not established). */
  function recordRatio(h: Hist, s: number, floor: number): number {
    if (h.histN < 8) return 0;
    // The bar is the recent record, or a share of the long-memory one: a heavy-tailed stream whose
    // big bursts are weeks apart should not alarm at every burst half their size.
    return s / Math.max(h.recMax, cfg.longRecordShare * h.recLong, floor);
  }

  /** The Gaussian-fit z of a score as the record ratio with the same likelihood (z = 3r³). */
  function gaussianRatio(st: { histN: number; histMean: number; histVar: number }, u: number, minSpread = cfg.minSurpriseSpread): number {
    if (st.histN < 8) return 0;
    const z = (u - st.histMean) / Math.max(Math.sqrt(st.histVar), minSpread);
    return z > 0 ? Math.cbrt(z / 3) : 0;
  }

  const weights = EVIDENCE_KINDS.map((k) => cfg.evidenceWeights[k]);
  /** The reading's evidence: the strongest of the kinds' weighted ratios. */
  function combineEvidence(r: Float64Array): number {
    let m = 0;
    for (let k = 0; k < r.length; k++) if (weights[k] * r[k] > m) m = weights[k] * r[k];
    return m;
  }

  function updateRecord(h: Hist, s: number, n: number): void {
    // The first readings only seed the scales; their transients must not set the bar for later.
    if (n <= cfg.warmupReadings) return;
    const block = Math.max(1, Math.round(cfg.historyWindow / REC_BLOCKS));
    if (h.recFill >= block) {
      h.recPos = (h.recPos + 1) % REC_BLOCKS;
      h.recBlocks[h.recPos] = 0;
      h.recFill = 0;
      h.recMax = Math.max(...h.recBlocks);
    }
    h.recFill++;
    if (s > h.recBlocks[h.recPos]) h.recBlocks[h.recPos] = s;
    if (s > h.recMax) h.recMax = s;
    h.recLong = Math.max(h.recLong * (1 - 1 / cfg.longHistoryWindow), s);
  }

  function updateHist(st: { histN: number; histMean: number; histVar: number }, u: number): void {
    // An outlier enters the history clipped, so one burst does not mute the stream for the whole window.
    if (st.histN >= 8) u = Math.min(u, st.histMean + 5 * Math.sqrt(st.histVar) + 0.1);
    st.histN++;
    const a = Math.max(1 / st.histN, histAlpha);
    const d = u - st.histMean;
    st.histMean += a * d;
    st.histVar = (1 - a) * (st.histVar + a * d * d);
  }

  function forecastAndLimit(st: SensorState, score: SensorScore): void {
    const h = cfg.forecastHorizonMs;
    const sd = 1.2533 * st.errAbs;
    const steps = st.dt > 0 ? h / st.dt : 1;
    const value = st.level + st.trend * h;
    const spread = cfg.bandSigmas * sd * Math.sqrt(1 + 0.1 * steps);
    score.forecast = { horizonMs: h, value, lower: value - spread, upper: value + spread };
    const lim = limits[st.key];
    if (!lim) return;
    let ttl: number | null = null;
    if (lim.upper !== undefined) {
      if (st.level >= lim.upper) ttl = 0;
      else if (st.trend > 0) ttl = (lim.upper - st.level) / st.trend;
    }
    if (lim.lower !== undefined) {
      let t2: number | null = null;
      if (st.level <= lim.lower) t2 = 0;
      else if (st.trend < 0) t2 = (lim.lower - st.level) / st.trend;
      if (t2 !== null && (ttl === null || t2 < ttl)) ttl = t2;
    }
    score.timeToLimitMs = ttl !== null && ttl <= cfg.limitHorizonMs ? Math.round(ttl) : null;
  }

  async function scoreBatch(readings: Reading[]): Promise<ScoreOutput> {
    sweepIdle();
    const batchNow = now();
    const out: ScoreOutput = { sensor: [], machine: [], rejected: [] };
    const pending: Pending[] = [];
    const xs = new Float32Array(readings.length * F);
    let rows = 0;

    // Pass 1: event-time bookkeeping and window capture, in order (windows of later readings of the
    // same stream include earlier readings of this batch).
    for (const r of readings) {
      if (!Number.isFinite(r.value) || !Number.isFinite(r.ts)) {
        out.rejected.push({ reading: r, reason: 'value and ts must be finite numbers' });
        continue;
      }
      const st = touchStream(r, batchNow);
      if (st.n > 0 && r.ts <= st.lastTs) {
        if (st.recentTs.includes(r.ts)) {
          out.rejected.push({ reading: r, reason: 'duplicate: a reading with this timestamp was already scored' });
          continue;
        }
        if (st.lastTs - r.ts > cfg.maxLatenessMs) {
          out.rejected.push({ reading: r, reason: `too late: ${st.lastTs - r.ts} ms behind the stream (max ${cfg.maxLatenessMs})` });
          continue;
        }
        pending.push({ reading: r, st, late: true, row: -1, last: st.level, scale: st.stepScale(), hasLast: true, dtMs: 0, n: st.n });
        st.recentTs.push(r.ts);
        if (st.recentTs.length > RECENT_TS) st.recentTs.shift();
        continue;
      }
      if (r.quality === 'bad') {
        // The device itself says the value is bad: score it, but do not learn from it.
        pending.push({ reading: r, st, late: true, row: -1, last: st.n > 0 ? st.level : r.value, scale: st.stepScale(), hasLast: st.n > 0, dtMs: 0, n: st.n });
        continue;
      }
      const dtMs = st.n > 0 ? r.ts - st.lastTs : 0;
      if (st.n > 0 && st.dt > 0 && dtMs > cfg.gapFactor * st.dt) st.ringLen = 0; // gap: old window says nothing about now
      const scale = st.stepScale();
      const hasLast = st.ringLen > 0;
      const last = hasLast ? st.lastValue() : r.value;
      let row = -1;
      if (st.ringLen >= W) {
        row = rows++;
        const off = row * F;
        for (let j = 0; j < W; j++) {
          const v = st.ring[(st.ringPos + j) % W];
          xs[off + j] = Math.max(-10, Math.min(10, (v - last) / scale));
        }
        const phase = (((r.ts % cfg.season.periodMs) + cfg.season.periodMs) % cfg.season.periodMs) / cfg.season.periodMs;
        const bin = Math.floor(phase * cfg.season.bins) % cfg.season.bins;
        xs[off + W] = cfg.season.enabled && st.seasonN[bin] >= cfg.season.minSamples ? Math.max(-10, Math.min(10, (st.seasonMean[bin] - last) / scale)) : 0;
        xs[off + W + 1] = Math.sin(2 * Math.PI * phase);
        xs[off + W + 2] = Math.cos(2 * Math.PI * phase);
      }
      pending.push({ reading: r, st, late: false, row, last, scale, hasLast, dtMs, n: st.n + 1 });
      // Update what later windows in this batch depend on.
      if (hasLast) {
        const d = r.value - last;
        const a = Math.max(1 / st.n, normAlpha);
        st.stepVar = st.n <= 1 ? d * d : (1 - a) * st.stepVar + a * d * d;
      }
      st.ring[st.ringPos] = r.value;
      st.ringPos = (st.ringPos + 1) % W;
      st.ringLen = Math.min(W, st.ringLen + 1);
      if (st.n > 0 && dtMs > 0) st.dt = st.dt === 0 ? dtMs : st.dt + 0.05 * (dtMs - st.dt);
      st.lastTs = r.ts;
      st.recentTs.push(r.ts);
      if (st.recentTs.length > RECENT_TS) st.recentTs.shift();
      st.n++;
    }

    // Pass 2: one tensor call for every full window in the batch, whatever stream it belongs to.
    const preds = model.predict(xs.subarray(0, rows * F), rows);

    // Pass 3: errors, likelihoods, forecasts, in reading order.
    for (const p of pending) {
      const { st, reading: r, n } = p;
      const mk = st.machineKey;
      let m = machines.get(mk);
      if (m && copies.length > 0) keepMachine(m);
      if (!m) {
        m = new MachineState(mk, r.site, r.line, r.machine, cfg.maxSensorsPerMachine);
        machines.set(mk, m);
      }
      const score: SensorScore = {
        kind: 'sensor',
        site: r.site,
        line: r.line,
        machine: r.machine,
        sensor: r.sensor,
        ts: r.ts,
        value: r.value,
        predicted: r.value,
        lower: r.value,
        upper: r.value,
        rawScore: 0,
        likelihood: 0,
        modelVersion: cfg.modelVersion,
        warmingUp: n < cfg.warmupReadings,
      };
      const errSd = Math.max(1.2533 * st.errAbs, 1e-3 * p.scale, 1e-12);
      if (p.late) {
        // Late or bad-quality: scored against the current state, which it must not change.
        const e = r.value - p.last;
        const u = p.hasLast ? Math.min(twoSidedSurprise(e / errSd), MAX_SURPRISE) : 0;
        score.predicted = p.last;
        score.lower = p.last - cfg.bandSigmas * errSd;
        score.upper = p.last + cfg.bandSigmas * errSd;
        score.rawScore = u;
        score.likelihood = cfg.calibration === 'record' ? recordLikelihood(st, u, cfg.minSurpriseSpread) : surpriseToLikelihood(st, u);
        if (trace) {
          ev.fill(0);
          trace(st.key, n, ev);
        }
        out.sensor.push(score);
        continue;
      }
      const predicted = p.row >= 0 ? p.last + p.scale * preds[p.row] : p.last;
      const e = r.value - predicted;
      // The first few errors only seed the error scale; capped so one absurd value cannot wreck the statistics.
      const u = p.hasLast && n > 3 ? Math.min(twoSidedSurprise(e / errSd), MAX_SURPRISE) : 0;
      score.predicted = predicted;
      score.lower = predicted - cfg.bandSigmas * errSd;
      score.upper = predicted + cfg.bandSigmas * errSd;
      score.rawScore = u;
      // Short-term mean surprise against its own history.
      if (st.shortLen === K) st.shortSum -= st.short[st.shortPos];
      else st.shortLen++;
      st.short[st.shortPos] = u;
      st.shortSum += u;
      st.shortPos = (st.shortPos + 1) % K;
      const shortMean = st.shortSum / st.shortLen;
      ev.fill(0);
      ev[0] = cfg.calibration === 'record' ? recordRatio(st, shortMean, cfg.minSurpriseSpread) : gaussianRatio(st, shortMean);
      updateHist(st, shortMean);
      updateRecord(st, shortMean, n);
      // Pattern novelty of the latest stride-averaged window.
      st.strideSum += r.value;
      st.strideN++;
      if (st.strideN >= cfg.novelty.stride) {
        const D = cfg.novelty.dim;
        st.pat[st.patPos] = st.strideSum / st.strideN;
        st.patPos = (st.patPos + 1) % D;
        st.patLen = Math.min(D, st.patLen + 1);
        st.strideSum = 0;
        st.strideN = 0;
        if (st.patLen === D) {
          const w = patScratch;
          for (let j = 0; j < D; j++) w[j] = st.pat[(st.patPos + j) % D];
          const lo = Math.min(st.min, r.value);
          const hi = Math.max(st.max, r.value);
          const range = Math.max(hi - lo, 1e-9 * Math.abs(hi), 1e-12);
          const d = st.novelty.scoreAndLearn(w, range, cfg.novelty.vigilance, true);
          if (d >= 0) {
            ev[1] = cfg.calibration === 'record' ? recordRatio(st.nov, d, cfg.novelty.minSpread) : gaussianRatio(st.nov, d, cfg.novelty.minSpread);
            updateHist(st.nov, d);
            updateRecord(st.nov, d, n);
          }
        }
      }
      // Seasonal profile: how far the value is from what this phase of the period usually shows.
      if (cfg.season.enabled) {
        const S = cfg.season.bins;
        const bin = Math.floor((((r.ts % cfg.season.periodMs) + cfg.season.periodMs) % cfg.season.periodMs) / (cfg.season.periodMs / S)) % S;
        const cnt = st.seasonN[bin];
        if (cnt >= cfg.season.minSamples) {
          const dev = Math.max(1.2533 * st.seasonDev[bin], errSd, 1e-12);
          const zs = Math.max(-10, Math.min(10, (r.value - st.seasonMean[bin]) / dev));
          st.seasonZ += cfg.season.smoothing * (zs - st.seasonZ);
          // an EWMA of N(0,1) has variance a/(2-a): rescale so the sustained departure is in sigmas
          const zbar = st.seasonZ / Math.sqrt(cfg.season.smoothing / (2 - cfg.season.smoothing));
          const us = twoSidedSurprise(zbar);
          if (n > cfg.warmupReadings) {
            ev[2] = recordRatio(st.season, us, cfg.minSurpriseSpread);
            updateRecord(st.season, us, n);
          }
          st.season.histN++;
        }
        const a = Math.max(1 / (cnt + 1), cfg.season.learningRate);
        if (cnt === 0) st.seasonMean[bin] = r.value;
        const d = r.value - st.seasonMean[bin];
        st.seasonMean[bin] += a * d;
        st.seasonDev[bin] += a * (Math.abs(d) - st.seasonDev[bin]);
        st.seasonN[bin] = cnt + 1;
      }
      // Range novelty: a value clearly outside everything the stream has ever shown.
      if (cfg.rangeTolerance > 0 && n > cfg.warmupReadings && st.max > st.min) {
        // Tolerance: a fraction of the range, but never less than the noise (a noisy stream's tails keep
        // stretching its range by chance).
        const tol = Math.max(cfg.rangeTolerance * (st.max - st.min), cfg.rangeNoiseSigmas * errSd);
        const excess = Math.max(r.value - st.max, st.min - r.value);
        if (excess > tol) ev[3] = 1 + excess / tol;
      }
      // Stuck sensor: a run of identical values twice as long as the longest run the stream showed
      // recently (at least `stuckMinRun`) is reported once, at the moment it becomes that long.
      if (p.hasLast) {
        if (r.value === p.last) st.run++;
        else {
          st.runMax = Math.max(st.runMax, st.run);
          st.run = 0;
        }
        st.runMax *= 1 - runAlpha;
        if (st.run > 0 && n > cfg.warmupReadings && st.run === Math.max(cfg.stuckMinRun, Math.ceil(2 * st.runMax))) {
          ev[4] = 3;
        }
      }
      const evidence = combineEvidence(ev);
      let lik = ratioLikelihood(evidence);
      if (n <= cfg.warmupReadings / 4) lik = 0;
      // One event, one alarm: within the refractory period after a peak only a higher likelihood
      // counts as news; the rest of the excursion is reported damped.
      if (n - st.lastAlert <= cfg.refractory.readings && evidence <= st.peak * cfg.refractory.margin) lik *= 0.5;
      else if (evidence >= cfg.refractory.trigger) {
        st.lastAlert = n;
        st.peak = evidence;
      }
      score.likelihood = lik;
      if (trace) trace(st.key, n, ev);
      // Error scale and value statistics (after scoring: a reading never explains itself away).
      if (p.hasLast) {
        const a = Math.max(1 / Math.max(n - 1, 1), normAlpha);
        const ae = Math.min(Math.abs(e), 10 * errSd + 1e-12); // clip so one outlier does not blow up the scale
        st.errAbs = st.errAbs === 0 ? Math.abs(e) : st.errAbs + a * (ae - st.errAbs);
      }
      const av = Math.max(1 / n, normAlpha);
      const dv = r.value - st.valMean;
      st.valMean += av * dv;
      st.valVar = (1 - av) * (st.valVar + av * dv * dv);
      if (r.value < st.min) st.min = r.value;
      if (r.value > st.max) st.max = r.value;
      // Holt level/trend in event time for the forecast.
      if (n === 1) {
        st.level = r.value;
        st.trend = 0;
      } else if (p.dtMs > 0) {
        const prior = st.level + st.trend * p.dtMs;
        const lvl = prior + 0.3 * (r.value - prior);
        st.trend += 0.05 * ((lvl - st.level) / p.dtMs - st.trend);
        st.level = lvl;
      } else st.level += 0.3 * (r.value - st.level);
      forecastAndLimit(st, score);
      if (p.row >= 0) addExample(xs, p.row * F, Math.max(-10, Math.min(10, (r.value - p.last) / p.scale)));
      sinceTrain++;
      // Feed the machine model.
      const slot = m.slot(r.sensor);
      if (slot >= 0) {
        m.latest[slot] = (r.value - st.valMean) / Math.max(Math.sqrt(st.valVar), 1e-3 * p.scale, 1e-12);
        m.has[slot] = 1;
        m.batchSurprise[slot] = Math.max(m.batchSurprise[slot], u);
      }
      m.batchLikelihood = Math.max(m.batchLikelihood, lik);
      m.batchTs = Math.max(m.batchTs, r.ts);
      m.touched = true;
      out.sensor.push(score);
    }

    // Machine scores: once per machine per batch.
    for (const m of machines.values()) {
      if (!m.touched) continue;
      out.machine.push(scoreMachine(m));
    }

    trainDue();
    return out;
  }

  function scoreMachine(m: MachineState): MachineScore {
    const cap = m.cap;
    const idx: number[] = [];
    for (let i = 0; i < m.sensors.length; i++) if (m.has[i]) idx.push(i);
    const k = idx.length;
    const d = new Float64Array(k);
    const a = new Float64Array(k * k);
    for (let i = 0; i < k; i++) {
      d[i] = m.latest[idx[i]] - m.mean[idx[i]];
      for (let j = 0; j < k; j++) a[i * k + j] = m.cov[idx[i] * cap + idx[j]] + (i === j ? 0.05 : 0); // shrinkage
    }
    const sol = choleskySolve(a, d, k);
    const parts = new Float64Array(k);
    let d2 = 0;
    if (sol) for (let i = 0; i < k; i++) {
      parts[i] = d[i] * sol[i];
      d2 += parts[i];
    }
    d2 = Math.max(d2, 0);
    const u = k > 0 ? chiSquareSurprise(d2, k) : 0;
    let lik = m.updates >= 16 ? surpriseToLikelihood(m, u) : 0;
    lik = Math.max(lik, m.batchLikelihood);
    // Contributions: half from the multivariate decomposition, half from each sensor's own surprise.
    const contributions: Record<string, number> = {};
    let sp = 0;
    let ss = 0;
    for (let i = 0; i < k; i++) {
      sp += Math.max(parts[i], 0);
      ss += m.batchSurprise[idx[i]];
    }
    for (let i = 0; i < k; i++) {
      const c = (sp > 0 ? 0.5 * Math.max(parts[i], 0) / sp : 0.5 / k) + (ss > 0 ? 0.5 * m.batchSurprise[idx[i]] / ss : 0.5 / k);
      contributions[m.sensors[idx[i]]] = c;
    }
    const score: MachineScore = {
      kind: 'machine',
      site: m.site,
      line: m.line,
      machine: m.machine,
      ts: m.batchTs,
      rawScore: Math.sqrt(d2),
      likelihood: lik,
      contributions,
      modelVersion: cfg.modelVersion,
      warmingUp: m.updates < cfg.warmupReadings,
    };
    // Learn (after scoring): EWMA mean and covariance over the sensors present.
    m.updates++;
    const al = Math.max(1 / m.updates, normAlpha);
    for (const i of idx) m.mean[i] += al * (m.latest[i] - m.mean[i]);
    for (const i of idx) for (const j of idx) {
      const c = (m.latest[i] - m.mean[i]) * (m.latest[j] - m.mean[j]);
      m.cov[i * cap + j] = (1 - al) * m.cov[i * cap + j] + al * c;
    }
    updateHist(m, u);
    m.touched = false;
    m.batchLikelihood = 0;
    m.batchTs = 0;
    m.batchSurprise.fill(0);
    return score;
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
          streamsJson[i] = copy.streams.delete(st) ? st.toJson() : copy.streamJson.get(st)!;
          await pause(i);
        }
        const machinesJson: MachineStateJson[] = new Array(machineOrder.length);
        for (let i = 0; i < machineOrder.length; i++) {
          const m = machineOrder[i];
          machinesJson[i] = copy.machines.delete(m) ? m.toJson() : copy.machineJson.get(m)!;
          await pause(i);
        }
        return { ...head, streams: streamsJson, machines: machinesJson, limits: limitsThen };
      } finally {
        copies.splice(copies.indexOf(copy), 1);
      }
    };
    return { complete: () => (done ??= complete()) };
  }

  return {
    modelVersion: cfg.modelVersion,
    scoreBatch,
    setLimits(l) {
      limits = { ...limits, ...l };
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
      streams.clear();
      for (const j of s.streams) streams.set(j.key, SensorState.fromJson(j, W, K, cfg.novelty, cfg.season.bins));
      machines.clear();
      for (const j of s.machines) machines.set(j.key, MachineState.fromJson(j, cfg.maxSensorsPerMachine));
      limits = { ...s.limits };
    },
    streamCount: () => streams.size,
    stateBytes() {
      let b = 0;
      for (const s of streams.values()) b += s.bytes();
      for (const m of machines.values()) b += m.bytes();
      return b;
    },
    dispose() {
      model.dispose();
      streams.clear();
      machines.clear();
    },
  };
}
