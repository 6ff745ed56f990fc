/**
 * A small, deterministic streaming detector for the service's tests: per-stream exponentially
 * weighted mean and variance, a machine score from its sensors. It honours the `ScoringDetector`
 * contract (order per stream, snapshot/restore, rejects late readings) so the service logic can be
 * tested without tfjs; the real models live in `../detector/`. Its `scoreColumns` gives the same
 * scores as `scoreBatch` without an object per reading, so the benchmark's "fake" rows measure
 * Kafka and the service's plumbing rather than this detector.
 */
import type { MachineScore, Reading, SensorScore } from '../../../common/messages.ts';
import type { ReadingBatch, SeriesEntry } from '../../../common/reading-batch.ts';
import type { DetectorSnapshotLike, ScoreOutputLike, ScoringDetector, SensorLimits } from '../detector-port.ts';
import { SensorScoreColumns, TTL_NONE, type ColumnScoreOutput } from '../score-columns.ts';

interface StreamState {
  n: number;
  mean: number;
  variance: number;
  lastTs: number;
}

/** A machine's sensors in one `scoreColumns` call (valid while `epoch` is the call's). */
interface MachineInfo {
  epoch: number;
  last: number;
  raw: Record<string, number>;
  warming: boolean;
}

/** What `scoreColumns` keeps per interned series: its key, machine, and its state while `gen` is current. */
interface SeriesInfo {
  entry: SeriesEntry;
  key: string;
  machine: MachineInfo;
  state: StreamState | undefined;
  gen: number;
}

interface FakeSnapshot extends DetectorSnapshotLike {
  streams: [string, StreamState][];
  /** A long numeric array, so checkpoints exercise the weights file. */
  weights: number[];
}

export interface FakeDetectorOptions {
  modelVersion?: string;
  warmup?: number;
  alpha?: number;
  /** Throws when scoring a reading with this value (to test failure isolation). */
  poisonValue?: number;
  /** Artificial scoring cost per call. */
  delayMs?: number;
  /**
   * `scoreColumns` writes every call's sensor scores into the same columns (valid until the next
   * call, which the service allows): no allocation per call, like a tuned detector.
   */
  reuseColumns?: boolean;
}

export class FakeDetector implements ScoringDetector {
  modelVersion: string;
  readonly calls: number[] = [];
  limits: SensorLimits = {};
  disposed = false;
  private streams = new Map<string, StreamState>();
  /** By `SeriesEntry.id` (checked against the entry: ids of different interners may collide). */
  private readonly seriesInfo: (SeriesInfo | undefined)[] = [];
  private readonly machineInfo = new Map<string, MachineInfo>();
  private epoch = 0;
  private columns: SensorScoreColumns | null = null;
  /** Bumped when `streams` is replaced (restore): cached states are stale then. */
  private gen = 0;
  private readonly warmup: number;
  private readonly alpha: number;

  constructor(private readonly opts: FakeDetectorOptions = {}) {
    this.modelVersion = opts.modelVersion ?? 'fake-1';
    this.warmup = opts.warmup ?? 5;
    this.alpha = opts.alpha ?? 0.1;
  }

  async scoreBatch(readings: Reading[]): Promise<ScoreOutputLike> {
    if (this.disposed) throw new Error('detector disposed');
    this.calls.push(readings.length);
    if (this.opts.delayMs) await new Promise((r) => setTimeout(r, this.opts.delayMs));
    if (this.opts.poisonValue !== undefined && readings.some((r) => r.value === this.opts.poisonValue)) throw new Error('poison reading');
    const out: ScoreOutputLike = { sensor: [], machine: [], rejected: [] };
    const perMachine = new Map<string, { r: Reading; raw: Record<string, number>; warming: boolean }>();
    for (const r of readings) {
      const key = `${r.site}/${r.line}/${r.machine}/${r.sensor}`;
      let s = this.streams.get(key);
      if (s && r.ts < s.lastTs) {
        out.rejected.push({ reading: r, reason: `late: ts ${r.ts} before ${s.lastTs}` });
        continue;
      }
      if (!s) this.streams.set(key, (s = { n: 0, mean: r.value, variance: 1, lastTs: r.ts }));
      const sd = Math.sqrt(s.variance);
      const raw = Math.abs(r.value - s.mean) / sd;
      const score: SensorScore = {
        kind: 'sensor',
        site: r.site,
        line: r.line,
        machine: r.machine,
        sensor: r.sensor,
        ts: r.ts,
        value: r.value,
        predicted: s.mean,
        lower: s.mean - 3 * sd,
        upper: s.mean + 3 * sd,
        rawScore: raw,
        likelihood: 1 - Math.exp(-raw / 3),
        modelVersion: this.modelVersion,
        warmingUp: s.n < this.warmup,
      };
      const limit = this.limits[key];
      if (limit) score.timeToLimitMs = limit.upper !== undefined && r.value >= limit.upper ? 0 : null;
      out.sensor.push(score);
      const d = r.value - s.mean;
      s.mean += this.alpha * d;
      s.variance = Math.max(1e-6, (1 - this.alpha) * (s.variance + this.alpha * d * d));
      s.n++;
      s.lastTs = r.ts;
      const mk = `${r.site}/${r.line}/${r.machine}`;
      let m = perMachine.get(mk);
      if (!m) perMachine.set(mk, (m = { r, raw: {}, warming: false }));
      m.r = r;
      m.raw[r.sensor] = raw;
      m.warming ||= score.warmingUp;
    }
    for (const { r, raw, warming } of perMachine.values()) {
      const total = Object.values(raw).reduce((a, b) => a + b, 0);
      const machine: MachineScore = {
        kind: 'machine',
        site: r.site,
        line: r.line,
        machine: r.machine,
        ts: r.ts,
        rawScore: total,
        likelihood: 1 - Math.exp(-total / 3),
        contributions: Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, total === 0 ? 1 / Object.keys(raw).length : v / total])),
        modelVersion: this.modelVersion,
        warmingUp: warming,
      };
      out.machine.push(machine);
    }
    return out;
  }

  async scoreColumns(input: ReadingBatch): Promise<ColumnScoreOutput> {
    if (this.disposed) throw new Error('detector disposed');
    const n = input.n;
    this.calls.push(n);
    if (this.opts.delayMs) await new Promise((r) => setTimeout(r, this.opts.delayMs));
    if (this.opts.poisonValue !== undefined) for (let i = 0; i < n; i++) if (input.value[i] === this.opts.poisonValue) throw new Error('poison reading');
    let cols: SensorScoreColumns;
    if (this.opts.reuseColumns) {
      if (this.columns === null || this.columns.capacity < n) this.columns = new SensorScoreColumns(Math.max(n, 1024));
      cols = this.columns;
      cols.n = 0;
    } else cols = new SensorScoreColumns(n);
    const rejected: ColumnScoreOutput['rejected'] = [];
    const epoch = ++this.epoch;
    const machines: MachineInfo[] = [];
    const hasLimits = Object.keys(this.limits).length > 0;
    for (let i = 0; i < n; i++) {
      const e = input.series[i];
      let info = this.seriesInfo[e.id];
      if (info === undefined || info.entry !== e) {
        const key = `${e.site}/${e.line}/${e.machine}/${e.sensor}`;
        const mk = `${e.site}/${e.line}/${e.machine}`;
        let machine = this.machineInfo.get(mk);
        if (!machine) this.machineInfo.set(mk, (machine = { epoch: 0, last: 0, raw: {}, warming: false }));
        this.seriesInfo[e.id] = info = { entry: e, key, machine, state: this.streams.get(key), gen: this.gen };
      } else if (info.gen !== this.gen) {
        info.state = this.streams.get(info.key);
        info.gen = this.gen;
      }
      const ts = input.ts[i];
      const value = input.value[i];
      let s = info.state;
      if (s && ts < s.lastTs) {
        rejected.push({ point: i, reason: `late: ts ${ts} before ${s.lastTs}` });
        continue;
      }
      if (!s) {
        s = info.state = { n: 0, mean: value, variance: 1, lastTs: ts };
        this.streams.set(info.key, s);
      }
      const sd = Math.sqrt(s.variance);
      const raw = Math.abs(value - s.mean) / sd;
      const k = cols.add(i);
      cols.predicted[k] = s.mean;
      cols.lower[k] = s.mean - 3 * sd;
      cols.upper[k] = s.mean + 3 * sd;
      cols.rawScore[k] = raw;
      cols.likelihood[k] = 1 - Math.exp(-raw / 3);
      const warming = s.n < this.warmup;
      cols.warmingUp[k] = warming ? 1 : 0;
      if (hasLimits) {
        const limit = this.limits[info.key];
        if (limit) cols.timeToLimitMs[k] = limit.upper !== undefined && value >= limit.upper ? 0 : TTL_NONE;
      }
      const d = value - s.mean;
      s.mean += this.alpha * d;
      s.variance = Math.max(1e-6, (1 - this.alpha) * (s.variance + this.alpha * d * d));
      s.n++;
      s.lastTs = ts;
      const m = info.machine;
      if (m.epoch !== epoch) {
        m.epoch = epoch;
        m.raw = {};
        m.warming = false;
        machines.push(m);
      }
      m.last = i;
      m.raw[e.sensor] = raw;
      m.warming ||= warming;
    }
    const machine: MachineScore[] = [];
    for (const { last, raw, warming } of machines) {
      const e = input.series[last];
      const total = Object.values(raw).reduce((a, b) => a + b, 0);
      machine.push({
        kind: 'machine',
        site: e.site,
        line: e.line,
        machine: e.machine,
        ts: input.ts[last],
        rawScore: total,
        likelihood: 1 - Math.exp(-total / 3),
        contributions: Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, total === 0 ? 1 / Object.keys(raw).length : v / total])),
        modelVersion: this.modelVersion,
        warmingUp: warming,
      });
    }
    return { sensor: cols, machine, rejected };
  }

  setLimits(limits: SensorLimits): void {
    this.limits = limits;
  }

  async snapshot(): Promise<FakeSnapshot> {
    return {
      version: this.modelVersion,
      createdAt: 0,
      streams: [...this.streams].map(([k, s]) => [k, { ...s }]),
      weights: Array.from({ length: 300 }, (_, i) => i * 0.1),
    };
  }

  async restore(s: DetectorSnapshotLike): Promise<void> {
    const snap = s as FakeSnapshot;
    if (!Array.isArray(snap.streams)) throw new Error('not a fake detector snapshot');
    this.streams = new Map(snap.streams.map(([k, v]) => [k, { ...v }]));
    this.gen++;
    this.modelVersion = snap.version;
  }

  streamCount(): number {
    return this.streams.size;
  }

  stateBytes(): number {
    return this.streams.size * 64;
  }

  dispose(): void {
    this.disposed = true;
  }
}

export function reading(over: Partial<Reading> = {}): Reading {
  return { site: 's1', line: 'l1', machine: 'm1', sensor: 'temp', ts: 1_700_000_000_000, value: 20, receivedAt: 1_700_000_000_000, ...over };
}
