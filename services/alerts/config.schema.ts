/**
 * Configuration of the alert service. `AlertsConfig.parse({})` is a working configuration: the
 * default rule set, no receivers, grouping by machine, REST API on :9104 without a token.
 */
import { z } from 'zod';
import { Severity } from '../../common/messages.ts';
import { DEFAULT_RULES, Rule } from './rules.ts';

/** Standard Webhooks secret: `whsec_` + base64 of 24–64 random bytes. */
export const WebhookSecret = z
  .string()
  .regex(/^whsec_[A-Za-z0-9+/]+={0,2}$/, 'expected whsec_<base64>, e.g. whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw');

export const RetryConfig = z.strictObject({
  /** First retry after about this long (full jitter between half and all of it). */
  initialDelayMs: z.number().int().positive().default(1_000),
  maxDelayMs: z.number().int().positive().default(5 * 60_000),
  factor: z.number().min(1).default(2),
  /** Give up on a notification this long after it was queued (counted as failed, reason `expired`). */
  deadlineMs: z.number().int().positive().default(24 * 3_600_000),
});
export type RetryConfig = z.infer<typeof RetryConfig>;

export const ReceiverConfig = z.strictObject({
  name: z.string().min(1).max(64).regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits and _ . - only'),
  /** `generic`: the documented JSON schema, signed; `slack` / `teams`: incoming-webhook templates. */
  type: z.enum(['generic', 'slack', 'teams']).default('generic'),
  url: z.url({ protocol: /^https?$/ }),
  /** Signs every request per Standard Webhooks when set (recommended for `generic`). */
  secret: WebhookSecret.optional(),
  /** Extra request headers (e.g. an API key the receiver expects). */
  headers: z.record(z.string(), z.string()).default({}),
  /** Alerts below this severity are left out of this receiver's notifications. */
  minSeverity: Severity.default('info'),
  timeoutMs: z.number().int().positive().default(10_000),
  /** Token bucket: sustained notifications per second and burst. */
  rateLimit: z
    .strictObject({
      perSecond: z.number().positive().default(1),
      burst: z.number().int().positive().default(5),
    })
    .prefault({}),
  retry: RetryConfig.prefault({}),
});
export type ReceiverConfig = z.infer<typeof ReceiverConfig>;

export const GroupingConfig = z.strictObject({
  /** Alert labels that make up a group; one notification per group. */
  by: z.array(z.string().min(1)).default(['site', 'line', 'machine']),
  /** Wait this long after a group's first alert to collect the rest of the storm. */
  groupWaitMs: z.number().int().nonnegative().default(30_000),
  /** Minimum time between notifications about changes in the same group. */
  groupIntervalMs: z.number().int().positive().default(5 * 60_000),
  /** Re-send a group whose (unacknowledged) alerts are still firing after this long. */
  repeatIntervalMs: z.number().int().positive().default(4 * 3_600_000),
  /** At most this many alerts listed per notification; the rest are counted in `truncatedAlerts`. */
  maxAlertsPerNotification: z.number().int().positive().default(100),
});
export type GroupingConfig = z.infer<typeof GroupingConfig>;

export const AlertsConfig = z
  .strictObject({
    rules: z.array(Rule).default(() => DEFAULT_RULES.map((r) => Rule.parse(r))),
    receivers: z.array(ReceiverConfig).default([]),
    grouping: GroupingConfig.prefault({}),
    inhibition: z
      .strictObject({
        /** While a machine-level deadman alert fires, the machine's other alerts are not notified. */
        whenMachineOffline: z.boolean().default(true),
        /** While an intake deadman alert fires (no data from anywhere), every other alert is not notified. */
        whenIntakeSilent: z.boolean().default(true),
      })
      .prefault({}),
    /** Base URL of the dashboards; notifications link to the machine view `<dashboardUrl>/#/machine/<site>/<line>/<machine>`. */
    dashboardUrl: z.string().default('http://localhost:8080'),
    /** State journal and outbox folder; relative paths are under the platform data dir. */
    stateDir: z.string().default('alerts'),
    /** fsync the journal on every append (survives power loss, costs ~ms per change). */
    fsync: z.boolean().default(false),
    /** How often deadman rules and timers are checked (wall clock). */
    evaluationIntervalMs: z.number().int().positive().default(1_000),
    /** Resolved alerts stay listed (GET /api/alerts?status=resolved) this long. */
    resolvedRetentionMs: z.number().int().positive().default(24 * 3_600_000),
    /**
     * A sensor or machine without data this long counts as decommissioned: it is no longer watched and
     * its deadman alerts resolve. The clock restarts when the service restarts.
     */
    forgetTargetsAfterMs: z.number().int().positive().default(7 * 24 * 3_600_000),
    httpHost: z.string().default('0.0.0.0'),
    httpPort: z.number().int().min(0).max(65535).default(9104),
    /** Bearer token required on /api/* when set (not on /metrics and /healthz). */
    apiToken: z.string().min(8).optional(),
    kafka: z
      .strictObject({
        groupId: z.string().default('plantwatch-alerts'),
        /** A new consumer group starts at the earliest offset instead of the latest. */
        fromBeginning: z.boolean().default(false),
      })
      .prefault({}),
  })
  .superRefine((c, ctx) => {
    const dup = (names: string[]) => names.find((n, i) => names.indexOf(n) !== i);
    const rule = dup(c.rules.map((r) => r.id));
    if (rule) ctx.addIssue({ code: 'custom', path: ['rules'], message: `rule id ${rule} appears twice` });
    const receiver = dup(c.receivers.map((r) => r.name));
    if (receiver) ctx.addIssue({ code: 'custom', path: ['receivers'], message: `receiver name ${receiver} appears twice` });
  });
export type AlertsConfig = z.infer<typeof AlertsConfig>;
export type AlertsConfigInput = z.input<typeof AlertsConfig>;
