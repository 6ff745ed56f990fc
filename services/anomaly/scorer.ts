/**
 * Batching across streams. Every partition batch the consumer hands over is queued; whenever the
 * detector is free, queued readings are scored in ONE `scoreBatch` call, so under load batches grow
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
import type { Reading } from '../../common/messages.ts';
import type { ScoreOutputLike, ScoringDetector } from './detector-port.ts';

export interface FailedReading {
  reading: Reading;
  error: Error;
}

export interface ScoredGroup<T> {
  output: ScoreOutputLike;
  /** Readings the detector threw on even when scored alone (dead-lettered by the caller). */
  failed: FailedReading[];
  items: T[];
  readings: number;
  scoreMs: number;
}

export interface BatchScorerOptions<T> {
  detector: () => ScoringDetector;
  deliver: (group: ScoredGroup<T>) => Promise<void>;
  /** Runs right after scoring, before the next call or exclusive work. */
  afterScore?: (group: ScoredGroup<T>) => void;
  /** Hard cap on readings per `scoreBatch` call. */
  maxReadings: number;
  maxInFlight: number;
  /** Aim for calls of about this many ms (0: always up to `maxReadings`). */
  targetBatchMs?: number;
  /** The adaptive limit never goes below this (per-call costs stay shared). */
  minReadings?: number;
  now?: () => number;
}

interface Pending<T> {
  readings: Reading[];
  meta: T;
  resolve: () => void;
  reject: (err: unknown) => void;
  /** Readings handed to groups so far. */
  taken: number;
  /** Groups holding part of it that are not delivered yet. */
  outstanding: number;
  failed: boolean;
}

interface Part<T> {
  p: Pending<T>;
  from: number;
  to: number;
}

/** A FIFO async lock. */
export class Lock {
  private tail: Promise<unknown> = Promise.resolve();
  run<R>(fn: () => Promise<R>): Promise<R> {
    const result = this.tail.then(fn, fn);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

const EMPTY: ScoreOutputLike = { sensor: [], machine: [], rejected: [] };
/** Weight of the newest call in the cost-per-reading estimate. */
const COST_ALPHA = 0.2;

export class BatchScorer<T> {
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

  constructor(private readonly opts: BatchScorerOptions<T>) {
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

  submit(readings: Reading[], meta: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ readings, meta, resolve, reject, taken: 0, outstanding: 0, failed: false });
      this.queuedReadings += readings.length;
      this.unscored += readings.length;
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
      const to = Math.min(p.readings.length, p.taken + (limit - n));
      parts.push({ p, from: p.taken, to });
      p.outstanding++;
      n += to - p.taken;
      p.taken = to;
      if (to < p.readings.length) break;
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

  private async runGroup(parts: Part<T>[], items: T[], n: number): Promise<void> {
    let group: ScoredGroup<T>;
    try {
      const readings =
        parts.length === 1 && parts[0].from === 0 && parts[0].to === parts[0].p.readings.length
          ? parts[0].p.readings
          : parts.flatMap(({ p, from, to }) => (from === 0 && to === p.readings.length ? p.readings : p.readings.slice(from, to)));
      const started = this.now();
      const { output, failed } = await this.scoreIsolatingFailures(readings);
      const scoreMs = this.now() - started;
      if (n > 0) {
        const per = scoreMs / n;
        this.msPerReading = this.msPerReading === 0 ? per : this.msPerReading + COST_ALPHA * (per - this.msPerReading);
      }
      group = { output, failed, items, readings: n, scoreMs };
      this.opts.afterScore?.(group);
    } catch (err) {
      this.busy = false;
      this.finish(parts, n, err);
      return;
    }
    // The detector is free: score the next group while this one is produced.
    this.busy = false;
    this.pump();
    try {
      await this.opts.deliver(group);
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
        if (p.taken < p.readings.length && this.queue[0] === p) {
          this.queue.shift();
          this.queuedReadings -= p.readings.length - p.taken;
          this.unscored -= p.readings.length - p.taken;
          this.wakeBelow();
          p.taken = p.readings.length;
        }
      } else if (!p.failed && p.outstanding === 0 && p.taken === p.readings.length) p.resolve();
    }
    this.pump();
    if (this.queue.length === 0 && this.inFlight === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }
  /**
   * A detector that throws on a batch is retried on halves until the reading that makes it throw is
   * alone; that one is reported as failed and the rest are scored. If every reading fails alone too,
   * the fault is not in the data (e.g. the backend died): rethrow, so nothing is committed.
   */
  private async scoreIsolatingFailures(readings: Reading[]): Promise<{ output: ScoreOutputLike; failed: FailedReading[] }> {
    if (readings.length === 0) return { output: EMPTY, failed: [] };
    const detector = this.opts.detector();
    try {
      return { output: await detector.scoreBatch(readings), failed: [] };
    } catch (err) {
      if (readings.length === 1) return { output: EMPTY, failed: [{ reading: readings[0], error: asError(err) }] };
      const mid = readings.length >> 1;
      const a = await this.scoreIsolatingFailures(readings.slice(0, mid));
      const b = await this.scoreIsolatingFailures(readings.slice(mid));
      const failed = [...a.failed, ...b.failed];
      if (failed.length === readings.length) throw err;
      return {
        output: {
          sensor: [...a.output.sensor, ...b.output.sensor],
          machine: [...a.output.machine, ...b.output.machine],
          rejected: [...a.output.rejected, ...b.output.rejected],
        },
        failed,
      };
    }
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
