/**
 * The Socket.IO protocol between the gateway and its clients (types only, so the browser bundle
 * imports nothing at run time). Documented in README.md § Socket events.
 */
import type { Alert, MachineScore, SensorScore } from '../../common/messages.ts';

/** What a subscription watches: {} = everything, {site}, {site,line} or {site,line,machine}. */
export interface Scope {
  site?: string;
  line?: string;
  machine?: string;
}

export interface LiveReading {
  site: string;
  line: string;
  machine: string;
  sensor: string;
  ts: number;
  value: number;
  unit?: string;
  quality?: string;
}

export type LiveScore = SensorScore | MachineScore;

/** Event `live`: one per flush per socket, only what the socket watches, each series at most N/s. */
export interface LivePayload {
  /** Server time when sent (epoch ms). */
  t: number;
  readings?: LiveReading[];
  scores?: LiveScore[];
  alerts?: Alert[];
}

/**
 * Per-series cursors a reconnecting client sends: the newest event time it holds per series key.
 * Keys: readings `site/line/machine/sensor`; scores the same, or `site/line/machine/*` for the
 * machine score; alerts the fingerprint (value: `updatedAt`).
 */
export interface Cursor {
  readings?: Record<string, number>;
  scores?: Record<string, number>;
  alerts?: Record<string, number>;
}

export interface SubscribeRequest {
  scope: Scope;
  /** History per sensor (machine scopes only): the window ending now and the most points per series. */
  history?: { windowMs?: number; maxPoints?: number };
  cursor?: Cursor;
}

export interface BackfillSeries {
  site: string;
  line: string;
  machine: string;
  sensor: string;
  resolution: string;
  /** [ts, value] ascending by ts. */
  points: [number, number][];
}

export interface BackfillScoreSeries {
  site: string;
  line: string;
  machine: string;
  sensor: string;
  resolution: string;
  /** [ts, value, predicted, lower, upper, likelihood] ascending by ts. */
  points: [number, number, number, number, number, number][];
}

export interface MachineSummary {
  site: string;
  line: string;
  machine: string;
  sensors: string[];
  /** Epoch ms of the newest reading (event time), or null if unknown. */
  lastSeen: number | null;
}

export interface Backfill {
  serverTime: number;
  machines: MachineSummary[];
  /** Newest reading per sensor in scope (newer than the cursor). */
  latest: LiveReading[];
  /** Newest score per sensor and per machine in scope (newer than the cursor). */
  latestScores: LiveScore[];
  /** Open (pending/firing) alerts in scope. */
  alerts: Alert[];
  /** With `history`: alert state changes of the machine in the window (for chart markers), oldest first. */
  alertHistory: Alert[];
  /** With `history`: raw or rolled-up history per sensor, then the gateway's recent raw points. */
  series: BackfillSeries[];
  scores: BackfillScoreSeries[];
  /** Codes of sources that failed (the subscription still goes live), e.g. GATEWAY_STORE_UNAVAILABLE. */
  warnings: string[];
}

export interface AckError {
  ok: false;
  error: { code: string; message: string };
}

export type SubscribeAck = { ok: true; id: string; scope: Scope; backfill: Backfill } | AckError;
export type UnsubscribeAck = { ok: true } | AckError;
export type AlertAckAck = { ok: true; alert: Alert } | AckError;

/** Event `hello`, right after connecting. */
export interface Hello {
  instanceId: string;
  user: { name: string; role: 'viewer' | 'operator' };
  maxUpdatesPerSecond: number;
  staleAfterMs: number;
  serverTime: number;
}

/** Event `status`, every `statusIntervalMs`: whether live data is flowing into this gateway. */
export interface Status {
  serverTime: number;
  instanceId: string;
  live: { connected: boolean; lastMessageAt: number | null; stale: boolean };
}

export function readingKey(r: { site: string; line: string; machine: string; sensor: string }): string {
  return `${r.site}/${r.line}/${r.machine}/${r.sensor}`;
}

export function scoreKey(s: LiveScore): string {
  return `${s.site}/${s.line}/${s.machine}/${s.kind === 'sensor' ? s.sensor : '*'}`;
}

export function machineKeyOf(m: { site: string; line: string; machine: string }): string {
  return `${m.site}/${m.line}/${m.machine}`;
}

export function inScope(scope: Scope, m: { site: string; line: string; machine: string }): boolean {
  return (scope.site === undefined || scope.site === m.site) && (scope.line === undefined || scope.line === m.line) && (scope.machine === undefined || scope.machine === m.machine);
}
