/**
 * LiveHub: from the live source to the sockets. Ingests readings/scores/alerts (recent buffer +
 * coalescer), authenticates sockets, handles subscriptions (Socket.IO rooms per site/line/machine),
 * sends backfill on subscribe and then the live stream with neither gap nor duplicate:
 *
 * 1. On `subscribe` the socket joins the scope's room at once and its live output is *held*.
 * 2. The backfill is read: store history/latest merged with the recent buffer (which covers the
 *    storage writer's lag), newer than the client's cursor. Per series, the newest event time sent
 *    becomes the socket's watermark.
 * 3. The ack carries the backfill; then the held items are released. Every live item for a series
 *    with a watermark passes only if newer (the watermark is then dropped: the coalesced stream is
 *    strictly increasing per series, so later items are newer still).
 *
 * Sockets without watermarks or held output receive shared payloads: sockets that watch the same
 * machines in a flush get one broadcast (encoded once).
 */
import { z } from 'zod';
import type { Server, Socket } from 'socket.io';
import type { Logger } from '../../common/logger.ts';
import { prom, type Registry } from '../../common/metrics.ts';
import { Identifier, type Alert, type Reading, type Score } from '../../common/messages.ts';
import type { TimeSeriesStore } from '../storage/store.ts';
import type { AlertsApi } from '../alerts/api.ts';
import type { GatewayConfig } from './config.schema.ts';
import { Authenticator, SESSION_COOKIE, canAcknowledge, parseCookies, type Principal } from './auth.ts';
import { Coalescer, type ItemKind, type LiveItem } from './coalescer.ts';
import { RecentBuffer, toLiveReading } from './recent.ts';
import type { LiveSink, LiveSource } from './live-source.ts';
import { GatewayError } from './errors.ts';
import {
  inScope,
  machineKeyOf,
  readingKey,
  scoreKey,
  type Backfill,
  type BackfillScoreSeries,
  type BackfillSeries,
  type Hello,
  type LivePayload,
  type LiveReading,
  type LiveScore,
  type MachineSummary,
  type Scope,
  type Status,
} from './protocol.ts';

const ScopeSchema = z
  .strictObject({ site: Identifier.optional(), line: Identifier.optional(), machine: Identifier.optional() })
  .refine((s) => (s.line === undefined || s.site !== undefined) && (s.machine === undefined || s.line !== undefined), 'line needs site; machine needs site and line');
const CursorMap = z.record(z.string().max(300), z.number()).refine((m) => Object.keys(m).length <= 50_000, 'at most 50000 cursor entries');
export const SubscribeSchema = z.strictObject({
  scope: ScopeSchema,
  history: z.strictObject({ windowMs: z.number().int().positive().optional(), maxPoints: z.number().int().positive().optional() }).optional(),
  cursor: z.strictObject({ readings: CursorMap.optional(), scores: CursorMap.optional(), alerts: CursorMap.optional() }).optional(),
});
const UnsubscribeSchema = z.strictObject({ id: z.string() });
const AlertAckSchema = z.strictObject({ fingerprint: z.string().min(1).max(512), comment: z.string().max(1000).optional() });

export function roomOf(scope: Scope): string {
  if (scope.machine !== undefined) return `m:${scope.site}/${scope.line}/${scope.machine}`;
  if (scope.line !== undefined) return `l:${scope.site}/${scope.line}`;
  if (scope.site !== undefined) return `s:${scope.site}`;
  return 'all';
}

interface Subscription {
  id: string;
  scope: Scope;
  room: string;
}

class Session {
  readonly subs = new Map<string, Subscription>();
  readonly roomRefs = new Map<string, number>();
  /** Backfills in flight: while > 0, live output is held. */
  backfilling = 0;
  held: LiveItem[] = [];
  /** Per-series watermark `<kind>|<key>` → newest event time the client already has. */
  readonly marks = new Map<string, number>();
  nextSub = 1;
  constructor(
    readonly socket: Socket,
    readonly principal: Principal,
  ) {}
  join(room: string): void {
    const n = this.roomRefs.get(room) ?? 0;
    this.roomRefs.set(room, n + 1);
    if (n === 0) void this.socket.join(room);
  }
  leave(room: string): void {
    const n = this.roomRefs.get(room) ?? 0;
    if (n <= 1) {
      this.roomRefs.delete(room);
      void this.socket.leave(room);
    } else this.roomRefs.set(room, n - 1);
  }
}

export interface HubMetrics {
  sockets: prom.Gauge;
  subscriptions: prom.Gauge;
  liveIn: prom.Counter<'kind'>;
  liveOutItems: prom.Counter<'kind'>;
  liveMessages: prom.Counter;
  slowClients: prom.Counter;
  coalesced: prom.Counter<'kind'>;
  late: prom.Counter<'kind'>;
  invalid: prom.Counter<'topic'>;
  authFailures: prom.Counter<'transport'>;
  backfillSeconds: prom.Histogram<'scope'>;
  flushSeconds: prom.Histogram;
  sourceFailures: prom.Counter<'source'>;
  ingestLag: prom.Histogram;
}

export function createHubMetrics(reg: Registry): HubMetrics {
  const kindLabel = ['kind'] as const;
  return {
    sockets: new prom.Gauge({ name: 'plantwatch_gateway_sockets', help: 'Connected, authenticated sockets', registers: [reg] }),
    subscriptions: new prom.Gauge({ name: 'plantwatch_gateway_subscriptions', help: 'Active subscriptions', registers: [reg] }),
    liveIn: new prom.Counter({ name: 'plantwatch_gateway_live_in_total', help: 'Live items received from the live source', labelNames: kindLabel, registers: [reg] }),
    liveOutItems: new prom.Counter({ name: 'plantwatch_gateway_live_out_items_total', help: 'Live items delivered to sockets (per socket)', labelNames: kindLabel, registers: [reg] }),
    liveMessages: new prom.Counter({ name: 'plantwatch_gateway_live_messages_total', help: 'Socket `live` messages sent (per socket)', registers: [reg] }),
    slowClients: new prom.Counter({ name: 'plantwatch_gateway_slow_clients_closed_total', help: 'Connections closed because too many messages were queued for them (they reconnect and resume from their cursors)', registers: [reg] }),
    coalesced: new prom.Counter({ name: 'plantwatch_gateway_coalesced_total', help: 'Live items replaced by a newer one of the same series before being sent', labelNames: kindLabel, registers: [reg] }),
    late: new prom.Counter({ name: 'plantwatch_gateway_late_dropped_total', help: 'Live items not pushed because a newer one of the series was already queued or sent (still stored)', labelNames: kindLabel, registers: [reg] }),
    invalid: new prom.Counter({ name: 'plantwatch_gateway_invalid_records_total', help: 'Kafka records that failed validation', labelNames: ['topic'] as const, registers: [reg] }),
    authFailures: new prom.Counter({ name: 'plantwatch_gateway_auth_failures_total', help: 'Refused authentications', labelNames: ['transport'] as const, registers: [reg] }),
    backfillSeconds: new prom.Histogram({ name: 'plantwatch_gateway_backfill_seconds', help: 'Time to build a subscription backfill', labelNames: ['scope'] as const, buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: [reg] }),
    flushSeconds: new prom.Histogram({ name: 'plantwatch_gateway_flush_seconds', help: 'Time of one live flush (fan-out to all sockets)', buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25], registers: [reg] }),
    ingestLag: new prom.Histogram({
      name: 'plantwatch_gateway_ingest_lag_seconds',
      help: 'Arrival at the gateway minus the reading event time: how far behind the pipeline up to the gateway is',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [reg],
    }),
    sourceFailures: new prom.Counter({ name: 'plantwatch_gateway_backfill_source_failures_total', help: 'Backfill reads that failed (subscription went live without that part)', labelNames: ['source'] as const, registers: [reg] }),
  };
}

export interface HubOptions {
  config: GatewayConfig;
  instanceId: string;
  store: TimeSeriesStore;
  alerts: AlertsApi;
  auth: Authenticator;
  logger: Logger;
  metrics: HubMetrics;
  source: LiveSource;
  now?: () => number;
}

function ackError(err: unknown): { ok: false; error: { code: string; message: string } } {
  if (err instanceof GatewayError) return { ok: false, error: { code: err.code, message: err.message } };
  if (err instanceof z.ZodError) return { ok: false, error: { code: 'GATEWAY_BAD_REQUEST', message: err.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ') } };
  return { ok: false, error: { code: 'GATEWAY_INTERNAL', message: (err as Error)?.message ?? String(err) } };
}

type AckFn = (res: unknown) => void;
const asAck = (a: unknown): AckFn => (typeof a === 'function' ? (a as AckFn) : () => undefined);

export class LiveHub implements LiveSink {
  readonly recent: RecentBuffer;
  private readonly coalescer: Coalescer;
  private readonly sessions = new Map<string, Session>();
  private flushTimer: NodeJS.Timeout | null = null;
  private statusTimer: NodeJS.Timeout | null = null;
  private readonly now: () => number;
  private readonly live: GatewayConfig['live'];
  private closed = false;
  private lastInvalidLog = 0;

  constructor(
    private readonly io: Server,
    private readonly o: HubOptions,
  ) {
    this.live = o.config.live;
    this.now = o.now ?? Date.now;
    this.recent = new RecentBuffer(this.live.recentWindowMs, this.live.recentMaxPointsPerSeries);
    const interval = 1000 / this.live.maxUpdatesPerSecond;
    // Alerts are state changes: never rate-limited, only collapsed within one flush.
    this.coalescer = new Coalescer((k) => (k === 'a' ? 0 : interval), this.live.maxSeries);
    io.use((socket, next) => {
      const p = this.authenticate(socket);
      if (!p) {
        o.metrics.authFailures.inc({ transport: 'socket' });
        const err = new Error('GATEWAY_UNAUTHORIZED') as Error & { data?: unknown };
        err.data = { code: 'GATEWAY_UNAUTHORIZED', message: 'send a valid token as auth.token or log in first' };
        return next(err);
      }
      socket.data.principal = p;
      next();
    });
    io.on('connection', (socket) => this.onConnection(socket));
  }

  start(): void {
    this.flushTimer = setInterval(() => this.flush(), this.live.flushIntervalMs);
    this.statusTimer = setInterval(() => this.emitStatus(), this.live.statusIntervalMs);
    this.flushTimer.unref();
    this.statusTimer.unref();
  }

  private authenticate(socket: Socket): Principal | null {
    const token = (socket.handshake.auth as { token?: unknown } | undefined)?.token;
    if (typeof token === 'string' && token.length > 0) return this.o.auth.fromToken(token);
    // Cookie sessions only from our own pages: another site's script must not ride a viewer's session.
    const origin = socket.handshake.headers.origin;
    if (origin) {
      const host = (socket.handshake.headers['x-forwarded-host'] as string | undefined) ?? socket.handshake.headers.host;
      let originHost = '';
      try {
        originHost = new URL(origin).host;
      } catch {
        return null;
      }
      if (originHost !== host) return null;
    }
    return this.o.auth.fromSession(parseCookies(socket.handshake.headers.cookie)[SESSION_COOKIE]);
  }

  status(): Status {
    const s = this.o.source.status();
    const now = this.now();
    return {
      serverTime: now,
      instanceId: this.o.instanceId,
      live: { connected: s.connected, lastMessageAt: s.lastMessageAt, stale: !s.connected || s.lastMessageAt === null || now - s.lastMessageAt > this.live.staleAfterMs },
    };
  }

  private emitStatus(): void {
    this.io.emit('status', this.status());
    // Watermarks whose series has since been emitted past them can never filter again.
    for (const sess of this.sessions.values()) {
      if (sess.backfilling > 0) continue;
      for (const [id, w] of sess.marks) {
        const kind = id[0] as ItemKind;
        if (this.coalescer.emittedTs(kind, id.slice(2)) > w) sess.marks.delete(id);
      }
    }
  }

  // ---- LiveSink: from Kafka (or a test feed) ----

  readings(batch: Reading[]): void {
    const now = this.now();
    this.o.metrics.liveIn.inc({ kind: 'reading' }, batch.length);
    for (const r of batch) {
      this.o.metrics.ingestLag.observe(Math.max(0, now - r.ts) / 1000);
      this.recent.addReading(r, now);
      const lr = toLiveReading(r);
      this.offer({ kind: 'r', key: readingKey(r), mk: machineKeyOf(r), ts: r.ts, data: lr }, now, 'reading');
    }
  }

  scores(batch: Score[]): void {
    const now = this.now();
    for (const s of batch) {
      this.o.metrics.liveIn.inc({ kind: 'score' });
      this.recent.addScore(s, now);
      this.offer({ kind: 's', key: scoreKey(s), mk: machineKeyOf(s), ts: s.ts, data: s }, now, 'score');
    }
  }

  alerts(batch: Alert[]): void {
    const now = this.now();
    for (const a of batch) {
      this.o.metrics.liveIn.inc({ kind: 'alert' });
      this.offer({ kind: 'a', key: a.fingerprint, mk: machineKeyOf(a), ts: a.updatedAt, data: a }, now, 'alert');
    }
  }

  invalid(topic: string, reason: string): void {
    this.o.metrics.invalid.inc({ topic });
    const now = this.now();
    // One line per second at most: a bad producer must not flood the log.
    if (now - this.lastInvalidLog > 1000) {
      this.lastInvalidLog = now;
      this.o.logger.warn({ topic, reason }, 'invalid record on live topic skipped');
    }
  }

  private offer(item: LiveItem, now: number, kind: string): void {
    const res = this.coalescer.offer(item, now);
    if (res === 'late') this.o.metrics.late.inc({ kind });
    else if (res === 'replaced') this.o.metrics.coalesced.inc({ kind });
  }

  // ---- fan-out ----

  /** One flush: due items → per-machine groups → sockets watching them. Exposed for tests. */
  flush(): void {
    if (this.closed) return;
    const now = this.now();
    const items = this.coalescer.drain(now);
    if (items.length === 0) return;
    const end = this.o.metrics.flushSeconds.startTimer();
    const groups = new Map<string, LiveItem[]>();
    for (const it of items) {
      let g = groups.get(it.mk);
      if (!g) groups.set(it.mk, (g = []));
      g.push(it);
    }
    const rooms = this.io.of('/').adapter.rooms;
    const perSocket = new Map<string, number[]>();
    const groupList = [...groups.values()];
    groupList.forEach((g, gi) => {
      const [site, line] = g[0].mk.split('/');
      for (const room of [`m:${g[0].mk}`, `l:${site}/${line}`, `s:${site}`, 'all']) {
        const ids = rooms.get(room);
        if (!ids) continue;
        for (const id of ids) {
          let list = perSocket.get(id);
          if (!list) perSocket.set(id, (list = []));
          // A socket in several matching rooms gets the group once.
          if (list[list.length - 1] !== gi) list.push(gi);
        }
      }
    });
    const shared = new Map<string, string[]>();
    for (const [id, gis] of perSocket) {
      const sess = this.sessions.get(id);
      if (!sess || this.closeIfSlow(sess)) continue;
      if (sess.backfilling > 0 || sess.marks.size > 0) {
        this.deliverOne(sess, gis.flatMap((gi) => groupList[gi]), now);
        continue;
      }
      const sig = gis.join(',');
      let ids = shared.get(sig);
      if (!ids) shared.set(sig, (ids = []));
      ids.push(id);
    }
    for (const [sig, ids] of shared) {
      const its = sig.split(',').flatMap((gi) => groupList[Number(gi)]);
      const payload = this.payload(its, now, ids.length);
      this.io.to(ids).emit('live', payload);
      this.o.metrics.liveMessages.inc(ids.length);
    }
    end();
  }

  /**
   * Bounds what the gateway buffers per client: engine.io queues messages while the connection
   * cannot take them. Closing the transport (not `socket.disconnect()`, after which socket.io
   * clients stay away) makes the client reconnect and re-subscribe with its cursors, so it fills the
   * gap from history instead of the gateway holding an ever longer backlog.
   */
  private closeIfSlow(sess: Session): boolean {
    const queued = (sess.socket.conn as unknown as { writeBuffer?: unknown[] }).writeBuffer?.length ?? 0;
    if (queued <= this.live.maxQueuedMessagesPerClient) return false;
    this.o.metrics.slowClients.inc();
    this.o.logger.warn({ socket: sess.socket.id, user: sess.principal.name, queued, limit: this.live.maxQueuedMessagesPerClient }, 'closing a slow client connection: too many messages queued for it (it will reconnect and resume)');
    sess.socket.conn.close();
    return true;
  }

  private payload(items: LiveItem[], now: number, copies: number): LivePayload {
    const p: LivePayload = { t: now };
    for (const it of items) {
      if (it.kind === 'r') (p.readings ??= []).push(it.data as LiveReading);
      else if (it.kind === 's') (p.scores ??= []).push(it.data as LiveScore);
      else (p.alerts ??= []).push(it.data as Alert);
    }
    if (p.readings) this.o.metrics.liveOutItems.inc({ kind: 'reading' }, p.readings.length * copies);
    if (p.scores) this.o.metrics.liveOutItems.inc({ kind: 'score' }, p.scores.length * copies);
    if (p.alerts) this.o.metrics.liveOutItems.inc({ kind: 'alert' }, p.alerts.length * copies);
    return p;
  }

  private deliverOne(sess: Session, items: LiveItem[], now: number): void {
    if (sess.backfilling > 0) {
      sess.held.push(...items);
      if (sess.held.length > this.live.maxHeldPerSubscription) sess.held = newestPerSeries(sess.held);
      return;
    }
    const pass: LiveItem[] = [];
    for (const it of items) {
      const id = `${it.kind}|${it.key}`;
      const w = sess.marks.get(id);
      if (w !== undefined) {
        if (it.ts <= w) continue;
        sess.marks.delete(id);
      }
      pass.push(it);
    }
    if (pass.length === 0) return;
    sess.socket.emit('live', this.payload(pass, now, 1));
    this.o.metrics.liveMessages.inc();
  }

  // ---- sockets ----

  private onConnection(socket: Socket): void {
    const principal = socket.data.principal as Principal;
    const sess = new Session(socket, principal);
    this.sessions.set(socket.id, sess);
    this.o.metrics.sockets.inc();
    const hello: Hello = {
      instanceId: this.o.instanceId,
      user: { name: principal.name, role: principal.role },
      maxUpdatesPerSecond: this.live.maxUpdatesPerSecond,
      staleAfterMs: this.live.staleAfterMs,
      serverTime: this.now(),
    };
    socket.emit('hello', hello);
    socket.emit('status', this.status());
    socket.on('subscribe', (raw: unknown, ack: unknown) => void this.onSubscribe(sess, raw, asAck(ack)));
    socket.on('unsubscribe', (raw: unknown, ack: unknown) => {
      const r = UnsubscribeSchema.safeParse(raw);
      if (!r.success) return asAck(ack)(ackError(r.error));
      const sub = sess.subs.get(r.data.id);
      if (!sub) return asAck(ack)(ackError(new GatewayError('GATEWAY_NOT_FOUND', `no subscription ${r.data.id}`)));
      sess.subs.delete(sub.id);
      sess.leave(sub.room);
      this.o.metrics.subscriptions.dec();
      asAck(ack)({ ok: true });
    });
    socket.on('alerts:ack', (raw: unknown, ack: unknown) => void this.onAlertAck(sess, raw, asAck(ack)));
    socket.on('disconnect', () => {
      this.sessions.delete(socket.id);
      this.o.metrics.sockets.dec();
      this.o.metrics.subscriptions.dec(sess.subs.size);
      sess.subs.clear();
    });
  }

  private async onSubscribe(sess: Session, raw: unknown, ack: AckFn): Promise<void> {
    const parsed = SubscribeSchema.safeParse(raw);
    if (!parsed.success) return ack(ackError(parsed.error));
    const req = parsed.data;
    if (sess.subs.size + sess.backfilling >= this.live.maxSubscriptionsPerSocket) {
      return ack(ackError(new GatewayError('GATEWAY_TOO_MANY_SUBSCRIPTIONS', `at most ${this.live.maxSubscriptionsPerSocket} subscriptions per socket`)));
    }
    const scope: Scope = req.scope;
    const room = roomOf(scope);
    const sub: Subscription = { id: `sub-${sess.nextSub++}`, scope, room };
    // Join first, hold output: whatever is emitted while the backfill is read is not lost.
    sess.join(room);
    sess.backfilling++;
    const end = this.o.metrics.backfillSeconds.startTimer({ scope: scope.machine ? 'machine' : scope.line ? 'line' : scope.site ? 'site' : 'all' });
    let backfill: Backfill;
    try {
      backfill = await this.backfill(sess, req);
    } catch (err) {
      sess.leave(room);
      this.release(sess);
      this.o.logger.warn({ err, scope }, 'backfill failed');
      return ack(ackError(err));
    } finally {
      end();
    }
    if (!sess.socket.connected) return;
    sess.subs.set(sub.id, sub);
    this.o.metrics.subscriptions.inc();
    ack({ ok: true, id: sub.id, scope, backfill });
    this.release(sess);
  }

  private release(sess: Session): void {
    sess.backfilling--;
    if (sess.backfilling > 0) return;
    const held = sess.held;
    sess.held = [];
    if (held.length > 0) this.deliverOne(sess, held, this.now());
  }

  private mark(sess: Session, kind: ItemKind, key: string, ts: number): void {
    const id = `${kind}|${key}`;
    const w = sess.marks.get(id);
    if (w === undefined || ts > w) sess.marks.set(id, ts);
  }

  private async backfill(sess: Session, req: z.infer<typeof SubscribeSchema>): Promise<Backfill> {
    const { scope } = req;
    const now = this.now();
    const cur = { r: req.cursor?.readings ?? {}, s: req.cursor?.scores ?? {}, a: req.cursor?.alerts ?? {} };
    const { store, alerts } = this.o;
    const warnings: string[] = [];
    const soft = async <T>(source: 'store' | 'alerts', p: () => Promise<T>, fallback: T): Promise<T> => {
      try {
        return await p();
      } catch (err) {
        this.o.metrics.sourceFailures.inc({ source });
        this.o.logger.warn({ err, source }, 'backfill source failed; subscription goes live without it');
        const code = source === 'store' ? 'GATEWAY_STORE_UNAVAILABLE' : 'GATEWAY_ALERTS_UNAVAILABLE';
        if (!warnings.includes(code)) warnings.push(code);
        return fallback;
      }
    };
    const isMachine = scope.machine !== undefined;
    const history = req.history && isMachine ? req.history : undefined;
    if (req.history && !isMachine) throw new GatewayError('GATEWAY_BAD_REQUEST', 'history is available for machine scopes only');
    const windowMs = Math.min(history?.windowMs ?? this.live.backfillWindowMs, this.live.maxBackfillWindowMs);
    const maxPoints = Math.min(history?.maxPoints ?? this.live.maxBackfillPoints, this.live.maxBackfillPoints);
    const m = scope as Required<Scope>;
    const [machines, storeLatest, openAlerts, storeSeries, storeScores, alertHistory] = await Promise.all([
      isMachine ? Promise.resolve([]) : soft('store', () => store.machines(), []),
      soft('store', () => store.latest(scope), []),
      soft('alerts', () => alerts.list({ ...scope, status: ['pending', 'firing'] }), []),
      history ? soft('store', () => store.querySeries({ site: m.site, line: m.line, machine: m.machine, from: now - windowMs, to: now + 60_000, maxPoints }), []) : Promise.resolve([]),
      history ? soft('store', () => store.queryScores({ site: m.site, line: m.line, machine: m.machine, from: now - windowMs, to: now + 60_000, maxPoints }), []) : Promise.resolve([]),
      history ? soft('store', () => store.queryAlerts({ machine: m.machine, from: now - windowMs, to: now + 60_000, limit: 500 }), []) : Promise.resolve([]),
    ]);

    // Everything below runs synchronously: no live flush can interleave with the watermarks.
    const out: Backfill = { serverTime: now, machines: [], latest: [], latestScores: [], alerts: [], alertHistory: [], series: [], scores: [], warnings };
    out.alertHistory = alertHistory.filter((a) => inScope(scope, a)).sort((a, b) => a.updatedAt - b.updatedAt);

    const ms = new Map<string, MachineSummary>();
    for (const mi of machines) if (inScope(scope, mi)) ms.set(machineKeyOf(mi), { site: mi.site, line: mi.line, machine: mi.machine, sensors: [...mi.sensors], lastSeen: mi.lastSeen ?? null });
    for (const mi of this.recent.machinesIn(scope)) {
      const k = machineKeyOf(mi);
      const prev = ms.get(k);
      if (!prev) ms.set(k, mi);
      else {
        prev.sensors = [...new Set([...prev.sensors, ...mi.sensors])];
        prev.lastSeen = Math.max(prev.lastSeen ?? -Infinity, mi.lastSeen ?? -Infinity);
      }
    }
    out.machines = [...ms.values()].sort((a, b) => machineKeyOf(a).localeCompare(machineKeyOf(b)));

    const latest = new Map<string, Backfill['latest'][number]>();
    for (const l of storeLatest) {
      if (!inScope(scope, l)) continue;
      const r = { site: l.site, line: l.line, machine: l.machine, sensor: l.sensor, ts: l.ts, value: l.value, ...(l.unit ? { unit: l.unit } : {}), ...(l.quality ? { quality: l.quality } : {}) };
      latest.set(readingKey(r), r);
    }
    for (const r of this.recent.latestIn(scope)) {
      const k = readingKey(r);
      const prev = latest.get(k);
      if (!prev || r.ts >= prev.ts) latest.set(k, r);
    }

    if (history) {
      const seriesByName = new Map<string, BackfillSeries>();
      for (const s of storeSeries) {
        if (s.machine !== m.machine || (s.site && s.site !== m.site) || (s.line && s.line !== m.line)) continue;
        seriesByName.set(s.sensor, { site: m.site, line: m.line, machine: m.machine, sensor: s.sensor, resolution: s.resolution, points: s.points.map((p) => [p.ts, p.value]) });
      }
      for (const sensor of this.recent.sensorsOf(m).readings) {
        if (!seriesByName.has(sensor)) seriesByName.set(sensor, { site: m.site, line: m.line, machine: m.machine, sensor, resolution: 'raw', points: [] });
      }
      for (const s of seriesByName.values()) {
        const key = readingKey(s);
        const c = cur.r[key] ?? -Infinity;
        const lastStored = s.points.length ? s.points[s.points.length - 1][0] : -Infinity;
        // The store lags the live stream: append the recent raw points it does not hold yet.
        const recent = this.recent.readingsAfter(m, s.sensor, Math.max(lastStored, now - windowMs - 1));
        s.points = [...s.points, ...recent].filter((p) => p[0] > c);
        if (s.points.length > 0) this.mark(sess, 'r', key, s.points[s.points.length - 1][0]);
        out.series.push(s);
      }
      const scoreByName = new Map<string, BackfillScoreSeries>();
      for (const s of storeScores) {
        scoreByName.set(s.sensor, { site: m.site, line: m.line, machine: m.machine, sensor: s.sensor, resolution: s.resolution, points: s.points.map((p) => [p.ts, p.value, p.predicted, p.lower, p.upper, p.likelihood]) });
      }
      for (const sensor of this.recent.sensorsOf(m).scores) {
        if (!scoreByName.has(sensor)) scoreByName.set(sensor, { site: m.site, line: m.line, machine: m.machine, sensor, resolution: 'raw', points: [] });
      }
      for (const s of scoreByName.values()) {
        const key = readingKey(s);
        const c = cur.s[key] ?? -Infinity;
        const lastStored = s.points.length ? s.points[s.points.length - 1][0] : -Infinity;
        const recent = this.recent.scoresAfter(m, s.sensor, Math.max(lastStored, now - windowMs - 1));
        s.points = [...s.points, ...recent].filter((p) => p[0] > c);
        if (s.points.length > 0) this.mark(sess, 's', key, s.points[s.points.length - 1][0]);
        out.scores.push(s);
      }
    }

    for (const [key, r] of latest) {
      const c = cur.r[key];
      if (c !== undefined) this.mark(sess, 'r', key, c);
      if (c !== undefined && r.ts <= c) continue;
      out.latest.push(r);
      this.mark(sess, 'r', key, r.ts);
    }
    for (const s of this.recent.latestScoresIn(scope)) {
      const key = scoreKey(s);
      const c = cur.s[key];
      if (c !== undefined) this.mark(sess, 's', key, c);
      if (c !== undefined && s.ts <= c) continue;
      out.latestScores.push(s);
      this.mark(sess, 's', key, s.ts);
    }
    for (const a of openAlerts) {
      if (!inScope(scope, a)) continue;
      const c = cur.a[a.fingerprint];
      if (c !== undefined) this.mark(sess, 'a', a.fingerprint, c);
      if (c !== undefined && a.updatedAt <= c) continue;
      out.alerts.push(a);
      this.mark(sess, 'a', a.fingerprint, a.updatedAt);
    }
    // Cursor entries for series without any backfill still hold: the client has up to there.
    for (const [k, c] of Object.entries(cur.r)) this.mark(sess, 'r', k, c);
    for (const [k, c] of Object.entries(cur.s)) this.mark(sess, 's', k, c);
    for (const [k, c] of Object.entries(cur.a)) this.mark(sess, 'a', k, c);
    return out;
  }

  private async onAlertAck(sess: Session, raw: unknown, ack: AckFn): Promise<void> {
    try {
      const req = AlertAckSchema.parse(raw);
      const alert = await this.acknowledge(sess.principal, req.fingerprint, req.comment);
      ack({ ok: true, alert });
    } catch (err) {
      ack(ackError(err));
    }
  }

  /** Shared by REST and sockets: role check, the alert service, then the update goes live at once. */
  async acknowledge(p: Principal, fingerprint: string, comment?: string): Promise<Alert> {
    if (!canAcknowledge(p)) throw new GatewayError('GATEWAY_FORBIDDEN', `role ${p.role} cannot acknowledge alerts`);
    let alert: Alert | null;
    try {
      alert = await this.o.alerts.acknowledge(fingerprint, p.name, comment);
    } catch (err) {
      throw new GatewayError('GATEWAY_ALERTS_UNAVAILABLE', `alert service: ${(err as Error).message}`, { cause: err, retriable: true });
    }
    if (!alert) throw new GatewayError('GATEWAY_NOT_FOUND', `no alert with fingerprint ${fingerprint}`);
    // Do not wait for the round trip through Kafka; the later copy is dropped as not newer.
    this.alerts([alert]);
    return alert;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.flushTimer) clearInterval(this.flushTimer);
    if (this.statusTimer) clearInterval(this.statusTimer);
  }
}

/** Compacts a held list to the newest item per series (coalescing is allowed; order by ts kept). */
function newestPerSeries(items: LiveItem[]): LiveItem[] {
  const m = new Map<string, LiveItem>();
  for (const it of items) {
    const id = `${it.kind}|${it.key}`;
    const prev = m.get(id);
    if (!prev || it.ts > prev.ts) {
      m.delete(id);
      m.set(id, it);
    }
  }
  return [...m.values()];
}
