/**
 * Grouping, dedup, repeat and inhibition, after Alertmanager's dispatcher:
 * - alerts are grouped by the `grouping.by` labels (default: the machine);
 * - a new group waits `groupWaitMs` to collect the rest of a storm, then sends one notification;
 * - later changes in the group are sent at most every `groupIntervalMs`;
 * - nothing changed but unacknowledged alerts still fire: re-sent after `repeatIntervalMs`;
 * - silenced alerts and alerts of an offline machine (inhibited) are left out; an alert that was
 *   notified as firing still gets its `resolved` notification, so receivers can close it.
 * Only firing and resolved alerts are notified (pending is not news for a pager).
 */
import type { Alert } from '../../common/messages.ts';
import type { Clock, TimerHandle } from './clock.ts';
import type { GroupingConfig } from './config.schema.ts';
import type { AlertRecord } from './engine.ts';
import type { JournalOp } from './journal.ts';

export interface GroupNotification {
  groupKey: string;
  groupLabels: Record<string, string>;
  /** `firing` when at least one listed alert fires. */
  status: 'firing' | 'resolved';
  /** Firing first, then resolved; each alert once. */
  alerts: AlertRecord[];
  createdAt: number;
}

/** What is persisted per group: which alerts the receivers were last told are firing. */
export interface GroupState {
  key: string;
  sent: string[];
  lastNotifyAt: number | null;
}

export interface NotifierOptions {
  grouping: GroupingConfig;
  clock: Clock;
  lookup: (fingerprint: string) => AlertRecord | undefined;
  /** True when the alert must not be notified because its machine is offline. */
  isInhibited: (alert: Alert) => boolean;
  /**
   * Persists the group's new state together with the notification (null: state only), in one
   * journal op, then hands the notification to the outbox.
   */
  commit: (group: GroupState, notification: GroupNotification | null) => void;
  /** A flush failed (e.g. the journal could not be written); it is retried after `retryMs`. */
  onError?: (err: unknown, groupKey: string) => void;
}

/** How long a group waits before retrying a flush that failed. */
const FLUSH_RETRY_MS = 5_000;

interface Group {
  key: string;
  labels: Record<string, string>;
  members: Set<string>;
  sent: Set<string>;
  createdAt: number;
  lastNotifyAt: number | null;
  timer?: TimerHandle;
  timerAt?: number;
}

export class Notifier {
  private readonly opts: NotifierOptions;
  private readonly groups = new Map<string, Group>();
  private readonly silenceTimers = new Map<string, TimerHandle>();
  private closed = false;

  constructor(opts: NotifierOptions) {
    this.opts = opts;
  }

  groupLabelsOf(alert: Alert): Record<string, string> {
    const out: Record<string, string> = {};
    for (const name of this.opts.grouping.by) out[name] = alert.labels[name] ?? '';
    return out;
  }

  groupKeyOf(alert: Alert): string {
    return this.opts.grouping.by.map((name) => `${name}=${alert.labels[name] ?? ''}`).join(',');
  }

  /**
   * Called for every alert state change (after it is persisted). `inhibits` says which other alerts
   * this one mutes while it fires (machine offline: the machine's; intake silent: all), so their
   * groups are re-checked when it starts or stops.
   */
  onAlertChange(alert: Alert, inhibits: 'machine' | 'all' | null = null): void {
    if (this.closed) return;
    const key = this.groupKeyOf(alert);
    let group = this.groups.get(key);
    const relevant = alert.status === 'firing' || (alert.status === 'resolved' && group?.sent.has(alert.fingerprint));
    if (relevant) {
      if (!group) group = this.createGroup(key, alert);
      group.members.add(alert.fingerprint);
      this.scheduleChange(group);
    } else if (group?.members.has(alert.fingerprint)) {
      // e.g. resolved before it was ever sent: drop it without a notification.
      group.members.delete(alert.fingerprint);
      this.scheduleChange(group);
    }
    if (alert.silencedUntil !== null && alert.silencedUntil > this.opts.clock.now()) this.watchSilence(alert);
    // The machine (or the whole intake) went silent or came back: other groups may hold muted alerts.
    if (inhibits) {
      for (const g of this.groups.values()) {
        if (g === group) continue;
        if (inhibits === 'all') {
          this.scheduleChange(g);
          continue;
        }
        for (const fp of g.members) {
          const a = this.opts.lookup(fp)?.alert;
          if (a && a.site === alert.site && a.line === alert.line && a.machine === alert.machine) {
            this.scheduleChange(g);
            break;
          }
        }
      }
    }
  }

  private createGroup(key: string, alert: Alert): Group {
    const group: Group = { key, labels: this.groupLabelsOf(alert), members: new Set(), sent: new Set(), createdAt: this.opts.clock.now(), lastNotifyAt: null };
    this.groups.set(key, group);
    return group;
  }

  private watchSilence(alert: Alert): void {
    const fp = alert.fingerprint;
    this.opts.clock.clearTimeout(this.silenceTimers.get(fp));
    const until = alert.silencedUntil!;
    const handle = this.opts.clock.setTimeout(() => {
      this.silenceTimers.delete(fp);
      const rec = this.opts.lookup(fp);
      if (rec && rec.alert.silencedUntil === until) this.onAlertChange(rec.alert);
    }, until - this.opts.clock.now() + 1);
    this.silenceTimers.set(fp, handle);
  }

  private scheduleChange(group: Group): void {
    const now = this.opts.clock.now();
    const at = group.lastNotifyAt === null ? group.createdAt + this.opts.grouping.groupWaitMs : Math.max(now, group.lastNotifyAt + this.opts.grouping.groupIntervalMs);
    this.schedule(group, at);
  }

  private schedule(group: Group, at: number): void {
    if (this.closed) return;
    if (group.timer && group.timerAt !== undefined && group.timerAt <= at) return;
    this.opts.clock.clearTimeout(group.timer);
    group.timerAt = at;
    group.timer = this.opts.clock.setTimeout(() => {
      group.timer = undefined;
      group.timerAt = undefined;
      try {
        this.flush(group);
      } catch (err) {
        // Nothing was committed (the journal write is the commit): try again later.
        this.opts.onError?.(err, group.key);
        this.schedule(group, this.opts.clock.now() + FLUSH_RETRY_MS);
      }
    }, at - this.opts.clock.now());
  }

  private isMuted(alert: Alert, now: number): boolean {
    return (alert.silencedUntil !== null && alert.silencedUntil > now) || this.opts.isInhibited(alert);
  }

  /** Decides whether the group has news (or a repeat is due) and, if so, commits one notification. */
  flush(group: Group): void {
    if (this.closed) return;
    const now = this.opts.clock.now();
    const firing: AlertRecord[] = [];
    const resolved: AlertRecord[] = [];
    const nextSent = new Set<string>();
    for (const fp of [...group.members]) {
      const rec = this.opts.lookup(fp);
      if (!rec) {
        group.members.delete(fp);
        continue;
      }
      const muted = this.isMuted(rec.alert, now);
      if (rec.alert.status === 'firing') {
        if (!muted) firing.push(rec);
        // A muted alert already announced stays "sent", so its resolution is still delivered.
        if (!muted || group.sent.has(fp)) nextSent.add(fp);
      } else if (rec.alert.status === 'resolved' && group.sent.has(fp)) {
        resolved.push(rec);
      }
    }
    const changed = resolved.length > 0 || nextSent.size !== group.sent.size || [...nextSent].some((fp) => !group.sent.has(fp));
    const repeatDue =
      group.lastNotifyAt !== null && now - group.lastNotifyAt >= this.opts.grouping.repeatIntervalMs && firing.some((r) => r.alert.acknowledgedBy === null);
    const notify = (changed || repeatDue) && firing.length + resolved.length > 0;

    if (notify || changed) {
      const state: GroupState = { key: group.key, sent: [...nextSent], lastNotifyAt: notify ? now : group.lastNotifyAt };
      const byStart = (a: AlertRecord, b: AlertRecord) => a.alert.startsAt - b.alert.startsAt || a.alert.fingerprint.localeCompare(b.alert.fingerprint);
      const notification: GroupNotification | null = notify
        ? {
            groupKey: group.key,
            groupLabels: group.labels,
            status: firing.length > 0 ? 'firing' : 'resolved',
            alerts: [...firing.sort(byStart), ...resolved.sort(byStart)],
            createdAt: now,
          }
        : null;
      // Throws if the journal cannot be written: then nothing below happens and the flush is retried.
      this.opts.commit(state, notification);
      group.sent = nextSent;
      if (notify) group.lastNotifyAt = now;
    }
    // Resolved alerts leave the group whether or not anyone was told about them.
    for (const fp of [...group.members]) {
      const st = this.opts.lookup(fp)?.alert.status;
      if (st !== 'firing') group.members.delete(fp);
    }
    if (group.members.size === 0 && group.sent.size === 0) {
      this.opts.clock.clearTimeout(group.timer);
      this.groups.delete(group.key);
      return;
    }
    if (group.lastNotifyAt !== null && group.sent.size > 0) {
      // Next repeat check; if it is already past (nothing was due: all acknowledged or muted), look again one interval later.
      const next = group.lastNotifyAt + this.opts.grouping.repeatIntervalMs;
      this.schedule(group, next > now ? next : now + this.opts.grouping.repeatIntervalMs);
    }
  }

  /**
   * Rebuilds groups after a restart: persisted `sent` sets plus the engine's firing alerts. Every
   * group is re-checked (a change that had not been flushed before the crash is flushed now).
   */
  restore(states: GroupState[], ops: { op: JournalOp }[], records: Iterable<AlertRecord>): void {
    const persisted = new Map(states.map((s) => [s.key, s]));
    for (const { op } of ops) {
      if (op.t === 'notify') {
        const g = op.group as GroupState;
        persisted.set(g.key, g);
      }
    }
    const now = this.opts.clock.now();
    for (const rec of records) {
      const key = this.groupKeyOf(rec.alert);
      const st = persisted.get(key);
      const wasSent = st?.sent.includes(rec.alert.fingerprint) ?? false;
      if (rec.alert.status !== 'firing' && !(rec.alert.status === 'resolved' && wasSent)) continue;
      let group = this.groups.get(key);
      if (!group) {
        group = this.createGroup(key, rec.alert);
        group.createdAt = now;
        group.sent = new Set(st?.sent ?? []);
        group.lastNotifyAt = st?.lastNotifyAt ?? null;
      }
      group.members.add(rec.alert.fingerprint);
      if (rec.alert.silencedUntil !== null && rec.alert.silencedUntil > now) this.watchSilence(rec.alert);
    }
    // Groups whose alerts all vanished (expired) but were announced: nothing more to tell.
    for (const group of this.groups.values()) this.scheduleChange(group);
  }

  snapshot(): GroupState[] {
    return [...this.groups.values()].filter((g) => g.sent.size > 0).map((g) => ({ key: g.key, sent: [...g.sent], lastNotifyAt: g.lastNotifyAt }));
  }

  groupCount(): number {
    return this.groups.size;
  }

  close(): void {
    this.closed = true;
    for (const g of this.groups.values()) this.opts.clock.clearTimeout(g.timer);
    for (const t of this.silenceTimers.values()) this.opts.clock.clearTimeout(t);
    this.silenceTimers.clear();
  }
}
