/**
 * Sensor scores in columns: what the detector's hot path returns and the score encoder reads, so a
 * scored reading never becomes an object between the Kafka record it came from and the one its
 * score goes out in (at 50k readings/s the objects, not the arithmetic, were the cost: ~10 µs per
 * reading of plumbing and a third of the main thread in GC at 100k streams).
 *
 * Row k scores point `point[k]` of the input `ReadingBatch` (common/reading-batch.ts), whose
 * columns give the series, ts and value. Rows are in input order; rejected points have no row.
 * The object form (`SensorScore`, common/messages.ts) stays the message contract: `toSensorScores`
 * builds it, and a detector that only has the object API is bridged by `scoreColumnsViaObjects`.
 */
import type { MachineScore, Reading, SensorScore } from '../../common/messages.ts';
import type { ReadingBatch } from '../../common/reading-batch.ts';

/** `timeToLimitMs` column: no limit configured for the stream (the field is absent). */
export const TTL_ABSENT = Number.NaN;
/** `timeToLimitMs` column: a limit is configured but no crossing is expected within the horizon (`null`). */
export const TTL_NONE = -1;

export class SensorScoreColumns {
  n = 0;
  /** Index of the scored point in the input batch. */
  point: Int32Array;
  predicted: Float64Array;
  lower: Float64Array;
  upper: Float64Array;
  rawScore: Float64Array;
  likelihood: Float64Array;
  /** Forecast horizon in ms; NaN when the row has no forecast (then the forecast columns are unused). */
  forecastHorizonMs: Float64Array;
  forecastValue: Float64Array;
  forecastLower: Float64Array;
  forecastUpper: Float64Array;
  /** ms until the configured limit is crossed; TTL_ABSENT (NaN) or TTL_NONE (-1), see above. */
  timeToLimitMs: Float64Array;
  /** 1 while the model is still learning the stream. */
  warmingUp: Uint8Array;

  constructor(capacity = 256) {
    const c = Math.max(1, capacity);
    this.point = new Int32Array(c);
    this.predicted = new Float64Array(c);
    this.lower = new Float64Array(c);
    this.upper = new Float64Array(c);
    this.rawScore = new Float64Array(c);
    this.likelihood = new Float64Array(c);
    this.forecastHorizonMs = new Float64Array(c);
    this.forecastValue = new Float64Array(c);
    this.forecastLower = new Float64Array(c);
    this.forecastUpper = new Float64Array(c);
    this.timeToLimitMs = new Float64Array(c);
    this.warmingUp = new Uint8Array(c);
  }

  get capacity(): number {
    return this.point.length;
  }

  /** Appends a row for `point` and returns its index; the caller fills the other columns. */
  add(point: number): number {
    if (this.n === this.point.length) this.grow(this.n * 2);
    const k = this.n++;
    this.point[k] = point;
    this.forecastHorizonMs[k] = Number.NaN;
    this.timeToLimitMs[k] = TTL_ABSENT;
    this.warmingUp[k] = 0;
    return k;
  }

  private grow(capacity: number): void {
    const g = <A extends Float64Array | Int32Array | Uint8Array>(a: A, make: (n: number) => A): A => {
      const b = make(capacity);
      b.set(a);
      return b;
    };
    const f = (n: number) => new Float64Array(n);
    this.point = g(this.point, (n) => new Int32Array(n));
    this.predicted = g(this.predicted, f);
    this.lower = g(this.lower, f);
    this.upper = g(this.upper, f);
    this.rawScore = g(this.rawScore, f);
    this.likelihood = g(this.likelihood, f);
    this.forecastHorizonMs = g(this.forecastHorizonMs, f);
    this.forecastValue = g(this.forecastValue, f);
    this.forecastLower = g(this.forecastLower, f);
    this.forecastUpper = g(this.forecastUpper, f);
    this.timeToLimitMs = g(this.timeToLimitMs, f);
    this.warmingUp = g(this.warmingUp, (n) => new Uint8Array(n));
  }

  /** Row k as the `SensorScore` message. */
  scoreAt(k: number, input: ReadingBatch, modelVersion: string): SensorScore {
    const i = this.point[k];
    const s = input.series[i];
    const score: SensorScore = {
      kind: 'sensor',
      site: s.site,
      line: s.line,
      machine: s.machine,
      sensor: s.sensor,
      ts: input.ts[i],
      value: input.value[i],
      predicted: this.predicted[k],
      lower: this.lower[k],
      upper: this.upper[k],
      rawScore: this.rawScore[k],
      likelihood: this.likelihood[k],
      modelVersion,
      warmingUp: this.warmingUp[k] === 1,
    };
    const h = this.forecastHorizonMs[k];
    if (!Number.isNaN(h)) score.forecast = { horizonMs: h, value: this.forecastValue[k], lower: this.forecastLower[k], upper: this.forecastUpper[k] };
    const ttl = this.timeToLimitMs[k];
    if (!Number.isNaN(ttl)) score.timeToLimitMs = ttl === TTL_NONE ? null : ttl;
    return score;
  }

  toSensorScores(input: ReadingBatch, modelVersion: string): SensorScore[] {
    const out: SensorScore[] = new Array(this.n);
    for (let k = 0; k < this.n; k++) out[k] = this.scoreAt(k, input, modelVersion);
    return out;
  }
}

/**
 * What the score encoder reads of the columns: a `SensorScoreColumns`, or the same columns unpacked
 * from a transferred buffer in the producer thread (score-rows.ts).
 */
export type SensorScoreRows = Pick<
  SensorScoreColumns,
  'n' | 'point' | 'predicted' | 'lower' | 'upper' | 'rawScore' | 'likelihood' | 'forecastHorizonMs' | 'forecastValue' | 'forecastLower' | 'forecastUpper' | 'timeToLimitMs' | 'warmingUp'
>;

/** What the score encoder reads of the input batch: each point's series, time and value. */
export type ScoredPoints = Pick<ReadingBatch, 'series' | 'ts' | 'value'>;

/** What `scoreColumns` returns for one input batch. */
export interface ColumnScoreOutput {
  sensor: SensorScoreColumns;
  /** Machine scores (one per machine with readings in the batch): few, kept as messages. */
  machine: MachineScore[];
  /** Points the detector refused (duplicates, hopelessly late…), by index in the input batch. */
  rejected: { point: number; reason: string }[];
}

/** The object API every detector has: Reading objects in, messages out. */
export interface ObjectScoring {
  readonly modelVersion: string;
  scoreBatch(readings: Reading[]): Promise<{ sensor: SensorScore[]; machine: MachineScore[]; rejected: { reading: Reading; reason: string }[] }>;
}

/**
 * Columns for a detector that only scores objects (plug-in detectors, tests): materialises the
 * readings, scores them and maps each score back to its point (scores come in reading order,
 * rejected readings are identified by identity).
 */
export async function scoreColumnsViaObjects(detector: ObjectScoring, input: ReadingBatch): Promise<ColumnScoreOutput> {
  const readings = input.toReadings();
  const out = await detector.scoreBatch(readings);
  const rejectedAt = new Map<Reading, string>();
  for (const r of out.rejected) rejectedAt.set(r.reading, r.reason);
  const cols = new SensorScoreColumns(Math.max(1, out.sensor.length));
  const rejected: { point: number; reason: string }[] = [];
  let k = 0;
  for (let i = 0; i < readings.length; i++) {
    const reason = rejectedAt.get(readings[i]);
    if (reason !== undefined) {
      rejected.push({ point: i, reason });
      continue;
    }
    const s = out.sensor[k++];
    if (s === undefined) throw new Error(`detector returned ${out.sensor.length} sensor scores for ${readings.length - out.rejected.length} accepted readings`);
    const row = cols.add(i);
    cols.predicted[row] = s.predicted;
    cols.lower[row] = s.lower;
    cols.upper[row] = s.upper;
    cols.rawScore[row] = s.rawScore;
    cols.likelihood[row] = s.likelihood;
    cols.warmingUp[row] = s.warmingUp ? 1 : 0;
    if (s.forecast) {
      cols.forecastHorizonMs[row] = s.forecast.horizonMs;
      cols.forecastValue[row] = s.forecast.value;
      cols.forecastLower[row] = s.forecast.lower;
      cols.forecastUpper[row] = s.forecast.upper;
    }
    if (s.timeToLimitMs !== undefined) cols.timeToLimitMs[row] = s.timeToLimitMs === null ? TTL_NONE : s.timeToLimitMs;
  }
  if (k !== out.sensor.length) throw new Error(`detector returned ${out.sensor.length} sensor scores for ${k} accepted readings`);
  return { sensor: cols, machine: out.machine, rejected };
}
