/**
 * The rule engine and alert lifecycle. Readings and scores go in; alert state changes come out
 * through `onChange` (pending → firing → resolved, acknowledged, silenced), each persisted first.
 *
 * Timing: likelihood, threshold and rate rules run on event time (`ts` of the data), so a replayed
 * backlog gives the same alerts as live data. Deadman rules run on the wall clock (`clock.now()`
 * when data arrives here, checked by `tick()`), because silence has no event time.
 */
import type { Alert, Reading, Score, Severity } from '../../common/messages.ts';
import { machineKey } from '../../common/topics.ts';
import type { AlertFilter } from './api.ts';
import type { Clock } from './clock.ts';
import type { JournalOp } from './journal.ts';
import { INTAKE_TARGET, fingerprintOf, inScope, isIntakeRule, isMachineLevel, Rule, type DeadmanRule, type Target } from './rules.ts';

export interface AlertRecord {
  alert: Alert;
  ruleType: Rule['type'];
  /** The limit the value was compared with (likelihood level, threshold, rate, seconds of silence). */
  threshold: number | null;
  ackComment: string | null;
  silencedBy: string | null;
}

export interface RuleOverrides {
  upserts: Rule[];
  deleted: string[];
}

export interface EngineSnapshot {
  alerts: AlertRecord[];
  overrides: RuleOverrides;
  sensorsSeen: string[];
  machinesSeen: string[];
}

export interface EngineOptions {
  configRules: Rule[];
  clock: Clock;
  resolvedRetentionMs: number;
  /** Sensors/machines silent this long are forgotten (decommissioned): their deadman alerts resolve. */
  forgetTargetsAfterMs?: number;
  /** Persists an op before it takes effect in memory; returns the journal sequence number. */
  persist: (op: JournalOp) => number;
  /** Called after every persisted state change. */
  onChange: (alert: Alert, record: AlertRecord, seq: number) => void;
}

type Condition = 'trigger' | 'clear' | 'hold';

interface EvalState {
  lastTs: number;
  /** The alert fingerprint of this rule and target, computed once (sha256 per reading is not free). */
  fp: string;
  /** Rate rules: recent (ts, value) pairs inside the window, oldest first. */
  window?: [number, number][];
}

const SEVERITY_RANK: Record<Severity, number> = { info: 0, warning: 1, critical: 2 };
export function severityAtLeast(s: Severity, min: Severity): boolean {
  return SEVERITY_RANK[s] >= SEVERITY_RANK[min];
}

function sensorKey(t: Target): string {
  return `${t.site}/${t.line}/${t.machine}/${t.sensor}`;
}

function parseSensorKey(key: string): Target {
  const [site, line, machine, sensor] = key.split('/');
  return { site, line, machine, sensor };
}

export class AlertEngine {
  private readonly opts: EngineOptions;
  private readonly alerts = new Map<string, AlertRecord>();
  private readonly evals = new Map<string, EvalState>();
  private overrides: RuleOverrides = { upserts: [], deleted: [] };
  private effectiveRules: Rule[] = [];
  /** Wall-clock time data last arrived, per sensor key and per machine key. */
  private readonly sensorSeen = new Map<string, number>();
  private readonly machineSeen = new Map<string, number>();
  /** Sensor and machine keys with an open deadman alert (INTAKE_KEY for the intake rule). */
  private readonly silentTargets = new Set<string>();
  /** Wall-clock time the last reading from anywhere arrived; null until the first one. */
  private lastReadingAt: number | null = null;

  constructor(opts: EngineOptions) {
    this.opts = opts;
    this.recomputeRules();
  }

  // ---- rules -------------------------------------------------------------------------------

  rules(): Rule[] {
    return this.effectiveRules;
  }

  rule(id: string): Rule | undefined {
    return this.effectiveRules.find((r) => r.id === id);
  }

  /** Adds or replaces a rule. A replaced rule's open alerts resolve; they re-fire if the new rule holds. */
  upsertRule(rule: Rule): void {
    const overrides: RuleOverrides = {
      upserts: [...this.overrides.upserts.filter((r) => r.id !== rule.id), rule],
      deleted: this.overrides.deleted.filter((id) => id !== rule.id),
    };
    this.opts.persist({ t: 'rules', overrides });
    this.overrides = overrides;
    this.recomputeRules();
    this.resolveRuleAlerts(rule.id, 'rule changed');
  }

  deleteRule(id: string): boolean {
    if (!this.rule(id)) return false;
    const overrides: RuleOverrides = {
      upserts: this.overrides.upserts.filter((r) => r.id !== id),
      deleted: [...new Set([...this.overrides.deleted, id])],
    };
    this.opts.persist({ t: 'rules', overrides });
    this.overrides = overrides;
    this.recomputeRules();
    this.resolveRuleAlerts(id, 'rule deleted');
    return true;
  }

  private recomputeRules(): void {
    const deleted = new Set(this.overrides.deleted);
    const upserted = new Map(this.overrides.upserts.map((r) => [r.id, r]));
    const rules = this.opts.configRules.filter((r) => !deleted.has(r.id)).map((r) => upserted.get(r.id) ?? r);
    for (const r of this.overrides.upserts) if (!rules.some((x) => x.id === r.id)) rules.push(r);
    this.effectiveRules = rules;
  }

  private resolveRuleAlerts(ruleId: string, why: string): void {
    const now = this.opts.clock.now();
    for (const [fp, rec] of this.alerts) {
      if (rec.alert.rule === ruleId && rec.alert.status !== 'resolved') {
        this.change(rec, { status: 'resolved', endsAt: Math.max(now, rec.alert.startsAt), summary: `${rec.alert.summary} (${why})` });
      }
    }
    for (const key of this.evals.keys()) if (key.startsWith(ruleId + '\u0000')) this.evals.delete(key);
  }

  // ---- intake ------------------------------------------------------------------------------

  ingestReading(r: Reading): void {
    const now = this.opts.clock.now();
    const target: Target = { site: r.site, line: r.line, machine: r.machine, sensor: r.sensor };
    this.markSeen(target, now);
    for (const rule of this.effectiveRules) {
      if (!rule.enabled || !inScope(rule.scope, target)) continue;
      if (rule.type === 'threshold') {
        const st = this.evalState(rule.id, target, r.ts);
        if (!st) continue;
        let cond: Condition = 'clear';
        let limit: number | null = null;
        const upper = rule.above;
        const lower = rule.below;
        const aboveHit = upper !== undefined && r.value > upper;
        const belowHit = lower !== undefined && r.value < lower;
        if (aboveHit || belowHit) {
          cond = 'trigger';
          limit = aboveHit ? upper! : lower!;
        } else {
          const aboveClear = upper === undefined || r.value <= upper - rule.hysteresis;
          const belowClear = lower === undefined || r.value >= lower + rule.hysteresis;
          cond = aboveClear && belowClear ? 'clear' : 'hold';
        }
        this.lifecycle(rule, target, st.fp, cond, r.value, limit, r.ts, rule.forMs);
      } else if (rule.type === 'rate') {
        const st = this.evalState(rule.id, target, r.ts);
        if (!st) continue;
        const win = (st.window ??= []);
        win.push([r.ts, r.value]);
        while (win.length > 2 && win[1][0] <= r.ts - rule.windowMs) win.shift();
        const [t0, v0] = win[0];
        if (win.length < 2 || r.ts === t0) continue;
        const perSecond = ((r.value - v0) * 1000) / (r.ts - t0);
        const hit =
          rule.direction === 'rising' ? perSecond > rule.maxPerSecond : rule.direction === 'falling' ? -perSecond > rule.maxPerSecond : Math.abs(perSecond) > rule.maxPerSecond;
        this.lifecycle(rule, target, st.fp, hit ? 'trigger' : 'clear', round(perSecond), rule.maxPerSecond, r.ts, rule.forMs);
      }
    }
  }

  ingestScore(s: Score): void {
    const target: Target = s.kind === 'sensor' ? { site: s.site, line: s.line, machine: s.machine, sensor: s.sensor } : { site: s.site, line: s.line, machine: s.machine };
    for (const rule of this.effectiveRules) {
      if (rule.type !== 'likelihood' || !rule.enabled) continue;
      if (rule.source !== 'both' && rule.source !== s.kind) continue;
      if (s.warmingUp && !rule.includeWarmingUp) continue;
      if (!inScope(rule.scope, target)) continue;
      const st = this.evalState(rule.id, target, s.ts);
      if (!st) continue;
      const resolveBelow = rule.resolveBelow ?? rule.threshold;
      const cond: Condition = s.likelihood >= rule.threshold ? 'trigger' : s.likelihood < resolveBelow ? 'clear' : 'hold';
      this.lifecycle(rule, target, st.fp, cond, s.likelihood, rule.threshold, s.ts, rule.forMs);
    }
  }

  /** Event-time bookkeeping per rule and target: data older than what was seen is ignored. */
  private evalState(ruleId: string, t: Target, ts: number): EvalState | null {
    const key = `${ruleId}\u0000${t.site}/${t.line}/${t.machine}/${t.sensor ?? ''}`;
    let st = this.evals.get(key);
    if (!st) {
      st = { lastTs: ts, fp: fingerprintOf(ruleId, t) };
      this.evals.set(key, st);
      return st;
    }
    if (ts < st.lastTs) return null;
    st.lastTs = ts;
    return st;
  }

  private markSeen(t: Target, now: number): void {
    const sk = sensorKey(t);
    const mk = machineKey(t);
    if (!this.sensorSeen.has(sk)) this.opts.persist({ t: 'seen', sensor: sk });
    if (!this.machineSeen.has(mk)) this.opts.persist({ t: 'seen', machine: mk });
    this.sensorSeen.set(sk, now);
    this.machineSeen.set(mk, now);
    this.lastReadingAt = now;
    // Data is back: close the deadman alerts of this sensor and its machine (a set lookup first:
    // this runs for every reading).
    if (!this.silentTargets.has(sk) && !this.silentTargets.has(mk) && !this.silentTargets.has(INTAKE_KEY)) return;
    this.silentTargets.delete(sk);
    this.silentTargets.delete(mk);
    this.silentTargets.delete(INTAKE_KEY);
    for (const rule of this.effectiveRules) {
      if (rule.type !== 'deadman') continue;
      const target = rule.per === 'machine' ? { site: t.site, line: t.line, machine: t.machine } : rule.per === 'intake' ? INTAKE_TARGET : t;
      const rec = this.alerts.get(fingerprintOf(rule.id, target));
      if (rec && rec.alert.status !== 'resolved') this.change(rec, { status: 'resolved', endsAt: now, value: 0 });
    }
  }

  /** Wall-clock work: deadman rules and expiry of old resolved alerts. */
  tick(): void {
    const now = this.opts.clock.now();
    const forgetMs = this.opts.forgetTargetsAfterMs;
    if (forgetMs !== undefined) {
      for (const [seen, per] of [
        [this.sensorSeen, 'sensor'],
        [this.machineSeen, 'machine'],
      ] as const) {
        for (const [key, at] of seen) if (now - at >= forgetMs) this.forget(per, key, now);
      }
    }
    for (const rule of this.effectiveRules) {
      if (rule.type !== 'deadman' || !rule.enabled) continue;
      if (rule.per === 'intake') {
        if (this.lastReadingAt === null || now - this.lastReadingAt < rule.afterMs) continue;
        const rec = this.alerts.get(fingerprintOf(rule.id, INTAKE_TARGET));
        if (rec && rec.alert.status !== 'resolved') continue;
        this.silentTargets.add(INTAKE_KEY);
        this.open(rule, INTAKE_TARGET, 'firing', round((now - this.lastReadingAt) / 1000), rule.afterMs / 1000, now);
        continue;
      }
      const seen = rule.per === 'machine' ? this.machineSeen : this.sensorSeen;
      for (const [key, at] of seen) {
        if (now - at < rule.afterMs) continue;
        const target = rule.per === 'machine' ? { ...parseMachine(key) } : parseSensorKey(key);
        if (!inScope(rule.scope, target)) continue;
        const fp = fingerprintOf(rule.id, target);
        const rec = this.alerts.get(fp);
        if (rec && rec.alert.status !== 'resolved') continue;
        this.silentTargets.add(key);
        this.open(rule, target, 'firing', round((now - at) / 1000), rule.afterMs / 1000, now);
      }
    }
    for (const [fp, rec] of this.alerts) {
      if (rec.alert.status === 'resolved' && (rec.alert.endsAt ?? rec.alert.updatedAt) + this.opts.resolvedRetentionMs < now) {
        this.opts.persist({ t: 'alert-del', fingerprint: fp });
        this.alerts.delete(fp);
      }
    }
  }

  private forget(per: 'sensor' | 'machine', key: string, now: number): void {
    this.opts.persist({ t: 'forget', [per]: key });
    (per === 'sensor' ? this.sensorSeen : this.machineSeen).delete(key);
    this.silentTargets.delete(key);
    const target = per === 'sensor' ? parseSensorKey(key) : parseMachine(key);
    for (const rule of this.effectiveRules) {
      if (rule.type !== 'deadman' || rule.per !== per) continue;
      const rec = this.alerts.get(fingerprintOf(rule.id, target));
      if (rec && rec.alert.status !== 'resolved') {
        this.change(rec, { status: 'resolved', endsAt: now, summary: `${rec.alert.summary} (forgotten: no data for ${Math.round((this.opts.forgetTargetsAfterMs ?? 0) / 3_600_000)} h)` });
      }
    }
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  private lifecycle(rule: Rule, target: Target, fp: string, cond: Condition, value: number, limit: number | null, ts: number, forMs: number): void {
    const rec = this.alerts.get(fp);
    const active = rec !== undefined && rec.alert.status !== 'resolved';
    if (cond === 'trigger') {
      if (!active) {
        this.open(rule, target, forMs === 0 ? 'firing' : 'pending', value, limit, ts);
      } else if (rec.alert.status === 'pending' && ts - rec.alert.startsAt >= forMs) {
        this.change(rec, { status: 'firing', value });
      } else {
        // Still true: refresh the value shown, but this is not a state change worth publishing.
        // A new object: the published/journaled one keeps the value it had at its change.
        this.refreshValue(rec, value);
      }
    } else if (cond === 'clear') {
      if (active) this.change(rec, { status: 'resolved', endsAt: Math.max(ts, rec.alert.startsAt), value });
    } else if (active) {
      this.refreshValue(rec, value);
    }
  }

  private refreshValue(rec: AlertRecord, value: number): void {
    if (rec.alert.value !== value) rec.alert = { ...rec.alert, value };
  }

  private open(rule: Rule, target: Target, status: 'pending' | 'firing', value: number, limit: number | null, startsAt: number): void {
    const fp = fingerprintOf(rule.id, target);
    const previous = this.alerts.get(fp);
    const now = this.opts.clock.now();
    const labels: Record<string, string> = {
      ...rule.labels,
      alertname: rule.id,
      severity: rule.severity,
      site: target.site,
      line: target.line,
      machine: target.machine,
    };
    if (target.sensor !== undefined) labels.sensor = target.sensor;
    const alert: Alert = {
      fingerprint: fp,
      rule: rule.id,
      severity: rule.severity,
      status,
      site: target.site,
      line: target.line,
      machine: target.machine,
      ...(target.sensor !== undefined ? { sensor: target.sensor } : {}),
      labels,
      summary: summarize(rule, target, value, limit),
      value,
      startsAt,
      endsAt: null,
      acknowledgedBy: null,
      acknowledgedAt: null,
      // A silence belongs to the fingerprint: it still holds if the alert re-fires during it.
      silencedUntil: previous?.alert.silencedUntil && previous.alert.silencedUntil > now ? previous.alert.silencedUntil : null,
      updatedAt: now,
    };
    const record: AlertRecord = {
      alert,
      ruleType: rule.type,
      threshold: limit,
      ackComment: null,
      silencedBy: alert.silencedUntil !== null ? (previous?.silencedBy ?? null) : null,
    };
    const seq = this.opts.persist({ t: 'alert', record });
    this.alerts.set(fp, record);
    this.opts.onChange(alert, record, seq);
  }

  private change(rec: AlertRecord, patch: Partial<Alert>, extra: Partial<Omit<AlertRecord, 'alert'>> = {}): Alert {
    const alert: Alert = { ...rec.alert, ...patch, updatedAt: this.opts.clock.now() };
    const record: AlertRecord = { ...rec, ...extra, alert };
    const seq = this.opts.persist({ t: 'alert', record });
    this.alerts.set(alert.fingerprint, record);
    this.opts.onChange(alert, record, seq);
    return alert;
  }

  // ---- operator actions --------------------------------------------------------------------

  acknowledge(fingerprint: string, by: string, comment?: string): Alert | null {
    const rec = this.alerts.get(fingerprint);
    if (!rec) return null;
    return this.change(rec, { acknowledgedBy: by, acknowledgedAt: this.opts.clock.now() }, { ackComment: comment ?? null });
  }

  silence(fingerprint: string, untilMs: number, by: string): Alert | null {
    const rec = this.alerts.get(fingerprint);
    if (!rec) return null;
    const until = untilMs > this.opts.clock.now() ? untilMs : null;
    return this.change(rec, { silencedUntil: until }, { silencedBy: until ? by : null });
  }

  // ---- queries -----------------------------------------------------------------------------

  get(fingerprint: string): AlertRecord | undefined {
    return this.alerts.get(fingerprint);
  }

  all(): IterableIterator<AlertRecord> {
    return this.alerts.values();
  }

  list(filter: AlertFilter = {}): Alert[] {
    const statuses = new Set(filter.status ?? ['pending', 'firing']);
    const out: Alert[] = [];
    for (const { alert } of this.alerts.values()) {
      if (!statuses.has(alert.status)) continue;
      if (filter.site && alert.site !== filter.site) continue;
      if (filter.line && alert.line !== filter.line) continue;
      if (filter.machine && alert.machine !== filter.machine) continue;
      out.push(alert);
    }
    // Newest change first: what an operator looks at.
    out.sort((a, b) => b.updatedAt - a.updatedAt || a.fingerprint.localeCompare(b.fingerprint));
    return filter.limit !== undefined ? out.slice(0, filter.limit) : out;
  }

  /** True while a machine-level deadman alert fires for the machine (the machine is offline). */
  machineOffline(site: string, line: string, machine: string, except?: string): boolean {
    for (const rule of this.effectiveRules) {
      if (!isMachineLevel(rule)) continue;
      const fp = fingerprintOf(rule.id, { site, line, machine });
      if (fp === except) continue;
      if (this.alerts.get(fp)?.alert.status === 'firing') return true;
    }
    return false;
  }

  /** Machine-level deadman rules (their alerts inhibit the machine's other alerts). */
  isOfflineRule(ruleId: string): boolean {
    const r = this.rule(ruleId);
    return r !== undefined && isMachineLevel(r);
  }

  isIntakeRule(ruleId: string): boolean {
    const r = this.rule(ruleId);
    return r !== undefined && isIntakeRule(r);
  }

  /** True while an intake deadman alert fires: nothing arrives from anywhere. */
  intakeSilent(): boolean {
    for (const rule of this.effectiveRules) {
      if (isIntakeRule(rule) && this.alerts.get(fingerprintOf(rule.id, INTAKE_TARGET))?.alert.status === 'firing') return true;
    }
    return false;
  }

  // ---- persistence -------------------------------------------------------------------------

  snapshot(): EngineSnapshot {
    return {
      alerts: [...this.alerts.values()],
      overrides: this.overrides,
      sensorsSeen: [...this.sensorSeen.keys()],
      machinesSeen: [...this.machineSeen.keys()],
    };
  }

  /**
   * Restores state. Known sensors and machines get a fresh grace period from now (the service was
   * down, so their silence says nothing yet); alerts already firing stay firing until data returns.
   */
  restore(snap: EngineSnapshot | undefined, ops: { op: JournalOp }[]): void {
    const now = this.opts.clock.now();
    if (snap) {
      for (const rec of snap.alerts) this.alerts.set(rec.alert.fingerprint, rec);
      this.overrides = snap.overrides;
      for (const k of snap.sensorsSeen) this.sensorSeen.set(k, now);
      for (const k of snap.machinesSeen) this.machineSeen.set(k, now);
    }
    // Known targets: the intake gets the same fresh grace period as each of them.
    if (this.machineSeen.size > 0 || ops.some(({ op }) => op.t === 'seen')) this.lastReadingAt = now;
    for (const { op } of ops) {
      if (op.t === 'alert') {
        const rec = op.record as AlertRecord;
        this.alerts.set(rec.alert.fingerprint, rec);
      } else if (op.t === 'alert-del') this.alerts.delete(op.fingerprint as string);
      else if (op.t === 'rules') this.overrides = op.overrides as RuleOverrides;
      else if (op.t === 'seen') {
        if (typeof op.sensor === 'string') this.sensorSeen.set(op.sensor, now);
        if (typeof op.machine === 'string') this.machineSeen.set(op.machine, now);
      } else if (op.t === 'forget') {
        if (typeof op.sensor === 'string') this.sensorSeen.delete(op.sensor);
        if (typeof op.machine === 'string') this.machineSeen.delete(op.machine);
      }
    }
    this.recomputeRules();
    for (const { alert, ruleType } of this.alerts.values()) {
      if (ruleType === 'deadman' && alert.status !== 'resolved') {
        this.silentTargets.add(alert.sensor !== undefined ? sensorKey(alert) : machineKey(alert)); // INTAKE_KEY for the intake alert
      }
    }
  }

  /** Counts of open alerts by status and severity (for the gauge). */
  activeCounts(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const { alert } of this.alerts.values()) {
      if (alert.status === 'resolved') continue;
      const k = `${alert.status}|${alert.severity}`;
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    return counts;
  }
}

const INTAKE_KEY = machineKey(INTAKE_TARGET);

function parseMachine(key: string): Target {
  const [site, line, machine] = key.split('/');
  return { site, line, machine };
}

function round(v: number): number {
  return Math.round(v * 1e6) / 1e6;
}

const DEFAULT_SUMMARY: Record<Rule['type'], string> = {
  likelihood: 'Anomaly likelihood {value} ≥ {threshold} on {target}',
  threshold: 'Value {value} beyond limit {threshold} on {target}',
  rate: 'Rate of change {value}/s beyond ±{threshold}/s on {target}',
  deadman: 'No data from {target} for {value} s (limit {threshold} s)',
};

const INTAKE_SUMMARY = 'No readings from anywhere for {value} s (limit {threshold} s): edge bridge, Kafka or plant network down?';

function summarize(rule: Rule, t: Target, value: number, limit: number | null): string {
  const template = rule.summary || (isIntakeRule(rule) ? INTAKE_SUMMARY : DEFAULT_SUMMARY[rule.type]);
  const target = t.sensor !== undefined ? `${machineKey(t)}/${t.sensor}` : machineKey(t);
  const vars: Record<string, string> = {
    site: t.site,
    line: t.line,
    machine: t.machine,
    sensor: t.sensor ?? '',
    target,
    value: String(value),
    threshold: limit === null ? '' : String(limit),
    rule: rule.id,
  };
  return template.replace(/\{(\w+)\}/g, (m, k: string) => vars[k] ?? m).slice(0, 1000);
}

export type { DeadmanRule };
