/**
 * Batching across streams. Every partition batch the consumer hands over is queued; whenever the
 * detector is free, queued readings are scored in ONE `scoreColumns` call on one column batch (`ReadingBatch`), so under load batches grow
 * and the per-call cost is shared by more readings. A call takes at most the current batch limit:
 * `maxReadings`, lowered adaptively so that one call is expected to take about `targetBatchMs`
 * (from the measured cost per reading, never below `minReadings`). That bounds how long any reading
 * waits behind a call; a partition batch bigger than the limit is split across calls. While one
 * group's scores are being produced the next group is already being scored; at most `maxInFlight`
 * groups exist at once, which bounds the readings held in memory. `submit` resolves only after
 * `deliver` (the produce, acks=-1) succeeded for every part of it, so the caller may commit then.
 *
 * Detector calls (score, snapshot, model swap) are serialised: a stream's readings are scored in
 * the order they were submitted, and `exclusive` work (a snapshot) runs between calls, never while
 * a submission is half scored (its offsets could not be committed yet, but the detector would hold
 * part of it).
 */
import { ReadingBatch } from '../../common/reading-batch.ts';
import type { ScoringDetector } from './detector-port.ts';
import { SensorScoreColumns, scoreColumnsViaObjects, type ColumnScoreOutput } from './score-columns.ts';

export interface FailedPoint {
  /** Index of the point in the group's input batch. */
  point: number;
  error: Error;
}

export interface ScoredGroup<T> {
  /**
   * The points scored: the submission itself when the group is exactly one whole submission,
   * else its parts copied into one batch. Valid until `prepare` returns (then it may be reused).
   */
  input: ReadingBatch;
  /** Scores; rows and rejected points index `input`. */
  output: ColumnScoreOutput;
  /** Points the detector threw on even when scored alone (dead-lettered by the caller). */
  failed: FailedPoint[];
  items: T[];
  readings: number;
  scoreMs: number;
  /** Version of the detector that scored the group. */
  modelVersion: string;
}

export interface BatchScorerOptions<T, D = ScoredGroup<T>> {
  detector: () => ScoringDetector;
  /**
   * Turns a scored group into what `deliver` sends (e.g. encoded records), right after scoring and
   * before the next call; after it returns, the group's batches are reused. Default: the group itself.
   */
  prepare?: (group: ScoredGroup<T>) => D;
  deliver: (delivery: D) => Promise<void>;
  /** Runs right after scoring (before `prepare`), before the next call or exclusive work. */
  afterScore?: (group: ScoredGroup<T>) => void;
  /**
   * A submitted batch the scorer no longer reads (every part of it scored and prepared, or given
   * up): the caller may reuse it. Not called when `prepare` is absent (the group keeps it).
   */
  release?: (batch: ReadingBatch) => void;
  /** Hard cap on readings per scoring call. */
  maxReadings: number;
  maxInFlight: number;
  /** Aim for calls of about this many ms (0: always up to `maxReadings`). */
  targetBatchMs?: number;
  /** The adaptive limit never goes below this (per-call costs stay shared). */
  minReadings?: number;
  now?: () => number;
}

interface Pending<T> {
  batch: ReadingBatch;
  /** Points in `batch` when submitted (it is cleared once released for reuse). */
  n: number;
  meta: T;
  resolve: () => void;
  reject: (err: unknown) => void;
  /** Points handed to groups so far. */
  taken: number;
  /** Groups holding part of it that are not delivered yet. */
  outstanding: number;
  /** Groups holding part of it that are not prepared yet (the batch is read until then). */
  reading: number;
  failed: boolean;
}

interface Part<T> {
  p: Pending<T>;
  from: number;
  to: number;
}

/** Appends points from..to of `src` to `dst` (which has room): typed-array copies, no objects. */
export function copyPoints(src: ReadingBatch, from: number, to: number, dst: ReadingBatch): void {
  const at = dst.n;
  const n = to - from;
  dst.ts.set(src.ts.subarray(from, to), at);
  dst.value.set(src.value.subarray(from, to), at);
  dst.receivedAt.set(src.receivedAt.subarray(from, to), at);
  dst.quality.set(src.quality.subarray(from, to), at);
  // The value's source text stays with the submission (only line protocol reads it).
  dst.valueSource.fill(0, at, at + n);
  const series = dst.series;
  const unit = dst.unit;
  for (let i = 0; i < n; i++) {
    series[at + i] = src.series[from + i];
    unit[at + i] = src.unit[from + i];
  }
  dst.n = at + n;
}

/** Rows of `b` appended to `a` (the failure-isolation path only). */
function concatOutputs(a: ColumnScoreOutput, b: ColumnScoreOutput): ColumnScoreOutput {
  const cols = new SensorScoreColumns(a.sensor.n + b.sensor.n);
  for (const src of [a.sensor, b.sensor]) {
    for (let k = 0; k < src.n; k++) {
      const r = cols.add(src.point[k]);
      cols.predicted[r] = src.predicted[k];
      cols.lower[r] = src.lower[k];
      cols.upper[r] = src.upper[k];
      cols.rawScore[r] = src.rawScore[k];
      cols.likelihood[r] = src.likelihood[k];
      cols.forecastHorizonMs[r] = src.forecastHorizonMs[k];
      cols.forecastValue[r] = src.forecastValue[k];
      cols.forecastLower[r] = src.forecastLower[k];
      cols.forecastUpper[r] = src.forecastUpper[k];
      cols.timeToLimitMs[r] = src.timeToLimitMs[k];
      cols.warmingUp[r] = src.warmingUp[k];
    }
  }
  return { sensor: cols, machine: [...a.machine, ...b.machine], rejected: [...a.rejected, ...b.rejected] };
}

const emptyOutput = (): ColumnScoreOutput => ({ sensor: new SensorScoreColumns(1), machine: [], rejected: [] });

/** A FIFO async lock. */
export class Lock {
  private tail: Promise<unknown> = Promise.resolve();
  run<R>(fn: () => Promise<R>): Promise<R> {
    const result = this.tail.then(fn, fn);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

/** Weight of the newest call in the cost-per-reading estimate. */
const COST_ALPHA = 0.2;
/** Copy batches kept for reuse. */
const POOL_MAX = 8;

export class BatchScorer<T, D = ScoredGroup<T>> {
  private readonly queue: Pending<T>[] = [];
  private readonly exclusives: (() => Promise<void>)[] = [];
  private queuedReadings = 0;
  /** Readings submitted and not yet handed to a scoring call. */
  private unscored = 0;
  private belowWaiters: { limit: number; resolve: () => void }[] = [];
  /** Scoring a group or running exclusive work: the detector is taken. */
  private busy = false;
  private inFlight = 0;
  private idleWaiters: (() => void)[] = [];
  private readonly now: () => number;
  /** Measured detector time per reading (ms), 0 until the first call. */
  private msPerReading = 0;
  /** Batches for groups made of parts (allocating columns per call kept the GC busy). */
  private readonly pool: ReadingBatch[] = [];

  constructor(private readonly opts: BatchScorerOptions<T, D>) {
    this.now = opts.now ?? (() => performance.now());
  }

  /** Readings queued or being scored/delivered. */
  get pendingReadings(): number {
    return this.queuedReadings;
  }

  get groupsInFlight(): number {
    return this.inFlight;
  }

  /** Most readings the next call may take. */
  get batchLimit(): number {
    const { maxReadings, targetBatchMs = 0, minReadings = 1 } = this.opts;
    if (targetBatchMs <= 0 || this.msPerReading <= 0) return maxReadings;
    return Math.max(Math.min(minReadings, maxReadings), Math.min(maxReadings, Math.floor(targetBatchMs / this.msPerReading)));
  }

  /** Queues a batch of points; resolves once all of it was scored and delivered. */
  submit(batch: ReadingBatch, meta: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const p: Pending<T> = { batch, n: batch.n, meta, resolve, reject, taken: 0, outstanding: 0, reading: 0, failed: false };
      this.queue.push(p);
      this.queuedReadings += batch.n;
      this.unscored += batch.n;
      this.pump();
    });
  }

  /** Runs `fn` with the detector to itself (no scoring in between): snapshots, swaps. */
  exclusive<R>(fn: () => Promise<R>): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.exclusives.push(() => fn().then(resolve, reject));
      this.pump();
    });
  }

  /** Resolves once fewer than `limit` submitted readings wait for a scoring call (backpressure for prefetching). */
  whenUnscoredBelow(limit: number): Promise<void> {
    if (this.unscored < limit) return Promise.resolve();
    return new Promise((resolve) => this.belowWaiters.push({ limit, resolve }));
  }

  private wakeBelow(): void {
    if (this.belowWaiters.length === 0) return;
    const still: { limit: number; resolve: () => void }[] = [];
    for (const w of this.belowWaiters) {
      if (this.unscored < w.limit) w.resolve();
      else still.push(w);
    }
    this.belowWaiters = still;
  }

  /** Resolves once nothing is queued, scored or being delivered. */
  idle(): Promise<void> {
    if (this.queue.length === 0 && this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pumpScheduled = false;
  /** `pump` after pending I/O callbacks (produce acks, fetched batches) had their turn. */
  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.busy) return;
    // A submission split across calls is finished first: exclusive work waits for it.
    const splitOpen = this.queue.length > 0 && this.queue[0].taken > 0;
    if (this.exclusives.length > 0 && !splitOpen) {
      const work = this.exclusives.shift()!;
      this.busy = true;
      void work().finally(() => {
        this.busy = false;
        this.pump();
      });
      return;
    }
    if (this.inFlight >= this.opts.maxInFlight || this.queue.length === 0) return;
    const limit = this.batchLimit;
    const parts: Part<T>[] = [];
    const items: T[] = [];
    let n = 0;
    while (this.queue.length > 0 && n < limit) {
      const p = this.queue[0];
      const to = Math.min(p.n, p.taken + (limit - n));
      parts.push({ p, from: p.taken, to });
      p.outstanding++;
      p.reading++;
      n += to - p.taken;
      p.taken = to;
      if (to < p.n) break;
      // Its last part is in this group: the group carries its metadata (offsets, dead letters).
      this.queue.shift();
      items.push(p.meta);
      if (splitOpen && this.exclusives.length > 0) break; // finish the split, then let the exclusive work in
    }
    this.busy = true;
    this.inFlight++;
    this.unscored -= n;
    this.wakeBelow();
    void this.runGroup(parts, items, n);
  }

  /** One batch holding the group's points: the submission itself when it is one whole submission. */
  private inputOf(parts: Part<T>[], n: number): ReadingBatch {
    if (parts.length === 1 && parts[0].from === 0 && parts[0].to === parts[0].p.n) return parts[0].p.batch;
    const batch = this.takeBatch(n);
    for (const { p, from, to } of parts) copyPoints(p.batch, from, to, batch);
    return batch;
  }

  private takeBatch(n: number): ReadingBatch {
    for (let i = this.pool.length - 1; i >= 0; i--) {
      const b = this.pool[i];
      if (b.ts.length >= n) {
        this.pool.splice(i, 1);
        return b;
      }
    }
    // Sized for a full call, so a pooled batch fits the next group whatever its size.
    return new ReadingBatch(Math.max(64, n, Math.min(this.opts.maxReadings, 16_384)));
  }

  private recycle(batch: ReadingBatch): void {
    batch.clear();
    if (this.pool.length < POOL_MAX) this.pool.push(batch);
  }

  /** The group's batches are no longer read: copies go back to the pool, finished submissions to the caller. */
  private doneReading(parts: Part<T>[], input: ReadingBatch | null): void {
    const own = parts.length === 1 && input === parts[0].p.batch;
    if (input !== null && !own) this.recycle(input);
    if (!this.opts.prepare || !this.opts.release) return;
    for (const { p } of parts) {
      p.reading--;
      if (p.reading === 0 && p.taken === p.n) this.opts.release(p.batch);
    }
  }

  private async runGroup(parts: Part<T>[], items: T[], n: number): Promise<void> {
    let delivery: D;
    let input: ReadingBatch | null = null;
    try {
      input = this.inputOf(parts, n);
      const detector = this.opts.detector();
      const started = this.now();
      const { output, failed } = await this.scoreIsolatingFailures(detector, input, 0, input.n);
      const scoreMs = this.now() - started;
      if (n > 0) {
        const per = scoreMs / n;
        this.msPerReading = this.msPerReading === 0 ? per : this.msPerReading + COST_ALPHA * (per - this.msPerReading);
      }
      const group: ScoredGroup<T> = { input, output, failed, items, readings: n, scoreMs, modelVersion: detector.modelVersion };
      this.opts.afterScore?.(group);
      delivery = this.opts.prepare ? this.opts.prepare(group) : (group as unknown as D);
    } catch (err) {
      this.busy = false;
      if (this.opts.prepare) this.doneReading(parts, input);
      this.finish(parts, n, err);
      return;
    }
    if (this.opts.prepare) this.doneReading(parts, input);
    // Send this group first, then score the next one while it is produced, in a later macrotask:
    // chaining calls back to back in one task (up to maxInFlight of them under a backlog) held the
    // produce of the first one, and every ack and fetch response, until the last was scored.
    const delivered = this.opts.deliver(delivery);
    this.busy = false;
    this.schedulePump();
    try {
      await delivered;
      this.finish(parts, n, undefined);
    } catch (err) {
      this.finish(parts, n, err);
    }
  }

  private finish(parts: Part<T>[], n: number, err: unknown): void {
    this.queuedReadings -= n;
    this.inFlight--;
    for (const { p } of parts) {
      p.outstanding--;
      if (err !== undefined && !p.failed) {
        p.failed = true;
        p.reject(err);
        // The rest of a failed submission is not scored: it will be replayed whole.
        if (p.taken < p.n && this.queue[0] === p) {
          this.queue.shift();
          this.queuedReadings -= p.n - p.taken;
          this.unscored -= p.n - p.taken;
          this.wakeBelow();
          p.taken = p.n;
          if (p.reading === 0 && this.opts.prepare && this.opts.release) this.opts.release(p.batch);
        }
      } else if (!p.failed && p.outstanding === 0 && p.taken === p.n) p.resolve();
    }
    this.schedulePump();
    if (this.queue.length === 0 && this.inFlight === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /**
   * A detector that throws on a batch is retried on halves (column ranges) until the point that
   * makes it throw is alone; that one is reported as failed and the rest are scored. If every point
   * fails alone too, the fault is not in the data (e.g. the backend died): rethrow, so nothing is
   * committed. Rows and rejected points of the result index `input`.
   */
  private async scoreIsolatingFailures(
    detector: ScoringDetector,
    input: ReadingBatch,
    from: number,
    to: number,
  ): Promise<{ output: ColumnScoreOutput; failed: FailedPoint[] }> {
    if (to === from) return { output: emptyOutput(), failed: [] };
    const whole = from === 0 && to === input.n;
    let range = input;
    if (!whole) {
      range = this.takeBatch(to - from);
      copyPoints(input, from, to, range);
    }
    try {
      const output = detector.scoreColumns ? await detector.scoreColumns(range) : await scoreColumnsViaObjects(detector, range);
      if (from !== 0) {
        const points = output.sensor.point;
        for (let k = 0; k < output.sensor.n; k++) points[k] += from;
        for (const r of output.rejected) r.point += from;
      }
      return { output, failed: [] };
    } catch (err) {
      if (to - from === 1) return { output: emptyOutput(), failed: [{ point: from, error: asError(err) }] };
      const mid = (from + to) >> 1;
      // Copied before the next call: a detector may reuse its output columns from call to call.
      const a = await this.scoreIsolatingFailures(detector, input, from, mid);
      a.output = concatOutputs(a.output, emptyOutput());
      const b = await this.scoreIsolatingFailures(detector, input, mid, to);
      const failed = [...a.failed, ...b.failed];
      if (failed.length === to - from) throw err;
      return { output: concatOutputs(a.output, b.output), failed };
    } finally {
      if (!whole) this.recycle(range);
    }
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
