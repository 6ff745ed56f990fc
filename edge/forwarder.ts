/**
 * Delivery to Kafka with store-and-forward.
 *
 * `submit(records)` resolves once the records are durable: acknowledged by Kafka (acks=-1, all
 * in-sync replicas) or written (and fsynced) to the on-disk spool. Callers acknowledge MQTT
 * messages only then, so "PUBACK" means "durably stored".
 *
 * Modes:
 * - direct: records are batched (linger, max records/bytes) and sent one batch at a time. One batch
 *   in flight keeps per-key order without an idempotent producer; the next batch fills meanwhile.
 * - spool: after a failed or too-slow send the failed batch and everything after it go to the spool,
 *   in arrival order. A replay loop drains the spool into Kafka; when it has caught up (spool and
 *   queue empty in the same synchronous step) the forwarder goes direct again. Order per key holds
 *   because nothing bypasses the spool while it holds records.
 * - spool full: `whenFull: backpressure` leaves submits pending (MQTT acks stop, devices retry);
 *   `drop` resolves them and counts the dropped records.
 *
 * Delivery is at-least-once: a send that timed out may still land, and a crash between a replayed
 * batch's ack and the cursor write replays it again. Consumers dedupe or tolerate duplicates.
 */
import type { Logger } from '../common/logger.ts';
import type { OutRecord } from './pipeline.ts';
import { Spool } from './spool.ts';
import type { EdgeMetrics } from './metrics.ts';
import { backoffDelay, sleep } from '../common/retry.ts';

export interface KafkaSink {
  /** Resolves when every record is acknowledged by all in-sync replicas. */
  send(records: OutRecord[]): Promise<void>;
}

export interface ForwarderOptions {
  lingerMs: number;
  maxBatchRecords: number;
  maxBatchBytes: number;
  sendTimeoutMs: number;
  maxPendingRecords: number;
  retryInitialMs: number;
  retryMaxMs: number;
  whenFull: 'backpressure' | 'drop';
}

interface Entry {
  records: OutRecord[];
  bytes: number;
  resolve: () => void;
  reject: (err: Error) => void;
  submittedAt: number;
}

export type ForwarderMode = 'direct' | 'spool';

function recordBytes(r: OutRecord): number {
  return r.value.length + r.key.length + r.topic.length + 16;
}

class SendTimeout extends Error {
  constructor(ms: number) {
    super(`Kafka did not acknowledge within ${ms} ms`);
  }
}

export class Forwarder {
  private queue: Entry[] = [];
  private queuedRecords = 0;
  private inFlight: Promise<void> | null = null;
  /** A direct send that timed out but may still succeed; it is the first thing in the spool. */
  private abandoned: { send: Promise<boolean>; records: number } | null = null;
  private lingerTimer: NodeJS.Timeout | null = null;
  private spoolFlushScheduled = false;
  private replaying: Promise<void> | null = null;
  private mode: ForwarderMode;
  private closing = false;
  private readonly abort = new AbortController();

  constructor(
    private readonly sink: KafkaSink,
    private readonly spool: Spool,
    private readonly opts: ForwarderOptions,
    private readonly metrics: EdgeMetrics,
    private readonly log: Logger,
  ) {
    // Records left in the spool by an earlier run are replayed before anything new.
    this.mode = spool.isEmpty ? 'direct' : 'spool';
    // Read at scrape time: a gauge update per message costs more than it tells.
    this.metrics.onCollect(() => this.metrics.pending.set(this.queuedRecords));
    this.metrics.spoolBytes.set(spool.bytes);
    if (this.mode === 'spool') {
      this.log.info({ spoolBytes: spool.bytes }, 'spool holds records from an earlier run: replaying first');
      this.startReplay();
    }
  }

  get currentMode(): ForwarderMode {
    return this.mode;
  }

  /** Records accepted but not yet durable. */
  get pendingRecords(): number {
    return this.queuedRecords;
  }

  /** True when intake should wait for durability even for QoS 0. */
  get saturated(): boolean {
    return this.queuedRecords >= this.opts.maxPendingRecords;
  }

  submit(records: OutRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    if (this.closing) return Promise.reject(new Error('edge forwarder is closing'));
    return new Promise<void>((resolve, reject) => {
      let bytes = 0;
      for (const r of records) bytes += recordBytes(r);
      this.queue.push({ records, bytes, resolve, reject, submittedAt: performance.now() });
      this.queuedRecords += records.length;
      this.kick();
    });
  }

  private kick(): void {
    if (this.mode === 'spool') {
      if (!this.spoolFlushScheduled) {
        this.spoolFlushScheduled = true;
        setImmediate(() => {
          this.spoolFlushScheduled = false;
          this.flushQueueToSpool();
        });
      }
      return;
    }
    if (this.inFlight) return;
    if (this.queuedRecords >= this.opts.maxBatchRecords || this.opts.lingerMs === 0) {
      this.sendNext();
      return;
    }
    this.lingerTimer ??= setTimeout(() => {
      this.lingerTimer = null;
      if (!this.inFlight && this.mode === 'direct') this.sendNext();
    }, this.opts.lingerMs);
  }

  private takeBatch(): Entry[] {
    let k = 0;
    let n = 0;
    let bytes = 0;
    while (k < this.queue.length) {
      const e = this.queue[k];
      if (k > 0 && (n + e.records.length > this.opts.maxBatchRecords || bytes + e.bytes > this.opts.maxBatchBytes)) break;
      k++;
      n += e.records.length;
      bytes += e.bytes;
    }
    // One splice per batch: shift() per entry is quadratic on a long queue.
    return this.queue.splice(0, k);
  }

  private sendNext(): void {
    if (this.lingerTimer) {
      clearTimeout(this.lingerTimer);
      this.lingerTimer = null;
    }
    if (this.queue.length === 0 || this.mode !== 'direct') return;
    const batch = this.takeBatch();
    const records = batch.flatMap((e) => e.records);
    const started = performance.now();
    this.inFlight = this.sendWithTimeout(records).then(
      () => {
        const now = performance.now();
        this.metrics.kafkaLatency.observe((now - started) / 1000);
        this.countForwarded(records);
        for (const e of batch) {
          this.metrics.ackLatency.observe((now - e.submittedAt) / 1000);
          this.settle(e);
        }
        this.inFlight = null;
        // What queued up during the flight is a batch already: no extra linger.
        if (this.queue.length > 0 && this.mode === 'direct') this.sendNext();
      },
      (err: Error) => {
        this.inFlight = null;
        this.metrics.kafkaErrors.inc();
        this.log.warn({ err: err.message, records: records.length }, 'Kafka send failed: spooling to disk until Kafka is back');
        // The failed batch goes first, then everything queued after it: arrival order is kept.
        this.queue.unshift(...batch);
        this.enterSpoolMode();
      },
    );
  }

  private settle(e: Entry): void {
    this.queuedRecords -= e.records.length;
    e.resolve();
  }

  private countForwarded(records: OutRecord[]): void {
    const byTopic = new Map<string, number>();
    for (const r of records) byTopic.set(r.topic, (byTopic.get(r.topic) ?? 0) + 1);
    for (const [topic, n] of byTopic) this.metrics.forwarded.inc({ topic }, n);
  }

  private sendWithTimeout(records: OutRecord[]): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const send = this.sink.send(records);
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // Too slow: the batch goes to the spool, but the send may still land. Remember it, so the
        // replay can skip the batch if it did (instead of writing it twice).
        this.abandoned = { send: send.then(() => true, () => false), records: records.length };
        reject(new SendTimeout(this.opts.sendTimeoutMs));
      }, this.opts.sendTimeoutMs);
    });
    return Promise.race([send, timeout]).finally(() => clearTimeout(timer));
  }

  private enterSpoolMode(): void {
    this.mode = 'spool';
    this.metrics.mode.set(1);
    this.flushQueueToSpool();
    this.startReplay();
  }

  /** Group commit: every queued entry in one write + fsync. Stops at the first entry that does not fit. */
  private flushQueueToSpool(): void {
    if (this.queue.length === 0) return;
    const take: Entry[] = [];
    let frames: Buffer[] = [];
    let size = 0;
    for (const e of this.queue) {
      const f = Spool.encode(e.records);
      if (!this.spool.hasRoomFor(size + f.length)) break;
      take.push(e);
      frames.push(f);
      size += f.length;
    }
    if (take.length > 0) {
      try {
        this.spool.append(Buffer.concat(frames));
      } catch (err) {
        // Disk error: nothing is acknowledged; the entries stay queued and are retried.
        this.log.error({ err }, 'spool write failed');
        this.metrics.spoolErrors.inc();
        return;
      }
      frames = [];
      this.queue.splice(0, take.length);
      let n = 0;
      for (const e of take) {
        n += e.records.length;
        this.settle(e);
      }
      this.metrics.spooled.inc(n);
      this.metrics.spoolBytes.set(this.spool.bytes);
    }
    if (this.queue.length > 0) {
      if (this.opts.whenFull === 'drop') {
        const dropped = this.queue.splice(0);
        let n = 0;
        for (const e of dropped) {
          n += e.records.length;
          this.settle(e);
        }
        this.metrics.dropped.inc(n);
        this.log.warn({ records: n, spoolBytes: this.spool.bytes }, 'spool full: dropped records (spool.whenFull=drop)');
      } else {
        this.metrics.backpressure.set(1);
      }
    }
  }

  private startReplay(): void {
    this.replaying ??= this.replayLoop()
      .catch((err) => {
        if (!this.abort.signal.aborted) this.log.error({ err }, 'spool replay stopped');
      })
      .finally(() => {
        this.replaying = null;
      });
  }

  private async replayLoop(): Promise<void> {
    let attempt = 0;
    const policy = { retries: Infinity, initialDelayMs: this.opts.retryInitialMs, maxDelayMs: this.opts.retryMaxMs, factor: 2 };
    if (this.abandoned) {
      const { send, records } = this.abandoned;
      this.abandoned = null;
      // The spool was empty in direct mode, so the abandoned batch is its first `records` records.
      if (await send) {
        const { next } = this.spool.read(records, Number.MAX_SAFE_INTEGER);
        this.spool.commit(next);
        this.metrics.spoolBytes.set(this.spool.bytes);
        this.log.info({ records }, 'a timed-out Kafka send landed after all: its spooled copy is skipped');
      }
    }
    while (!this.abort.signal.aborted) {
      // Anything queued goes behind what is already spooled.
      this.flushQueueToSpool();
      if (this.spool.isEmpty) {
        if (this.queue.length === 0) {
          // Caught up, in one synchronous step: new submits from here on go direct.
          this.mode = 'direct';
          this.metrics.mode.set(0);
          this.metrics.backpressure.set(0);
          this.log.info('spool drained: sending to Kafka directly again');
          return;
        }
        // Queue non-empty but the spool refused it: cannot happen with an empty spool unless one
        // entry exceeds maxBytes; send it directly instead of waiting forever.
        const big = this.queue[0];
        try {
          await this.sink.send(big.records);
        } catch (err) {
          attempt++;
          this.metrics.kafkaErrors.inc();
          await sleep(backoffDelay(policy, attempt), this.abort.signal).catch(() => undefined);
          continue;
        }
        attempt = 0;
        this.queue.shift();
        this.countForwarded(big.records);
        this.settle(big);
        continue;
      }
      let batch: ReturnType<Spool['read']>;
      try {
        batch = this.spool.read(this.opts.maxBatchRecords, this.opts.maxBatchBytes);
      } catch (err) {
        // A damaged frame in the middle of a segment (disk fault): what follows it in that segment
        // cannot be framed any more. Skip to the next segment rather than stall forever.
        this.metrics.spoolErrors.inc();
        this.log.error({ err }, 'spool segment damaged: skipping the rest of it');
        this.spool.skipSegment();
        continue;
      }
      const { records, next } = batch;
      if (records.length === 0) continue;
      const started = performance.now();
      try {
        // No timeout race here: a replayed batch that is merely slow must not be sent twice; the
        // Kafka client's own request timeout ends a hung send.
        await this.sink.send(records);
      } catch (err) {
        attempt++;
        this.metrics.kafkaErrors.inc();
        const delay = backoffDelay(policy, attempt);
        if (attempt === 1 || attempt % 10 === 0) this.log.warn({ err: (err as Error).message, attempt, delayMs: delay, spoolBytes: this.spool.bytes }, 'Kafka still unavailable; spool replay retrying');
        await sleep(delay, this.abort.signal).catch(() => undefined);
        continue;
      }
      attempt = 0;
      this.metrics.kafkaLatency.observe((performance.now() - started) / 1000);
      this.spool.commit(next);
      this.countForwarded(records);
      this.metrics.replayed.inc(records.length);
      this.metrics.spoolBytes.set(this.spool.bytes);
    }
  }

  /** Stop taking records, deliver or spool what is pending, stop replay, close the spool. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.lingerTimer) {
      clearTimeout(this.lingerTimer);
      this.lingerTimer = null;
    }
    // Drain direct sends; a failure switches to spool mode, which writes the queue to disk.
    while (this.mode === 'direct' && (this.inFlight || this.queue.length > 0)) {
      if (this.inFlight) await this.inFlight;
      else this.sendNext();
    }
    this.abort.abort();
    if (this.replaying) await this.replaying;
    if (this.inFlight) await this.inFlight;
    this.flushQueueToSpool();
    // Whatever still could not be written (spool full) is not acknowledged; devices resend it.
    for (const e of this.queue.splice(0)) e.reject(new Error('edge closed before the records were durable'));
    this.queuedRecords = 0;
    this.spool.close();
  }
}
