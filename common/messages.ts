/**
 * The shared vocabulary of Plantwatch: readings, anomaly scores, alerts and dead letters.
 * Every process boundary (MQTT payload, Kafka record, REST body, socket event) validates with these
 * schemas, so a field means the same thing everywhere.
 */
import { z } from 'zod';

/** Identifier segment of the plant hierarchy; also an MQTT topic level and an InfluxDB tag value. */
export const Identifier = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9_.:-]+$/, 'letters, digits and _ . : - only');

export const Quality = z.enum(['good', 'uncertain', 'bad']);
export type Quality = z.infer<typeof Quality>;

/** Epoch milliseconds. */
export const EpochMs = z.number().int().nonnegative();

/**
 * One sensor reading.
 * `ts` is event time: when the device measured it. `receivedAt` is arrival time at the edge.
 */
export const Reading = z.strictObject({
  site: Identifier,
  line: Identifier,
  machine: Identifier,
  sensor: Identifier,
  ts: EpochMs,
  value: z.number().refine(Number.isFinite, 'must be a finite number'),
  unit: z.string().max(32).optional(),
  quality: Quality.optional(),
  receivedAt: EpochMs,
});
export type Reading = z.infer<typeof Reading>;

/**
 * A Kafka record value on `plantwatch.readings`: one reading, or an array of readings of the same
 * machine (the record key), in event-time order as the device sent them.
 */
export const ReadingRecord = z.union([Reading, z.array(Reading).min(1)]);
export type ReadingRecord = z.infer<typeof ReadingRecord>;

/** Short-horizon forecast for one sensor. */
export const Forecast = z.strictObject({
  horizonMs: z.number().int().positive(),
  value: z.number(),
  lower: z.number(),
  upper: z.number(),
});

/** Score of one reading by the sensor's model. */
export const SensorScore = z.strictObject({
  kind: z.literal('sensor'),
  site: Identifier,
  line: Identifier,
  machine: Identifier,
  sensor: Identifier,
  ts: EpochMs,
  value: z.number(),
  /** What the model expected, with its band. */
  predicted: z.number(),
  lower: z.number(),
  upper: z.number(),
  /** Unbounded anomaly score (e.g. a normalised error). */
  rawScore: z.number().nonnegative(),
  /** Calibrated probability-like anomaly likelihood in [0, 1]. */
  likelihood: z.number().min(0).max(1),
  forecast: Forecast.optional(),
  /** Predicted milliseconds until the configured limit is crossed; null when not expected in the horizon. */
  timeToLimitMs: z.number().nonnegative().nullable().optional(),
  modelVersion: z.string(),
  /** True while the model is still learning this stream: the score is not trusted yet. */
  warmingUp: z.boolean(),
});
export type SensorScore = z.infer<typeof SensorScore>;

/** Score of a whole machine from the multivariate model, with which sensors drove it. */
export const MachineScore = z.strictObject({
  kind: z.literal('machine'),
  site: Identifier,
  line: Identifier,
  machine: Identifier,
  ts: EpochMs,
  rawScore: z.number().nonnegative(),
  likelihood: z.number().min(0).max(1),
  /** Share of the score per sensor, summing to about 1. */
  contributions: z.record(z.string(), z.number()),
  modelVersion: z.string(),
  warmingUp: z.boolean(),
});
export type MachineScore = z.infer<typeof MachineScore>;

export const Score = z.discriminatedUnion('kind', [SensorScore, MachineScore]);
export type Score = z.infer<typeof Score>;
/** A Kafka record value on `plantwatch.scores`: one score or an array (same machine). */
export const ScoreRecord = z.union([Score, z.array(Score).min(1)]);

export const Severity = z.enum(['info', 'warning', 'critical']);
export type Severity = z.infer<typeof Severity>;
export const AlertStatus = z.enum(['pending', 'firing', 'resolved']);
export type AlertStatus = z.infer<typeof AlertStatus>;

/** An alert state change, published on `plantwatch.alerts`. */
export const Alert = z.strictObject({
  /** Stable identity of the alert: same rule + same scope → same fingerprint. */
  fingerprint: z.string().min(1),
  rule: z.string().min(1),
  severity: Severity,
  status: AlertStatus,
  site: Identifier,
  line: Identifier,
  machine: Identifier,
  sensor: Identifier.optional(),
  labels: z.record(z.string(), z.string()),
  summary: z.string(),
  /** The value that triggered or last evaluated the rule. */
  value: z.number().nullable(),
  startsAt: EpochMs,
  endsAt: EpochMs.nullable(),
  acknowledgedBy: z.string().nullable(),
  acknowledgedAt: EpochMs.nullable(),
  silencedUntil: EpochMs.nullable(),
  /** When this state change happened. */
  updatedAt: EpochMs,
});
export type Alert = z.infer<typeof Alert>;

/** Anything a component refused, with enough context to find and replay it. */
export const DeadLetter = z.strictObject({
  /** Stable machine-readable reason, e.g. `READING_INVALID`, `PAYLOAD_NOT_JSON`. */
  code: z.string(),
  /** Human-readable explanation naming the bad field. */
  reason: z.string(),
  component: z.string(),
  /** Where it came from: MQTT topic, Kafka topic/partition/offset, HTTP path… */
  source: z.record(z.string(), z.union([z.string(), z.number()])),
  /** The raw bytes as received, base64. */
  rawBase64: z.string(),
  receivedAt: EpochMs,
});
export type DeadLetter = z.infer<typeof DeadLetter>;

/** One-line summary of a zod error, naming the offending path: used in logs and dead letters. */
export function describeZodError(err: z.ZodError): string {
  return err.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
}
