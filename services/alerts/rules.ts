/**
 * Alert rules: what to watch, where (scope globs over the plant hierarchy) and how loud (severity,
 * labels). Rules come from config and from the REST API; both are validated with `Rule`.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { Severity } from '../../common/messages.ts';

/** A glob over one hierarchy level: `*` any run of characters, `?` one character; `a|b` alternatives. */
const Glob = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9_.:*?|-]+$/, 'letters, digits, _ . : - and the wildcards * ? | only');

export const Scope = z.strictObject({
  site: Glob.default('*'),
  line: Glob.default('*'),
  machine: Glob.default('*'),
  /** Ignored by machine-level rules (machine scores, machine deadman). */
  sensor: Glob.default('*'),
});
export type Scope = z.infer<typeof Scope>;

const RuleId = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9_.:-]+$/, 'letters, digits and _ . : - only');

const LabelName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'label names are identifiers');

const RuleCommon = {
  id: RuleId,
  severity: Severity.default('warning'),
  scope: Scope.prefault({}),
  /** Extra labels on every alert of this rule (team, runbook, …). Reserved names are overwritten. */
  labels: z.record(LabelName, z.string().max(500)).default({}),
  /**
   * Summary template; `{site} {line} {machine} {sensor} {value} {threshold} {rule}` are replaced.
   * Empty: a default sentence per rule type.
   */
  summary: z.string().max(500).default(''),
  enabled: z.boolean().default(true),
};

/** Anomaly likelihood (from `plantwatch.scores`) at or above `threshold` for `forMs` of event time. */
export const LikelihoodRule = z.strictObject({
  ...RuleCommon,
  type: z.literal('likelihood'),
  threshold: z.number().min(0).max(1),
  /** Resolve only when likelihood drops below this (hysteresis); default: `threshold`. */
  resolveBelow: z.number().min(0).max(1).optional(),
  forMs: z.number().int().nonnegative().default(0),
  /** Which scores count: per-sensor, whole-machine, or both (each gets its own alert). */
  source: z.enum(['sensor', 'machine', 'both']).default('both'),
  /** Scores flagged `warmingUp` are not trusted by default. */
  includeWarmingUp: z.boolean().default(false),
});

/** Reading value above/below a limit for `forMs`; clears only past the hysteresis band. */
export const ThresholdRule = z
  .strictObject({
    ...RuleCommon,
    type: z.literal('threshold'),
    above: z.number().optional(),
    below: z.number().optional(),
    /** The value must come back this far inside the limit before the alert resolves. */
    hysteresis: z.number().nonnegative().default(0),
    forMs: z.number().int().nonnegative().default(0),
  })
  .refine((r) => r.above !== undefined || r.below !== undefined, { message: 'set above, below or both', path: ['above'] });

/** Absolute change per second over a sliding event-time window exceeds `maxPerSecond`. */
export const RateRule = z.strictObject({
  ...RuleCommon,
  type: z.literal('rate'),
  maxPerSecond: z.number().positive(),
  windowMs: z.number().int().positive().default(10_000),
  direction: z.enum(['both', 'rising', 'falling']).default('both'),
  forMs: z.number().int().nonnegative().default(0),
});

/**
 * No reading for `afterMs` of wall-clock time from a sensor, a whole machine (device offline), or
 * from anywhere at all (`intake`: the edge, Kafka or the plant network is down; its alert is on the
 * pseudo-machine `_all/_all/_all`, the scope is ignored, and it inhibits every other alert).
 */
export const DeadmanRule = z.strictObject({
  ...RuleCommon,
  type: z.literal('deadman'),
  per: z.enum(['sensor', 'machine', 'intake']).default('machine'),
  afterMs: z.number().int().positive().default(60_000),
});

export const Rule = z.discriminatedUnion('type', [LikelihoodRule, ThresholdRule, RateRule, DeadmanRule]);
export type Rule = z.infer<typeof Rule>;
export type RuleInput = z.input<typeof Rule>;
export type LikelihoodRule = z.infer<typeof LikelihoodRule>;
export type ThresholdRule = z.infer<typeof ThresholdRule>;
export type RateRule = z.infer<typeof RateRule>;
export type DeadmanRule = z.infer<typeof DeadmanRule>;

/**
 * The shipped rule set: anomaly warning/critical, machine offline after 60 s, a silent sensor after
 * 5 min, and no data at all after 60 s (one notification instead of one per machine when the
 * pipeline, not the plant, is down).
 */
export const DEFAULT_RULES: RuleInput[] = [
  { id: 'anomaly-warning', type: 'likelihood', threshold: 0.9, forMs: 30_000, severity: 'warning' },
  { id: 'anomaly-critical', type: 'likelihood', threshold: 0.99, forMs: 10_000, severity: 'critical' },
  { id: 'machine-offline', type: 'deadman', per: 'machine', afterMs: 60_000, severity: 'critical' },
  { id: 'sensor-no-data', type: 'deadman', per: 'sensor', afterMs: 300_000, severity: 'warning' },
  { id: 'intake-silent', type: 'deadman', per: 'intake', afterMs: 60_000, severity: 'critical' },
];

/** The pseudo-target of `per: intake` deadman alerts. */
export const INTAKE_TARGET = { site: '_all', line: '_all', machine: '_all' } as const;

/** True if the rule describes a whole machine (its alerts carry no sensor). */
export function isMachineLevel(rule: Rule): boolean {
  return rule.type === 'deadman' && rule.per === 'machine';
}

export function isIntakeRule(rule: Rule): boolean {
  return rule.type === 'deadman' && rule.per === 'intake';
}

const globCache = new Map<string, RegExp>();
export function globToRegExp(glob: string): RegExp {
  let re = globCache.get(glob);
  if (!re) {
    const alternatives = glob.split('|').map((alt) =>
      alt
        .split('')
        .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.\\^$+{}()[\]]/g, '\\$&')))
        .join(''),
    );
    re = new RegExp(`^(?:${alternatives.join('|')})$`);
    if (globCache.size > 10_000) globCache.clear();
    globCache.set(glob, re);
  }
  return re;
}

export function matchGlob(glob: string, value: string): boolean {
  return glob === '*' || globToRegExp(glob).test(value);
}

export interface Target {
  site: string;
  line: string;
  machine: string;
  sensor?: string;
}

export function inScope(scope: Scope, t: Target): boolean {
  return (
    matchGlob(scope.site, t.site) &&
    matchGlob(scope.line, t.line) &&
    matchGlob(scope.machine, t.machine) &&
    (t.sensor === undefined || matchGlob(scope.sensor, t.sensor))
  );
}

/** Same rule + same target → same fingerprint, across restarts and processes. */
export function fingerprintOf(ruleId: string, t: Target): string {
  const key = [ruleId, t.site, t.line, t.machine, t.sensor ?? ''].join('\u0000');
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}

export function parseRule(input: unknown): Rule {
  return Rule.parse(input);
}
