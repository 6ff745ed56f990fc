/**
 * A small, deterministic streaming detector for the service's tests: per-stream exponentially
 * weighted mean and variance, a machine score from its sensors. It honours the `ScoringDetector`
 * contract (order per stream, snapshot/restore, rejects late readings) so the service logic can be
 * tested without tfjs; the real models live in `../detector/`.
 */
import type { MachineScore, Reading, SensorScore } from '../../../common/messages.ts';
import type { DetectorSnapshotLike, ScoreOutputLike, ScoringDetector, SensorLimits } from '../detector-port.ts';

interface StreamState {
  n: number;
  mean: number;
  variance: number;
  lastTs: number;
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
}

export class FakeDetector implements ScoringDetector {
  modelVersion: string;
  readonly calls: number[] = [];
  limits: SensorLimits = {};
  disposed = false;
  private streams = new Map<string, StreamState>();
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
