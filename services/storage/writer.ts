/**
 * The write pipeline of the storage writer, independent of the Kafka client so it can be driven
 * by tests and the benchmark: records in → validated points → batches (size or linger) → the store
 * (`concurrency` batches in flight, retried with backoff while the database is away) → offsets
 * that may be committed.
 *
 * What happens to what (Telegraf's status table, applied by the stores):
 * - record not JSON / not a valid Reading, Score or Alert → dead letter `STORAGE_RECORD_INVALID`;
 * - point refused by the database (400/422, single point 413) or older than raw retention →
 *   dead letter with the store's code; counted as rejected;
 * - point refused by the cardinality guard → counted and logged by the guard, not dead-lettered
 *   (a runaway device would flood the dead-letter topic at sensor rate);
 * - store unavailable (5xx, 429, timeouts, connection refused, 401/403) → retried forever with
 *   backoff, honouring Retry-After; nothing is committed meanwhile and intake stops at
 *   `maxBufferedPoints`.
 * A message's offset becomes committable only when all its points reached one of those ends.
 */
import { z } from 'zod';
import { Alert, ReadingRecord, ScoreRecord, describeZodError, type DeadLetter, type MachineScore, type Reading, type SensorScore } from '../../common/messages.ts';
import { TOPICS } from '../../common/topics.ts';
import type { Logger } from '../../common/logger.ts';
import { prom, type Registry } from '../../common/metrics.ts';
import { backoffDelay, sleep } from '../../common/retry.ts';
import type { BatchWriteResult, StorageBackend } from './backend.ts';
import type { WriteResult } from './store.ts';
import { getOrCreate } from './cardinality.ts';
import { STORAGE_ERRORS, StorageUnavailableError } from './errors.ts';
import { OffsetTracker, type CommittableOffset, type MessageToken } from './offsets.ts';
import { readingsFast } from './fast-validate.ts';
import { ReadingBatch, ReadingDecoder } from '../../common/reading-batch.ts';

export const AlertRecord = z.union([Alert, z.array(Alert).min(1)]);

export type PointKind = 'readings' | 'scores' | 'alerts';

export interface WriterRecord {
  topic: string;
  partition: number;
  offset: string;
  key?: Buffer | string | null;
  value: Buffer | null;
}

export interface WriterOptions {
  batchSize: number;
  lingerMs: number;
  concurrency: number;
  maxBufferedPoints: number;
  retryInitialDelayMs: number;
  retryMaxDelayMs: number;
  commitIntervalMs: number;
}

export interface WriterDeps {
  store: StorageBackend;
  logger: Logger;
  metrics: Registry;
  /** Sends one dead letter (to `plantwatch.deadletter`); rejects when it could not be delivered. */
  deadLetter(dl: DeadLetter, key: string | null): Promise<void>;
  /** Commits offsets (to Kafka); a rejection is logged and retried with the next round. */
  commit(offsets: CommittableOffset[]): Promise<void>;
}

type PointValue = Reading | SensorScore | MachineScore | Alert;

/** One per Kafka message, shared by its points. */
interface MessageRef {
  token: MessageToken;
  record: WriterRecord;
}

/**
 * Readings in columns (reading-batch.ts) with the messages they came from; records are never split,
 * so a message is finished with one tracker call when its batch is stored.
 */
interface ReadingBuffer {
  batch: ReadingBatch;
  msgs: MessageRef[];
  /** Point index after each message's last point. */
  msgEnd: number[];
  /** When the first point arrived (linger). */
  since: number;
}

/** Scores and alerts (low volume): points and their messages in two parallel arrays. */
interface Buffer_ {
  values: PointValue[];
  refs: MessageRef[];
  /** When the oldest buffered point arrived (linger). */
  since: number;
}

const TOPIC_KIND: Record<string, PointKind> = {
  [TOPICS.readings]: 'readings',
  [TOPICS.scores]: 'scores',
  [TOPICS.alerts]: 'alerts',
};

function createMetrics(registry: Registry) {
  const counter = <L extends string>(name: string, help: string, labelNames: L[]) =>
    getOrCreate(registry, name, () => new prom.Counter({ name, help, labelNames, registers: [registry] })) as prom.Counter<L>;
  return {
    written: counter('plantwatch_storage_points_written_total', 'Points acknowledged by the store', ['kind']),
    rejected: counter('plantwatch_storage_points_rejected_total', 'Points refused (by the database, the retention edge or the cardinality guard)', ['kind', 'code']),
    deadLettered: counter('plantwatch_storage_dead_lettered_total', 'Records or points sent to the dead-letter topic', ['code']),
    invalid: counter('plantwatch_storage_records_invalid_total', 'Kafka records that failed JSON or schema validation', ['topic']),
    retries: counter('plantwatch_storage_write_retries_total', 'Batch writes retried after a retriable error', ['kind', 'code']),
    commits: counter('plantwatch_storage_offset_commits_total', 'Offset commits to Kafka', ['result']),
    batchSize: getOrCreate(
      registry,
      'plantwatch_storage_batch_size_points',
      () => new prom.Histogram({ name: 'plantwatch_storage_batch_size_points', help: 'Points per batch write', labelNames: ['kind'], buckets: [1, 10, 100, 500, 1000, 2000, 5000, 10000, 20000], registers: [registry] }),
    ) as prom.Histogram<'kind'>,
    latency: getOrCreate(
      registry,
      'plantwatch_storage_write_duration_seconds',
      () => new prom.Histogram({ name: 'plantwatch_storage_write_duration_seconds', help: 'Latency of successful batch writes', labelNames: ['kind'], buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [registry] }),
    ) as prom.Histogram<'kind'>,
    buffered: getOrCreate(registry, 'plantwatch_storage_buffered_points', () => new prom.Gauge({ name: 'plantwatch_storage_buffered_points', help: 'Points accepted from Kafka and not yet stored', registers: [registry] })) as prom.Gauge,
    up: getOrCreate(registry, 'plantwatch_storage_store_up', () => new prom.Gauge({ name: 'plantwatch_storage_store_up', help: '1 when the last write reached the store, 0 while it is being retried', registers: [registry] })) as prom.Gauge,
  };
}

export class StorageWriter {
  private readonly tracker = new OffsetTracker();
  private readonly buffers: Record<PointKind, Buffer_> = {
    readings: { values: [], refs: [], since: 0 },
    scores: { values: [], refs: [], since: 0 },
    alerts: { values: [], refs: [], since: 0 },
  };
  /** Readings being collected, and full batches waiting for a write slot. */
  private readings: ReadingBuffer | undefined;
  private readonly readyReadings: ReadingBuffer[] = [];
  private readonly decoder = new ReadingDecoder();
  /** Written batches for reuse: allocating ~300 kB of columns per batch kept V8's GC busy. */
  private readonly batchPool: ReadingBatch[] = [];
  private readonly m: ReturnType<typeof createMetrics>;
  private readonly log: Logger;
  private inFlight = 0;
  /** Points (and dead letters) accepted and not finished. */
  private pending = 0;
  private lingerTimer: NodeJS.Timeout | undefined;
  private commitTimer: NodeJS.Timeout | undefined;
  private committing: Promise<void> = Promise.resolve();
  private roomWaiters: (() => void)[] = [];
  private idleWaiters: (() => void)[] = [];
  private flushAll = false;
  private readonly abort = new AbortController();
  private storeUp = true;
  private consecutiveFailures = 0;

  constructor(
    private readonly opts: WriterOptions,
    private readonly deps: WriterDeps,
  ) {
    this.m = createMetrics(deps.metrics);
    this.m.up.set(1);
    this.log = deps.logger;
  }

  get bufferedPoints(): number {
    return this.pending;
  }

  get healthy(): boolean {
    return this.storeUp;
  }

  /** Accepts records (any of the three topics); never blocks. Use `waitForRoom` for backpressure. */
  push(records: WriterRecord[]): void {
    if (this.abort.signal.aborted) throw new StorageUnavailableError('writer is closed');
    const now = Date.now();
    for (const record of records) {
      const kind = TOPIC_KIND[record.topic];
      if (kind === 'readings') {
        this.pushReadings(record, now);
        continue;
      }
      const parsed = kind ? this.parse(kind, record) : { error: `unexpected topic ${record.topic}` };
      if ('error' in parsed) {
        this.invalid(record, parsed.error);
        continue;
      }
      const token = this.tracker.track(record.topic, record.partition, record.offset, parsed.items.length);
      const buf = this.buffers[kind!];
      if (buf.values.length === 0) buf.since = now;
      const ref: MessageRef = { token, record };
      for (const value of parsed.items) {
        buf.values.push(value);
        buf.refs.push(ref);
      }
      this.pending += parsed.items.length;
    }
    this.m.buffered.set(this.pending);
    this.pump();
  }

  private invalid(record: WriterRecord, error: string): void {
    const token = this.tracker.track(record.topic, record.partition, record.offset, 1);
    this.pending++;
    this.m.invalid.inc({ topic: record.topic });
    this.sendDeadLetter(STORAGE_ERRORS.recordInvalid, error, record, record.value ?? Buffer.alloc(0)).then(() => this.finish(token, 1));
  }

  /** One readings record: decoded from its bytes into the current batch, or through JSON.parse + zod. */
  private pushReadings(record: WriterRecord, now: number): void {
    let buf = this.readings;
    if (!buf) this.readings = buf = { batch: this.batchPool.pop() ?? new ReadingBatch(this.opts.batchSize + 64), msgs: [], msgEnd: [], since: now };
    const batch = buf.batch;
    let n = record.value && record.value.length > 0 ? this.decoder.decode(record.value, batch) : -1;
    if (n < 0) {
      const parsed = this.parse('readings', record);
      if ('error' in parsed) {
        this.invalid(record, parsed.error);
        return;
      }
      for (const r of parsed.items) batch.pushReading(r as Reading, this.decoder.interner);
      n = parsed.items.length;
    }
    buf.msgs.push({ token: this.tracker.track(record.topic, record.partition, record.offset, n), record });
    buf.msgEnd.push(batch.n);
    this.pending += n;
    if (batch.n >= this.opts.batchSize) {
      this.readyReadings.push(buf);
      this.readings = undefined;
    }
  }

  private parse(kind: PointKind, record: WriterRecord): { items: PointValue[] } | { error: string } {
    if (!record.value || record.value.length === 0) return { error: 'empty record value' };
    let json: unknown;
    try {
      json = JSON.parse(record.value.toString('utf8'));
    } catch (err) {
      return { error: `value is not JSON: ${(err as Error).message}` };
    }
    if (kind === 'readings') {
      const fast = readingsFast(json);
      if (fast) return { items: fast };
    }
    const schema = kind === 'readings' ? ReadingRecord : kind === 'scores' ? ScoreRecord : AlertRecord;
    const res = schema.safeParse(json);
    if (!res.success) return { error: `invalid ${kind.slice(0, -1)}: ${describeZodError(res.error)}` };
    const data = res.data as PointValue | PointValue[];
    return { items: Array.isArray(data) ? data : [data] };
  }

  /** Resolves once fewer than `maxBufferedPoints` are pending (or the writer closes). */
  waitForRoom(): Promise<void> {
    if (this.pending < this.opts.maxBufferedPoints || this.abort.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  /** Writes everything buffered now (ignoring linger) and resolves when nothing is pending. */
  async drain(): Promise<void> {
    this.flushAll = true;
    this.pump();
    if (this.pending > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    this.flushAll = false;
    await this.commitNow();
  }

  /** Stops retrying; unfinished points stay uncommitted (replayed after restart). */
  stop(): void {
    this.abort.abort(new StorageUnavailableError('writer closing'));
    clearTimeout(this.lingerTimer);
    clearTimeout(this.commitTimer);
    for (const w of this.roomWaiters.splice(0)) w();
  }

  private pump(): void {
    const now = Date.now();
    while (this.inFlight < this.opts.concurrency && !this.abort.signal.aborted) {
      const r = this.readings;
      if (this.readyReadings.length === 0 && r && (this.flushAll || now - r.since >= this.opts.lingerMs)) {
        this.readyReadings.push(r);
        this.readings = undefined;
      }
      const ready = this.readyReadings.shift();
      if (ready) {
        this.inFlight++;
        void this.writeReadingBuffer(ready).finally(() => {
          this.inFlight--;
          this.pump();
        });
        continue;
      }
      const kind = (['scores', 'alerts'] as const).find((k) => {
        const b = this.buffers[k];
        return b.values.length >= this.opts.batchSize || (b.values.length > 0 && (this.flushAll || now - b.since >= this.opts.lingerMs));
      });
      if (!kind) break;
      const buf = this.buffers[kind];
      const values = buf.values.splice(0, this.opts.batchSize);
      const refs = buf.refs.splice(0, this.opts.batchSize);
      buf.since = now;
      this.inFlight++;
      void this.writeBatch(kind, values, refs).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
    this.armLinger(now);
  }

  private armLinger(now: number): void {
    if (this.lingerTimer || this.abort.signal.aborted) return;
    let due = Infinity;
    for (const b of Object.values(this.buffers)) if (b.values.length > 0) due = Math.min(due, b.since + this.opts.lingerMs);
    if (this.readings) due = Math.min(due, this.readings.since + this.opts.lingerMs);
    if (due === Infinity) return;
    this.lingerTimer = setTimeout(() => {
      this.lingerTimer = undefined;
      this.pump();
    }, Math.max(0, due - now));
  }

  /** Retries a store call with backoff until it succeeds or the writer closes (then undefined). */
  private async withRetry<T>(kind: PointKind, call: () => Promise<T>): Promise<T | undefined> {
    for (let attempt = 1; !this.abort.signal.aborted; attempt++) {
      const started = performance.now();
      try {
        const result = await call();
        this.m.latency.observe({ kind }, (performance.now() - started) / 1000);
        this.markUp();
        return result;
      } catch (err) {
        const code = (err as { code?: string }).code ?? 'UNKNOWN';
        const retryAfter = err instanceof StorageUnavailableError ? err.retryAfterMs : undefined;
        const delay = Math.max(retryAfter ?? 0, backoffDelay({ retries: Infinity, initialDelayMs: this.opts.retryInitialDelayMs, maxDelayMs: this.opts.retryMaxDelayMs, factor: 2 }, attempt));
        this.m.retries.inc({ kind, code });
        this.markDown(err, kind, attempt, delay);
        try {
          await sleep(delay, this.abort.signal);
        } catch {
          return undefined;
        }
      }
    }
    return undefined;
  }

  /** Writes a readings batch (columns when the store takes them) and finishes its messages. */
  private async writeReadingBuffer(buf: ReadingBuffer): Promise<void> {
    const { batch, msgs, msgEnd } = buf;
    const store = this.deps.store;
    const result = await this.withRetry('readings', async (): Promise<BatchWriteResult> => {
      if (store.writeReadingBatch) return store.writeReadingBatch(batch);
      // A store without the columnar path: objects, rejections mapped back to point indexes.
      const items = batch.toReadings();
      const res = await store.writeReadings(items);
      const index = new Map<unknown, number>(items.map((r, i) => [r, i]));
      return { written: res.written, rejected: res.rejected.map((r) => ({ index: index.get(r.item) ?? -1, code: r.code, reason: r.reason })) };
    });
    if (!result) return; // closing: left uncommitted, replayed after restart
    this.m.batchSize.observe({ kind: 'readings' }, batch.n);
    this.m.written.inc({ kind: 'readings' }, result.written);
    let advanced = false;
    if (result.rejected.length === 0) {
      let start = 0;
      for (let k = 0; k < msgs.length; k++) {
        if (this.tracker.done(msgs[k].token, msgEnd[k] - start)) advanced = true;
        start = msgEnd[k];
      }
      const n = batch.n;
      this.recycle(batch);
      this.afterFinish(n, advanced);
      return;
    }
    const rejectedAt = new Map<number, BatchWriteResult['rejected'][number]>();
    for (const r of result.rejected) {
      rejectedAt.set(r.index, r);
      this.m.rejected.inc({ kind: 'readings', code: r.code });
    }
    const deadLetters: Promise<void>[] = [];
    let finished = 0;
    let start = 0;
    for (let k = 0; k < msgs.length; k++) {
      const ref = msgs[k];
      let done = 0;
      for (let i = start; i < msgEnd[k]; i++) {
        const rej = rejectedAt.get(i);
        if (rej && rej.code !== STORAGE_ERRORS.cardinality) {
          deadLetters.push(this.sendDeadLetter(rej.code, rej.reason, ref.record, Buffer.from(JSON.stringify(batch.readingAt(i)))).then(() => this.finish(ref.token, 1)));
        } else done++;
      }
      if (done > 0 && this.tracker.done(ref.token, done)) advanced = true;
      finished += done;
      start = msgEnd[k];
    }
    this.recycle(batch); // dead letters hold their own copies of the refused points
    this.afterFinish(finished, advanced);
    await Promise.all(deadLetters);
  }

  private recycle(batch: ReadingBatch): void {
    if (this.batchPool.length >= 4 || batch.ts.length > 4 * (this.opts.batchSize + 64)) return;
    batch.clear();
    this.batchPool.push(batch);
  }

  private async writeBatch(kind: PointKind, values: PointValue[], refs: MessageRef[]): Promise<void> {
    const store = this.deps.store;
    const result: WriteResult | undefined = await this.withRetry(kind, () =>
      kind === 'readings' ? store.writeReadings(values as Reading[]) : kind === 'scores' ? store.writeScores(values as (SensorScore | MachineScore)[]) : store.writeAlerts(values as Alert[]),
    );
    if (!result) return; // closing: left uncommitted, replayed after restart
    this.m.batchSize.observe({ kind }, values.length);
    this.m.written.inc({ kind }, result.written);
    const rejectedItems = new Map<unknown, WriteResult['rejected'][number]>();
    for (const r of result.rejected) {
      rejectedItems.set(r.item, r);
      this.m.rejected.inc({ kind, code: r.code });
    }
    const deadLetters: Promise<void>[] = [];
    let advanced = false;
    let finished = 0;
    for (let i = 0; i < values.length; i++) {
      const ref = refs[i];
      const rej = rejectedItems.size > 0 ? rejectedItems.get(values[i]) : undefined;
      if (rej && rej.code !== STORAGE_ERRORS.cardinality) {
        deadLetters.push(this.sendDeadLetter(rej.code, rej.reason, ref.record, Buffer.from(JSON.stringify(values[i]))).then(() => this.finish(ref.token, 1)));
      } else {
        if (this.tracker.done(ref.token, 1)) advanced = true;
        finished++;
      }
    }
    this.afterFinish(finished, advanced);
    await Promise.all(deadLetters);
  }

  private markUp(): void {
    if (!this.storeUp) this.log.info({ failures: this.consecutiveFailures }, 'store reachable again; writing resumed');
    this.storeUp = true;
    this.consecutiveFailures = 0;
    this.m.up.set(1);
  }

  private markDown(err: unknown, kind: PointKind, attempt: number, delayMs: number): void {
    this.consecutiveFailures++;
    this.m.up.set(0);
    const wasUp = this.storeUp;
    this.storeUp = false;
    const retriable = err instanceof StorageUnavailableError;
    // First failure loudly, then every 20th so an outage does not flood the log.
    if (wasUp || this.consecutiveFailures % 20 === 0 || !retriable) {
      const level = retriable ? 'warn' : 'error';
      this.log[level]({ err, kind, attempt, retryInMs: delayMs, code: (err as { code?: string }).code }, retriable ? 'store write failed; retrying with backoff (offsets not committed)' : 'unexpected store error; retrying with backoff so no data is dropped');
    }
  }

  private async sendDeadLetter(code: string, reason: string, record: WriterRecord, raw: Buffer): Promise<void> {
    const dl: DeadLetter = {
      code,
      reason,
      component: 'storage',
      source: { topic: record.topic, partition: record.partition, offset: record.offset },
      rawBase64: raw.toString('base64'),
      receivedAt: Date.now(),
    };
    const key = record.key === undefined || record.key === null ? null : record.key.toString();
    for (let attempt = 1; ; attempt++) {
      try {
        await this.deps.deadLetter(dl, key);
        this.m.deadLettered.inc({ code });
        this.log.warn({ code, reason, source: dl.source }, 'dead-lettered');
        return;
      } catch (err) {
        if (this.abort.signal.aborted) return new Promise(() => undefined); // never finishes: not committed
        const delay = backoffDelay({ retries: Infinity, initialDelayMs: this.opts.retryInitialDelayMs, maxDelayMs: this.opts.retryMaxDelayMs, factor: 2 }, attempt);
        if (attempt === 1 || attempt % 20 === 0) this.log.warn({ err, attempt }, 'dead letter could not be sent; retrying');
        await sleep(delay, this.abort.signal).catch(() => undefined);
      }
    }
  }

  private finish(token: MessageToken, points: number): void {
    this.afterFinish(points, this.tracker.done(token, points));
  }

  private afterFinish(points: number, advanced: boolean): void {
    this.pending -= points;
    this.m.buffered.set(this.pending);
    if (advanced) this.scheduleCommit();
    if (this.pending < this.opts.maxBufferedPoints && this.roomWaiters.length > 0) for (const w of this.roomWaiters.splice(0)) w();
    if (this.pending === 0 && this.idleWaiters.length > 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  private scheduleCommit(): void {
    if (this.commitTimer || this.abort.signal.aborted) return;
    this.commitTimer = setTimeout(() => {
      this.commitTimer = undefined;
      void this.commitNow();
    }, this.opts.commitIntervalMs);
  }

  /** Commits whatever is committable now (serialized). */
  commitNow(): Promise<void> {
    this.committing = this.committing.then(async () => {
      const offsets = this.tracker.takeCommittable();
      if (offsets.length === 0) return;
      try {
        await this.deps.commit(offsets);
        this.m.commits.inc({ result: 'ok' });
      } catch (err) {
        this.m.commits.inc({ result: 'failed' });
        this.tracker.restore(offsets);
        this.log.warn({ err, offsets }, 'offset commit failed; retried next round (a crash now replays, which is idempotent)');
        this.scheduleCommit();
      }
    });
    return this.committing;
  }

  /**
   * After a rebalance: forget offsets of partitions this member no longer owns, so it never commits
   * for them (the new owner replays what was unfinished; writes are idempotent).
   */
  retainPartitions(assigned: { topic: string; partition: number }[]): { topic: string; partition: number }[] {
    return this.tracker.retain(assigned);
  }
}
