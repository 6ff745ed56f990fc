/**
 * Browser side of the gateway's socket protocol: connects with the session cookie (or a token),
 * keeps per-series cursors for each subscription and, after a reconnect, re-subscribes with them so
 * the gateway sends exactly what was missed. Also exposes connection state for the stale banner.
 */
import { io, type Socket } from 'socket.io-client';
import type { Backfill, Cursor, Hello, LivePayload, Scope, Status, SubscribeAck, AlertAckAck } from '../../services/gateway/protocol.ts';

export type ConnState = 'connecting' | 'live' | 'offline' | 'unauthorized';

export interface SubscriptionHandlers {
  /** Called with a fresh backfill; `reset` is true on the first subscribe (replace state), false after a reconnect (append). */
  onBackfill(b: Backfill, reset: boolean): void;
  onLive(p: LivePayload): void;
  onError?(code: string, message: string): void;
}

export class LiveSubscription {
  id: string | null = null;
  readonly cursor: Required<Cursor> = { readings: {}, scores: {}, alerts: {} };
  active = true;
  private first = true;
  constructor(
    private readonly client: LiveClient,
    readonly scope: Scope,
    readonly history: { windowMs: number; maxPoints: number } | undefined,
    readonly h: SubscriptionHandlers,
  ) {}

  /** Tracks the newest event time per series so a reconnect resumes exactly there. */
  track(p: { readings?: { site: string; line: string; machine: string; sensor: string; ts: number }[]; scores?: LivePayload['scores']; alerts?: LivePayload['alerts'] }): void {
    for (const r of p.readings ?? []) {
      const k = `${r.site}/${r.line}/${r.machine}/${r.sensor}`;
      if (!(this.cursor.readings[k] >= r.ts)) this.cursor.readings[k] = r.ts;
    }
    for (const s of p.scores ?? []) {
      const k = `${s.site}/${s.line}/${s.machine}/${s.kind === 'sensor' ? s.sensor : '*'}`;
      if (!(this.cursor.scores[k] >= s.ts)) this.cursor.scores[k] = s.ts;
    }
    for (const a of p.alerts ?? []) if (!(this.cursor.alerts[a.fingerprint] >= a.updatedAt)) this.cursor.alerts[a.fingerprint] = a.updatedAt;
  }

  async send(socket: Socket): Promise<void> {
    const reset = this.first;
    const req = { scope: this.scope, ...(this.history ? { history: this.history } : {}), ...(reset ? {} : { cursor: this.cursor }) };
    let ack: SubscribeAck;
    try {
      ack = await socket.timeout(30_000).emitWithAck('subscribe', req);
    } catch {
      this.h.onError?.('TIMEOUT', 'the server did not answer the subscription');
      return;
    }
    if (!this.active) return;
    if (!ack.ok) {
      this.h.onError?.(ack.error.code, ack.error.message);
      return;
    }
    this.id = ack.id;
    this.first = false;
    const b = ack.backfill;
    this.track({ readings: b.latest, scores: b.latestScores, alerts: b.alerts });
    for (const s of b.series) {
      const last = s.points[s.points.length - 1];
      if (last) this.track({ readings: [{ ...s, ts: last[0] }] });
    }
    this.h.onBackfill(b, reset);
  }

  close(): void {
    this.active = false;
    this.client.drop(this);
  }
}

type Listener = () => void;

export class LiveClient {
  readonly socket: Socket;
  state: ConnState = 'connecting';
  hello: Hello | null = null;
  status: Status | null = null;
  /** Server clock minus ours, so ages are right even if the tablet's clock is off. */
  clockSkew = 0;
  lastLiveAt = 0;
  disconnectedAt: number | null = null;
  private readonly subs = new Set<LiveSubscription>();
  private readonly listeners = new Set<Listener>();

  constructor(token?: string) {
    this.socket = io({ transports: ['websocket', 'polling'], withCredentials: true, auth: token ? { token } : {}, reconnectionDelayMax: 5000 });
    this.socket.on('connect', () => {
      this.state = 'live';
      this.disconnectedAt = null;
      for (const s of this.subs) void s.send(this.socket);
      this.emit();
    });
    this.socket.on('disconnect', (reason: string) => {
      this.state = 'offline';
      this.disconnectedAt ??= Date.now();
      // A server-side disconnect (restart, instance drained) is not retried by socket.io itself.
      if (reason === 'io server disconnect') setTimeout(() => this.socket.connect(), 1500 + Math.random() * 1000);
      this.emit();
    });
    this.socket.on('connect_error', (err: Error) => {
      this.state = err.message === 'GATEWAY_UNAUTHORIZED' ? 'unauthorized' : 'offline';
      this.disconnectedAt ??= Date.now();
      this.emit();
    });
    this.socket.on('hello', (h: Hello) => {
      this.hello = h;
      this.clockSkew = h.serverTime - Date.now();
      this.emit();
    });
    this.socket.on('status', (s: Status) => {
      this.status = s;
      this.clockSkew = s.serverTime - Date.now();
      this.emit();
    });
    this.socket.on('live', (p: LivePayload) => {
      this.lastLiveAt = Date.now();
      for (const s of this.subs) {
        s.track(p);
        s.h.onLive(p);
      }
    });
  }

  /** Server "now" in epoch ms. */
  now(): number {
    return Date.now() + this.clockSkew;
  }

  subscribe(scope: Scope, h: SubscriptionHandlers, history?: { windowMs: number; maxPoints: number }): LiveSubscription {
    const sub = new LiveSubscription(this, scope, history, h);
    this.subs.add(sub);
    if (this.socket.connected) void sub.send(this.socket);
    return sub;
  }

  drop(sub: LiveSubscription): void {
    this.subs.delete(sub);
    if (sub.id && this.socket.connected) this.socket.emit('unsubscribe', { id: sub.id });
  }

  async acknowledge(fingerprint: string, comment?: string): Promise<AlertAckAck> {
    return this.socket.timeout(15_000).emitWithAck('alerts:ack', { fingerprint, ...(comment ? { comment } : {}) });
  }

  onChange(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  private emit(): void {
    for (const l of this.listeners) l();
  }

  close(): void {
    this.socket.close();
  }
}
