/**
 * The plant as the browser sees it: machines, their newest values and scores, open alerts, and the
 * health rules that colour tiles. Newest by event time always wins (an older value never replaces
 * a newer one, whatever order they arrive in).
 */
import type { Alert } from '../../common/messages.ts';
import type { Backfill, LivePayload, LiveReading, LiveScore } from '../../services/gateway/protocol.ts';

export type Health = 'ok' | 'warning' | 'critical' | 'stale' | 'unknown';

export interface MachineState {
  key: string;
  site: string;
  line: string;
  machine: string;
  sensors: Map<string, LiveReading>;
  scores: Map<string, LiveScore>;
  lastSeen: number | null;
}

/** Likelihood at or above which a machine shows amber / red without any alert. */
export const WARN_LIKELIHOOD = 0.7;
export const CRITICAL_LIKELIHOOD = 0.9;

export class PlantModel {
  readonly machines = new Map<string, MachineState>();
  readonly alerts = new Map<string, Alert>();
  version = 0;

  private machine(m: { site: string; line: string; machine: string }): MachineState {
    const key = `${m.site}/${m.line}/${m.machine}`;
    let s = this.machines.get(key);
    if (!s) this.machines.set(key, (s = { key, site: m.site, line: m.line, machine: m.machine, sensors: new Map(), scores: new Map(), lastSeen: null }));
    return s;
  }

  private reading(r: LiveReading): void {
    const m = this.machine(r);
    const prev = m.sensors.get(r.sensor);
    if (!prev || r.ts >= prev.ts) m.sensors.set(r.sensor, r);
    if (m.lastSeen === null || r.ts > m.lastSeen) m.lastSeen = r.ts;
  }

  private score(s: LiveScore): void {
    const m = this.machine(s);
    const k = s.kind === 'sensor' ? s.sensor : '*';
    const prev = m.scores.get(k);
    if (!prev || s.ts >= prev.ts) m.scores.set(k, s);
  }

  private alert(a: Alert): void {
    const prev = this.alerts.get(a.fingerprint);
    if (prev && prev.updatedAt > a.updatedAt) return;
    if (a.status === 'resolved') this.alerts.delete(a.fingerprint);
    else this.alerts.set(a.fingerprint, a);
    this.machine(a);
  }

  applyBackfill(b: Backfill, reset: boolean): void {
    if (reset) this.alerts.clear();
    for (const m of b.machines) {
      const s = this.machine(m);
      for (const sensor of m.sensors) if (!s.sensors.has(sensor)) s.sensors.set(sensor, { site: m.site, line: m.line, machine: m.machine, sensor, ts: 0, value: NaN });
      if (m.lastSeen !== null && (s.lastSeen === null || m.lastSeen > s.lastSeen)) s.lastSeen = m.lastSeen;
    }
    b.latest.forEach((r) => this.reading(r));
    b.latestScores.forEach((s) => this.score(s));
    b.alerts.forEach((a) => this.alert(a));
    this.version++;
  }

  applyLive(p: LivePayload): void {
    p.readings?.forEach((r) => this.reading(r));
    p.scores?.forEach((s) => this.score(s));
    p.alerts?.forEach((a) => this.alert(a));
    this.version++;
  }

  alertsOf(key: string): Alert[] {
    return [...this.alerts.values()].filter((a) => `${a.site}/${a.line}/${a.machine}` === key);
  }

  /** Worst trusted anomaly likelihood over the machine's newest sensor and machine scores. */
  worstScore(m: MachineState): { likelihood: number; sensor: string | null; warmingUp: boolean } {
    let best = { likelihood: -1, sensor: null as string | null, warmingUp: false };
    let anyTrusted = false;
    for (const [k, s] of m.scores) {
      if (s.warmingUp) continue;
      anyTrusted = true;
      if (s.likelihood > best.likelihood) best = { likelihood: s.likelihood, sensor: k === '*' ? null : k, warmingUp: false };
    }
    if (!anyTrusted) return { likelihood: NaN, sensor: null, warmingUp: m.scores.size > 0 };
    return best;
  }

  health(m: MachineState, now: number, staleAfterMs: number): Health {
    const open = this.alertsOf(m.key).filter((a) => a.status === 'firing');
    if (open.some((a) => a.severity === 'critical')) return 'critical';
    if (m.lastSeen === null) return 'unknown';
    if (now - m.lastSeen > staleAfterMs) return 'stale';
    const w = this.worstScore(m).likelihood;
    if (w >= CRITICAL_LIKELIHOOD) return 'critical';
    if (open.length > 0 || w >= WARN_LIKELIHOOD) return 'warning';
    return 'ok';
  }
}

export function fmtValue(v: number, unit?: string): string {
  if (!Number.isFinite(v)) return '—';
  const a = Math.abs(v);
  const s = a >= 1000 ? v.toFixed(0) : a >= 100 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : v.toPrecision(3);
  return unit ? `${s} ${unit}` : s;
}

export function fmtAge(ms: number): string {
  if (ms < 0) ms = 0;
  if (ms < 60_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 3600_000) return `${Math.round(ms / 60_000)} min`;
  if (ms < 86400_000) return `${(ms / 3600_000).toFixed(1)} h`;
  return `${(ms / 86400_000).toFixed(1)} d`;
}

export function fmtTime(ts: number): string {
  return new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}
