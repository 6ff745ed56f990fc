/**
 * The durable webhook outbox. Every notification is journaled before the first attempt and leaves
 * the journal only when it is delivered (2xx), rejected (4xx other than 408/429: retrying cannot
 * help) or expired (its deadline passed). Each receiver is one FIFO lane, one request in flight,
 * so a group's `resolved` never overtakes its `firing`; lanes are independent, so one dead
 * receiver does not hold up the others.
 *
 * Status handling (after Telegraf's HTTP outputs):
 *   2xx                  delivered
 *   408, 429, 5xx, network error, timeout
 *                        retried: exponential backoff with jitter, at least Retry-After, until the deadline
 *   other 3xx/4xx        rejected: logged with the status and the start of the response, not retried
 */
import type { Logger } from '../../common/logger.ts';
import { backoffDelay } from '../../common/retry.ts';
import type { Clock, TimerHandle } from './clock.ts';
import type { ReceiverConfig } from './config.schema.ts';
import type { JournalOp } from './journal.ts';
import type { AlertsMetrics } from './metrics.ts';
import { signedHeaders } from './webhook.ts';

export interface Delivery {
  /** The Standard Webhooks `webhook-id`: fixed for the life of the delivery, retries included. */
  id: string;
  receiver: string;
  /** Exact bytes sent on every attempt (the signature covers them). */
  body: string;
  groupKey: string;
  status: 'firing' | 'resolved';
  createdAt: number;
  deadlineAt: number;
  attempts: number;
  nextAttemptAt: number;
}

export type DeliveryOutcome = 'sent' | 'rejected' | 'expired';

export interface OutboxOptions {
  receivers: ReceiverConfig[];
  clock: Clock;
  persist: (op: JournalOp) => number;
  metrics: AlertsMetrics;
  logger: Logger;
  random?: () => number;
  /** How long close() lets in-flight requests finish before aborting them. */
  closeGraceMs?: number;
  /** Observer for tests and events: called after a delivery leaves the outbox. */
  onOutcome?: (d: Delivery, outcome: DeliveryOutcome, httpStatus: number | null) => void;
}

interface Lane {
  name: string;
  cfg: ReceiverConfig | undefined;
  queue: Delivery[];
  inFlight: Promise<void> | null;
  timer?: TimerHandle;
  timerAt?: number;
  tokens: number;
  refilledAt: number;
}

export class Outbox {
  private readonly opts: OutboxOptions;
  private readonly lanes = new Map<string, Lane>();
  private readonly abort = new AbortController();
  private started = false;
  private closed = false;
  private readonly log: Logger;

  constructor(opts: OutboxOptions) {
    this.opts = opts;
    this.log = opts.logger;
    for (const cfg of opts.receivers) this.lane(cfg.name);
  }

  receiverConfig(name: string): ReceiverConfig | undefined {
    return this.opts.receivers.find((r) => r.name === name);
  }

  private lane(name: string): Lane {
    let lane = this.lanes.get(name);
    if (!lane) {
      const cfg = this.receiverConfig(name);
      lane = { name, cfg, queue: [], inFlight: null, tokens: cfg?.rateLimit.burst ?? 1, refilledAt: this.opts.clock.now() };
      this.lanes.set(name, lane);
    }
    return lane;
  }

  /** Takes deliveries that the caller has already journaled. */
  accept(deliveries: Delivery[]): void {
    for (const d of deliveries) this.lane(d.receiver).queue.push(d);
    this.updateDepth();
    // Later, not inside the caller's commit: a bookkeeping failure here must not undo its commit.
    if (this.started) for (const d of deliveries) queueMicrotask(() => this.safePump(this.lane(d.receiver)));
  }

  start(): void {
    this.started = true;
    for (const lane of this.lanes.values()) {
      if (!lane.cfg && lane.queue.length > 0) {
        this.log.warn({ receiver: lane.name, queued: lane.queue.length }, 'outbox holds notifications for a receiver that is not configured; they are kept until their deadline');
      }
      this.safePump(lane);
    }
  }

  /** `pump` for timers and callbacks: a failure (journal write) is logged and retried later. */
  private safePump(lane: Lane): void {
    try {
      this.pump(lane);
    } catch (err) {
      this.log.error({ receiver: lane.name, err: (err as Error).message }, 'outbox bookkeeping failed; retrying in 5 s');
      this.wake(lane, 5_000);
    }
  }

  depth(receiver?: string): number {
    if (receiver !== undefined) return this.lanes.get(receiver)?.queue.length ?? 0;
    let n = 0;
    for (const l of this.lanes.values()) n += l.queue.length;
    return n;
  }

  pending(): Delivery[] {
    return [...this.lanes.values()].flatMap((l) => l.queue);
  }

  private updateDepth(): void {
    for (const lane of this.lanes.values()) this.opts.metrics.outboxDepth.set({ receiver: lane.name }, lane.queue.length);
  }

  private wake(lane: Lane, inMs: number): void {
    const at = this.opts.clock.now() + inMs;
    if (lane.timer && lane.timerAt !== undefined && lane.timerAt <= at) return;
    this.opts.clock.clearTimeout(lane.timer);
    lane.timerAt = at;
    lane.timer = this.opts.clock.setTimeout(() => {
      lane.timer = undefined;
      lane.timerAt = undefined;
      this.safePump(lane);
    }, inMs);
  }

  private pump(lane: Lane): void {
    if (!this.started || this.closed || lane.inFlight || lane.queue.length === 0) return;
    const now = this.opts.clock.now();
    const head = lane.queue[0];
    if (head.deadlineAt <= now) {
      this.finish(lane, head, 'expired', null);
      this.log.error({ receiver: lane.name, webhookId: head.id, attempts: head.attempts }, 'webhook notification expired: deadline passed before a receiver accepted it');
      return this.pump(lane);
    }
    const cfg = lane.cfg;
    if (!cfg) return this.wake(lane, Math.max(1, head.deadlineAt - now));
    if (head.nextAttemptAt > now) return this.wake(lane, head.nextAttemptAt - now);
    // Token bucket per receiver.
    const perMs = cfg.rateLimit.perSecond / 1000;
    lane.tokens = Math.min(cfg.rateLimit.burst, lane.tokens + (now - lane.refilledAt) * perMs);
    lane.refilledAt = now;
    if (lane.tokens < 1) return this.wake(lane, Math.ceil((1 - lane.tokens) / perMs));
    lane.tokens -= 1;
    lane.inFlight = this.attempt(lane, cfg, head)
      .catch((err: unknown) => {
        // The journal could not record the outcome (e.g. disk full): keep the delivery and try
        // again later rather than spin; a resend carries the same webhook-id.
        head.nextAttemptAt = this.opts.clock.now() + 5_000;
        this.log.error({ receiver: lane.name, webhookId: head.id, err: (err as Error).message }, 'outbox bookkeeping failed; delivery kept for a later attempt');
      })
      .finally(() => {
        lane.inFlight = null;
        this.safePump(lane);
      });
  }

  private async attempt(lane: Lane, cfg: ReceiverConfig, d: Delivery): Promise<void> {
    const now = this.opts.clock.now();
    const headers: Record<string, string> = {
      ...cfg.headers,
      'content-type': 'application/json',
      'user-agent': 'plantwatch-alerts/1',
    };
    if (cfg.secret) Object.assign(headers, signedHeaders(cfg.secret, d.id, Math.floor(now / 1000), d.body));
    else headers['webhook-id'] = d.id;
    const started = performance.now();
    let status: number | null = null;
    let retryAfterMs = 0;
    let excerpt = '';
    let error: string | null = null;
    try {
      const res = await fetch(cfg.url, {
        method: 'POST',
        headers,
        body: d.body,
        signal: AbortSignal.any([AbortSignal.timeout(cfg.timeoutMs), this.abort.signal]),
      });
      status = res.status;
      retryAfterMs = parseRetryAfter(res.headers.get('retry-after'), this.opts.clock.now());
      excerpt = (await res.text().catch(() => '')).slice(0, 300);
    } catch (err) {
      error = (err as Error).name === 'TimeoutError' ? `timeout after ${cfg.timeoutMs} ms` : String((err as Error).cause ?? (err as Error).message);
    }
    // Closed while waiting: the delivery stays journaled and is resent (same webhook-id) after a restart.
    if (this.closed) return;
    this.opts.metrics.webhookLatency.observe({ receiver: lane.name }, (performance.now() - started) / 1000);

    if (status !== null && status >= 200 && status < 300) {
      this.finish(lane, d, 'sent', status);
      return;
    }
    const retriable = status === null || status === 408 || status === 429 || status >= 500;
    if (!retriable) {
      this.finish(lane, d, 'rejected', status);
      this.log.error({ receiver: lane.name, webhookId: d.id, status, response: excerpt }, 'webhook rejected by receiver (not retried)');
      return;
    }
    const attempts = d.attempts + 1;
    const delay = Math.max(backoffDelay({ ...cfg.retry, retries: Infinity }, attempts, this.opts.random), retryAfterMs);
    const after = this.opts.clock.now();
    if (after + delay > d.deadlineAt) {
      this.finish(lane, d, 'expired', status);
      this.log.error({ receiver: lane.name, webhookId: d.id, attempts, status, error }, 'webhook notification expired: deadline passed before a receiver accepted it');
      return;
    }
    this.opts.persist({ t: 'attempt', id: d.id, receiver: lane.name, attempts, nextAttemptAt: after + delay });
    d.attempts = attempts;
    d.nextAttemptAt = after + delay;
    this.opts.metrics.webhookRetries.inc({ receiver: lane.name });
    this.log.warn({ receiver: lane.name, webhookId: d.id, attempts, status, error, retryInMs: delay }, 'webhook attempt failed; will retry');
  }

  private finish(lane: Lane, d: Delivery, outcome: DeliveryOutcome, status: number | null): void {
    this.opts.persist({ t: 'delivered', id: d.id, receiver: lane.name, outcome });
    const i = lane.queue.indexOf(d);
    if (i >= 0) lane.queue.splice(i, 1);
    if (outcome === 'sent') this.opts.metrics.webhookSent.inc({ receiver: lane.name });
    else this.opts.metrics.webhookFailed.inc({ receiver: lane.name, reason: outcome });
    this.updateDepth();
    this.opts.onOutcome?.(d, outcome, status);
  }

  snapshot(): Delivery[] {
    return this.pending();
  }

  restore(snap: Delivery[] | undefined, ops: { op: JournalOp }[]): void {
    const byId = new Map<string, Delivery>();
    for (const d of snap ?? []) byId.set(d.id, d);
    for (const { op } of ops) {
      if (op.t === 'notify') for (const d of (op.deliveries as Delivery[] | undefined) ?? []) byId.set(d.id, d);
      else if (op.t === 'attempt') {
        const d = byId.get(op.id as string);
        if (d) {
          d.attempts = op.attempts as number;
          d.nextAttemptAt = op.nextAttemptAt as number;
        }
      } else if (op.t === 'delivered') byId.delete(op.id as string);
    }
    const all = [...byId.values()].sort((a, b) => a.createdAt - b.createdAt);
    for (const d of all) this.lane(d.receiver).queue.push(d);
    this.updateDepth();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    const inFlight = [...this.lanes.values()].map((l) => l.inFlight).filter((p): p is Promise<void> => p !== null);
    for (const lane of this.lanes.values()) this.opts.clock.clearTimeout(lane.timer);
    this.started = false;
    if (inFlight.length > 0) {
      let t: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolve) => {
        t = setTimeout(resolve, this.opts.closeGraceMs ?? 2_000);
      });
      await Promise.race([Promise.all(inFlight), grace]);
      clearTimeout(t);
    }
    this.closed = true;
    this.abort.abort();
    await Promise.allSettled(inFlight);
  }
}

/** Retry-After is either delay-seconds or an HTTP-date (RFC 9110 §10.2.3); returns ms, 0 if absent/bad. */
export function parseRetryAfter(value: string | null, nowMs: number): number {
  if (!value) return 0;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isFinite(at) ? Math.max(0, at - nowMs) : 0;
}
