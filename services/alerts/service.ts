/**
 * The alert service without its transports: engine + notifier + outbox + publish queue around one
 * journal. `index.ts` feeds it from Kafka and serves its REST API; unit tests feed it directly.
 *
 * Order of durability for one state change: journal(alert) → publish queue → notifier; a group
 * flush journals the group's new state and its outbox deliveries in ONE op, so a crash can neither
 * lose a notification nor send one twice under different ids.
 */
import { isAbsolute, join } from 'node:path';
import type { Logger } from '../../common/logger.ts';
import { Reading, ReadingRecord, Score, ScoreRecord, describeZodError, type Alert, type DeadLetter } from '../../common/messages.ts';
import type { Registry } from '../../common/metrics.ts';
import { backoffDelay } from '../../common/retry.ts';
import { TOPICS } from '../../common/topics.ts';
import type { AlertFilter, AlertsApi } from './api.ts';
import { systemClock, type Clock, type TimerHandle } from './clock.ts';
import type { AlertsConfig } from './config.schema.ts';
import { AlertEngine, severityAtLeast, type AlertRecord, type EngineSnapshot } from './engine.ts';
import { Journal, type JournalOp } from './journal.ts';
import { alertsMetrics, type AlertsMetrics } from './metrics.ts';
import { Notifier, type GroupNotification, type GroupState } from './notifier.ts';
import { Outbox, type Delivery, type DeliveryOutcome } from './outbox.ts';
import type { Rule } from './rules.ts';
import { newWebhookId, renderBody } from './webhook.ts';
import { ALERTS_DEAD_LETTER } from './errors.ts';

export const COMPONENT = 'alerts';

export interface AlertServiceOptions {
  config: AlertsConfig;
  /** Platform data dir; the state lives in `<dataDir>/<config.stateDir>` unless stateDir is absolute. */
  dataDir: string;
  logger: Logger;
  metrics: Registry;
  clock?: Clock;
  /** Publishes alert state changes (Kafka in production); resolves when stored by the broker. */
  publish?: (alerts: Alert[]) => Promise<void>;
  random?: () => number;
  onDelivery?: (d: Delivery, outcome: DeliveryOutcome, httpStatus: number | null) => void;
  /** Compact the journal after this many ops (default 20,000). */
  compactAfterOps?: number;
}

interface Snapshot {
  engine: EngineSnapshot;
  groups: GroupState[];
  outbox: Delivery[];
  publish: { seq: number; alert: Alert }[];
}

const PUBLISH_BATCH = 500;

export class AlertService implements AlertsApi {
  readonly engine: AlertEngine;
  readonly notifier: Notifier;
  readonly outbox: Outbox;
  readonly journal: Journal;
  readonly metrics: AlertsMetrics;
  private readonly opts: AlertServiceOptions;
  private readonly clock: Clock;
  private readonly log: Logger;
  private publishQueue: { seq: number; alert: Alert }[] = [];
  private publishing = false;
  private publishFailures = 0;
  private publishTimer?: TimerHandle;
  private tickTimer?: TimerHandle;
  private closed = false;
  private closing?: Promise<void>;

  constructor(opts: AlertServiceOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.logger;
    this.metrics = alertsMetrics(opts.metrics);
    const dir = isAbsolute(opts.config.stateDir) ? opts.config.stateDir : join(opts.dataDir, opts.config.stateDir);
    this.journal = new Journal(dir, { fsync: opts.config.fsync });
    const persist = (op: JournalOp) => this.journal.append(op);

    this.engine = new AlertEngine({
      configRules: opts.config.rules,
      clock: this.clock,
      resolvedRetentionMs: opts.config.resolvedRetentionMs,
      forgetTargetsAfterMs: opts.config.forgetTargetsAfterMs,
      persist,
      onChange: (alert, _rec, seq) => this.onAlertChange(alert, seq),
    });
    this.notifier = new Notifier({
      grouping: opts.config.grouping,
      clock: this.clock,
      lookup: (fp) => this.engine.get(fp),
      isInhibited: (a) => {
        if (this.engine.isIntakeRule(a.rule)) return false;
        if (opts.config.inhibition.whenIntakeSilent && this.engine.intakeSilent()) return true;
        return opts.config.inhibition.whenMachineOffline && !this.engine.isOfflineRule(a.rule) && this.engine.machineOffline(a.site, a.line, a.machine, a.fingerprint);
      },
      commit: (group, n) => this.commitNotification(group, n),
      onError: (err, groupKey) => this.log.error({ err: (err as Error).message, groupKey }, 'notification not committed; retrying'),
    });
    this.outbox = new Outbox({
      receivers: opts.config.receivers,
      clock: this.clock,
      persist,
      metrics: this.metrics,
      logger: this.log.child({ part: 'outbox' }),
      random: opts.random,
      onOutcome: opts.onDelivery,
    });

    const loaded = this.journal.load();
    if (loaded.skippedLines > 0) this.log.warn({ skippedLines: loaded.skippedLines }, 'ignored unreadable journal lines (torn write at a crash)');
    const snap = loaded.state as Snapshot | null;
    this.engine.restore(snap?.engine, loaded.ops);
    this.notifier.restore(snap?.groups ?? [], loaded.ops, this.engine.all());
    this.outbox.restore(snap?.outbox, loaded.ops);
    this.restorePublishQueue(snap?.publish ?? [], loaded.ops);
  }

  /** Starts delivery, publishing and the wall-clock tick. */
  start(): void {
    this.outbox.start();
    this.schedulePublish(0);
    this.scheduleTick();
    this.log.info(
      { rules: this.engine.rules().length, receivers: this.opts.config.receivers.map((r) => r.name), outbox: this.outbox.depth(), open: this.engine.list().length },
      'alert service started',
    );
  }

  // ---- intake ------------------------------------------------------------------------------

  ingestReading(r: Reading): void {
    if (!this.closed) this.engine.ingestReading(r);
  }

  ingestScore(s: Score): void {
    if (!this.closed) this.engine.ingestScore(s);
  }

  /**
   * Parses and applies one Kafka record value from `plantwatch.readings` or `plantwatch.scores`.
   * Returns a dead letter for a record that is refused (nothing of it is applied).
   */
  ingestRecord(topic: string, raw: Buffer | null, source: Record<string, string | number>): DeadLetter | null {
    this.metrics.recordsConsumed.inc({ topic });
    const dead = (code: string, reason: string): DeadLetter => {
      this.metrics.recordsInvalid.inc({ topic, code });
      return { code, reason, component: COMPONENT, source, rawBase64: (raw ?? Buffer.alloc(0)).toString('base64'), receivedAt: Date.now() };
    };
    if (!raw || raw.length === 0) return dead(ALERTS_DEAD_LETTER.empty, 'record has no value');
    let json: unknown;
    try {
      json = JSON.parse(raw.toString('utf8'));
    } catch (err) {
      return dead(ALERTS_DEAD_LETTER.notJson, `record value is not JSON: ${(err as Error).message}`);
    }
    if (topic === TOPICS.readings) {
      // Validate against the branch the value looks like, so the reason names the bad field.
      const parsed = (Array.isArray(json) ? ReadingRecord.options[1] : Reading).safeParse(json);
      if (!parsed.success) return dead(ALERTS_DEAD_LETTER.readingInvalid, describeZodError(parsed.error));
      for (const r of Array.isArray(parsed.data) ? parsed.data : [parsed.data]) this.ingestReading(r);
      return null;
    }
    if (topic === TOPICS.scores) {
      const parsed = (Array.isArray(json) ? ScoreRecord.options[1] : Score).safeParse(json);
      if (!parsed.success) return dead(ALERTS_DEAD_LETTER.scoreInvalid, describeZodError(parsed.error));
      for (const s of Array.isArray(parsed.data) ? parsed.data : [parsed.data]) this.ingestScore(s);
      return null;
    }
    return dead(ALERTS_DEAD_LETTER.topicUnexpected, `the alert service does not consume ${topic}`);
  }

  // ---- AlertsApi ---------------------------------------------------------------------------

  async list(filter?: AlertFilter): Promise<Alert[]> {
    return this.engine.list(filter);
  }

  async acknowledge(fingerprint: string, by: string, comment?: string): Promise<Alert | null> {
    return this.engine.acknowledge(fingerprint, by, comment);
  }

  async silence(fingerprint: string, untilMs: number, by: string): Promise<Alert | null> {
    return this.engine.silence(fingerprint, untilMs, by);
  }

  rules(): Rule[] {
    return this.engine.rules();
  }

  // ---- internals ---------------------------------------------------------------------------

  private onAlertChange(alert: Alert, seq: number): void {
    this.metrics.stateChanges.inc({ rule: alert.rule, status: alert.status });
    this.publishQueue.push({ seq, alert });
    this.metrics.publishQueueDepth.set(this.publishQueue.length);
    this.schedulePublish(0);
    this.notifier.onAlertChange(alert, this.engine.isIntakeRule(alert.rule) ? 'all' : this.engine.isOfflineRule(alert.rule) ? 'machine' : null);
  }

  private commitNotification(group: GroupState, n: GroupNotification | null): void {
    const deliveries: Delivery[] = [];
    if (n) {
      this.metrics.notifications.inc({ group_status: n.status });
      const now = this.clock.now();
      for (const receiver of this.opts.config.receivers) {
        const alerts = n.alerts.filter((r: AlertRecord) => severityAtLeast(r.alert.severity, receiver.minSeverity));
        if (alerts.length === 0) continue;
        const body = renderBody(receiver, n, alerts, this.opts.config.dashboardUrl, this.opts.config.grouping.maxAlertsPerNotification);
        deliveries.push({
          id: newWebhookId(),
          receiver: receiver.name,
          body,
          groupKey: n.groupKey,
          status: alerts.some((r) => r.alert.status === 'firing') ? 'firing' : 'resolved',
          createdAt: now,
          deadlineAt: now + receiver.retry.deadlineMs,
          attempts: 0,
          nextAttemptAt: now,
        });
      }
    }
    this.journal.append({ t: 'notify', group, deliveries });
    if (deliveries.length > 0) this.outbox.accept(deliveries);
  }

  private restorePublishQueue(fromSnapshot: { seq: number; alert: Alert }[], ops: { seq: number; op: JournalOp }[]): void {
    let queue = [...fromSnapshot];
    for (const { seq, op } of ops) {
      if (op.t === 'alert') queue.push({ seq, alert: (op.record as AlertRecord).alert });
      else if (op.t === 'pubAck') {
        const upTo = op.upTo as number;
        queue = queue.filter((e) => e.seq > upTo);
      }
    }
    this.publishQueue = queue;
    this.metrics.publishQueueDepth.set(queue.length);
  }

  private schedulePublish(delayMs: number): void {
    if (this.closed || !this.opts.publish || this.publishing || this.publishTimer) return;
    this.publishTimer = this.clock.setTimeout(() => {
      this.publishTimer = undefined;
      void this.publishBatch();
    }, delayMs);
  }

  private async publishBatch(): Promise<void> {
    const publish = this.opts.publish;
    if (!publish || this.publishing || this.publishQueue.length === 0) return;
    this.publishing = true;
    const batch = this.publishQueue.slice(0, PUBLISH_BATCH);
    try {
      await publish(batch.map((e) => e.alert));
      const upTo = batch[batch.length - 1].seq;
      if (!this.closed) this.journal.append({ t: 'pubAck', upTo });
      this.publishQueue = this.publishQueue.filter((e) => e.seq > upTo);
      this.metrics.published.inc(batch.length);
      this.metrics.publishQueueDepth.set(this.publishQueue.length);
      this.publishFailures = 0;
    } catch (err) {
      this.publishFailures++;
      const delay = backoffDelay({ retries: Infinity, initialDelayMs: 200, maxDelayMs: 30_000, factor: 2 }, this.publishFailures, this.opts.random);
      this.log.warn({ err: (err as Error).message, queued: this.publishQueue.length, retryInMs: delay }, 'publishing alert changes failed; will retry');
      this.publishing = false;
      this.schedulePublish(delay);
      return;
    }
    this.publishing = false;
    if (this.publishQueue.length > 0) this.schedulePublish(0);
  }

  private scheduleTick(): void {
    if (this.closed) return;
    this.tickTimer = this.clock.setTimeout(() => {
      try {
        this.tick();
      } catch (err) {
        // e.g. the journal cannot be written: log and keep ticking; the change is retried next tick.
        this.log.error({ err: (err as Error).message }, 'alert evaluation tick failed');
      }
      this.scheduleTick();
    }, this.opts.config.evaluationIntervalMs);
  }

  /** Wall-clock work: deadman rules, expiry, gauges, journal compaction. */
  tick(): void {
    if (this.closed) return;
    this.engine.tick();
    this.metrics.activeAlerts.reset();
    for (const [k, n] of this.engine.activeCounts()) {
      const [status, severity] = k.split('|');
      this.metrics.activeAlerts.set({ status, severity }, n);
    }
    const size = this.journal.size;
    this.metrics.journalBytes.set(size.bytes);
    if (size.ops >= (this.opts.compactAfterOps ?? 20_000) || size.bytes > 64 * 1024 * 1024) this.compact();
  }

  compact(): void {
    const snap: Snapshot = {
      engine: this.engine.snapshot(),
      groups: this.notifier.snapshot(),
      outbox: this.outbox.snapshot(),
      publish: this.publishQueue,
    };
    this.journal.compact(snap);
  }

  /** Idempotent: stops timers and delivery (in-flight requests get a short grace), flushes publishing, closes the journal. */
  close(): Promise<void> {
    return (this.closing ??= (async () => {
      this.clock.clearTimeout(this.tickTimer);
      this.clock.clearTimeout(this.publishTimer);
      this.notifier.close();
      await this.outbox.close();
      // One last publish attempt so dashboards see the latest state; what fails stays journaled.
      if (this.opts.publish && this.publishQueue.length > 0 && !this.publishing) {
        await this.publishBatch().catch(() => undefined);
      }
      this.closed = true;
      this.journal.close();
    })());
  }
}
