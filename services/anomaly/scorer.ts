/**
 * Batching across streams. Every partition batch the consumer hands over is queued; whenever the
 * detector is free, everything queued (up to `maxReadings`) is scored in ONE `scoreBatch` call, so
 * under load batches grow and the per-call cost is shared by more readings. While one group's
 * scores are being produced the next group is already being scored; at most `maxInFlight` groups
 * exist at once, which bounds the readings held in memory. `submit` resolves only after `deliver`
 * (the produce, acks=-1) succeeded, so the caller may commit offsets then.
 *
 * Detector calls (score, snapshot, model swap) are serialised by one lock: a stream's readings are
 * scored in the order they were submitted and a snapshot never sees half a batch.
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
  /** Runs under the detector lock right after scoring, before the next batch or a snapshot. */
  afterScore?: (group: ScoredGroup<T>) => void;
  maxReadings: number;
  maxInFlight: number;
  now?: () => number;
}

interface Pending<T> {
  readings: Reading[];
  meta: T;
  resolve: () => void;
  reject: (err: unknown) => void;
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

export class BatchScorer<T> {
  private readonly queue: Pending<T>[] = [];
  private queuedReadings = 0;
  private scoring = false;
  private inFlight = 0;
  private readonly lock = new Lock();
  private idleWaiters: (() => void)[] = [];
  private readonly now: () => number;

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

  submit(readings: Reading[], meta: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ readings, meta, resolve, reject });
      this.queuedReadings += readings.length;
      this.pump();
    });
  }

  /** Runs `fn` with the detector to itself (no scoring in between): snapshots, swaps. */
  exclusive<R>(fn: () => Promise<R>): Promise<R> {
    return this.lock.run(fn);
  }

  /** Resolves once nothing is queued, scored or being delivered. */
  idle(): Promise<void> {
    if (this.queue.length === 0 && this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    if (this.scoring || this.inFlight >= this.opts.maxInFlight || this.queue.length === 0) return;
    const take: Pending<T>[] = [];
    let n = 0;
    while (this.queue.length > 0 && (take.length === 0 || n + this.queue[0].readings.length <= this.opts.maxReadings)) {
      const p = this.queue.shift()!;
      take.push(p);
      n += p.readings.length;
    }
    this.scoring = true;
    this.inFlight++;
    void this.runGroup(take, n);
  }

  private async runGroup(take: Pending<T>[], n: number): Promise<void> {
    let group: ScoredGroup<T> | undefined;
    try {
      const readings = take.length === 1 ? take[0].readings : take.flatMap((p) => p.readings);
      group = await this.lock.run(async () => {
        const started = this.now();
        const { output, failed } = await this.scoreIsolatingFailures(readings);
        const g: ScoredGroup<T> = { output, failed, items: take.map((p) => p.meta), readings: n, scoreMs: this.now() - started };
        this.opts.afterScore?.(g);
        return g;
      });
    } catch (err) {
      this.scoring = false;
      this.finish(take, n, err);
      return;
    }
    // The detector is free: score the next group while this one is produced.
    this.scoring = false;
    this.pump();
    try {
      await this.opts.deliver(group);
      this.finish(take, n, undefined);
    } catch (err) {
      this.finish(take, n, err);
    }
  }

  private finish(take: Pending<T>[], n: number, err: unknown): void {
    this.queuedReadings -= n;
    this.inFlight--;
    for (const p of take) {
      if (err === undefined) p.resolve();
      else p.reject(err);
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
