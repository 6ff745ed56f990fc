/**
 * A scored batch's sensor-score columns, with each row's series id, time and value, packed into one
 * ArrayBuffer for the producer thread, which encodes the score records there (score-output.ts).
 * Packing is a few bulk copies and one gather per row, ~0.1 µs per row, where encoding the JSON
 * costs a few µs: that work moves off the thread that fetches, decodes and scores.
 *
 * Layout for n rows: 12 Float64 columns (ts, value, predicted, lower, upper, rawScore, likelihood,
 * forecastHorizonMs, forecastValue, forecastLower, forecastUpper, timeToLimitMs) of n each, then
 * n Int32 series ids, then n Uint8 warmingUp flags.
 */
import type { SeriesEntry } from '../../common/reading-batch.ts';
import type { ScoredPoints, SensorScoreColumns, SensorScoreRows } from './score-columns.ts';

const F64_COLUMNS = 12;

export function packedRowsBytes(n: number): number {
  return n * (F64_COLUMNS * 8 + 4 + 1);
}

/** The rows of `cols` in row order, and each row's series (the caller sends unknown ones along). */
export function packScoreRows(cols: SensorScoreColumns, input: ScoredPoints): { rows: ArrayBuffer; series: SeriesEntry[] } {
  const n = cols.n;
  const rows = new ArrayBuffer(packedRowsBytes(n));
  const f = new Float64Array(rows, 0, F64_COLUMNS * n);
  const ids = new Int32Array(rows, F64_COLUMNS * 8 * n, n);
  const warm = new Uint8Array(rows, (F64_COLUMNS * 8 + 4) * n, n);
  const series: SeriesEntry[] = new Array(n);
  const point = cols.point;
  for (let k = 0; k < n; k++) {
    const i = point[k];
    const s = input.series[i];
    series[k] = s;
    ids[k] = s.id;
    f[k] = input.ts[i];
    f[n + k] = input.value[i];
  }
  const columns = [cols.predicted, cols.lower, cols.upper, cols.rawScore, cols.likelihood, cols.forecastHorizonMs, cols.forecastValue, cols.forecastLower, cols.forecastUpper, cols.timeToLimitMs];
  for (let c = 0; c < columns.length; c++) f.set(columns[c].subarray(0, n), (c + 2) * n);
  warm.set(cols.warmingUp.subarray(0, n));
  return { rows, series };
}

/** Identity point index (row k scores point k), shared by every unpacked batch. */
let identity = new Int32Array(0);

/**
 * The packed rows as the encoder's columns and points (views into `rows`), each row's series looked
 * up by id in `seriesById`. Throws when an id is unknown (the sender did not define it).
 */
export function unpackScoreRows(rows: ArrayBuffer, n: number, seriesById: ReadonlyMap<number, SeriesEntry>): { cols: SensorScoreRows; points: ScoredPoints } {
  if (rows.byteLength !== packedRowsBytes(n)) throw new Error(`packed score rows: ${rows.byteLength} bytes for ${n} rows`);
  if (identity.length < n) {
    identity = new Int32Array(Math.max(n, identity.length * 2));
    for (let k = 0; k < identity.length; k++) identity[k] = k;
  }
  const col = (c: number) => new Float64Array(rows, c * 8 * n, n);
  const ids = new Int32Array(rows, F64_COLUMNS * 8 * n, n);
  const series: SeriesEntry[] = new Array(n);
  for (let k = 0; k < n; k++) {
    const s = seriesById.get(ids[k]);
    if (s === undefined) throw new UnknownSeriesError(ids[k]);
    series[k] = s;
  }
  return {
    cols: {
      n,
      point: identity,
      predicted: col(2),
      lower: col(3),
      upper: col(4),
      rawScore: col(5),
      likelihood: col(6),
      forecastHorizonMs: col(7),
      forecastValue: col(8),
      forecastLower: col(9),
      forecastUpper: col(10),
      timeToLimitMs: col(11),
      warmingUp: new Uint8Array(rows, (F64_COLUMNS * 8 + 4) * n, n),
    },
    points: { series, ts: col(0), value: col(1) },
  };
}

/** The thread was sent a row of a series it was never told about (its mirror was lost or reset). */
export class UnknownSeriesError extends Error {
  readonly code = 'SCORE_SERIES_UNKNOWN';
  readonly retriable = true;
  constructor(id: number) {
    super(`score row of series id ${id}, which the producer thread does not know`);
    this.name = 'UnknownSeriesError';
  }
}
