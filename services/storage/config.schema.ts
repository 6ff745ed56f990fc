/**
 * The `storage` config section. Every key has its default here, so `StorageConfig.parse({})` is a
 * working configuration (embedded store, all three topics, ops HTTP on 9103).
 *
 * The InfluxDB URL normally comes from the top-level `influx.url` (env INFLUX_URL): the platform
 * passes that section as the third argument of `start()`. `influxUrl` here is for running the
 * storage component alone with its own config; the third argument wins when given.
 */
import { z } from 'zod';

const positiveInt = () => z.number().int().positive();

export const StorageConfig = z.strictObject({
  /** InfluxDB 1.x URL with the database in the path; '' = the embedded store. See header. */
  influxUrl: z.union([z.literal(''), z.url({ protocol: /^https?$/ })]).default(''),
  /** Embedded store file; '' = `<dataDir>/storage/plantwatch.duckdb`. */
  embeddedPath: z.string().default(''),
  /** Kafka consumer group of the writer. */
  groupId: z.string().min(1).default('plantwatch-storage'),
  /** Ops HTTP (/metrics, /healthz); 0 picks a free port. */
  httpPort: z.number().int().min(0).max(65535).default(9103),
  httpHost: z.string().default('0.0.0.0'),
  /** A batch is written when it holds this many points… */
  batchSize: positiveInt().default(5000),
  /** …or when its oldest point has waited this long. */
  lingerMs: z.number().int().nonnegative().default(100),
  /** Batches written at the same time (InfluxDB ingests two 5k batches in flight ~2x faster than one). */
  concurrency: positiveInt().max(64).default(2),
  /** Points held in memory before the consumer stops fetching (backpressure during an outage). */
  maxBufferedPoints: positiveInt().default(50_000),
  /** Retry backoff for retriable write errors: exponential with jitter between these bounds, forever. */
  retryInitialDelayMs: positiveInt().default(200),
  retryMaxDelayMs: positiveInt().default(10_000),
  /** How often finished offsets are committed to Kafka. */
  commitIntervalMs: positiveInt().default(200),
  /** close(): time allowed to write what is buffered; what is left is replayed after restart. */
  drainTimeoutMs: positiveInt().default(10_000),
  /** Kafka group session: a crashed writer's partitions move to another member after this long. */
  sessionTimeoutMs: positiveInt().default(30_000),
  heartbeatIntervalMs: positiveInt().default(3_000),
  /** Kafka partitions processed at the same time. */
  partitionsConsumedConcurrently: positiveInt().max(64).default(6),
  /** InfluxDB HTTP request timeout. */
  requestTimeoutMs: positiveInt().default(10_000),
  /** Raw points are kept this long (InfluxDB retention policy `plantwatch_raw`). */
  rawRetentionDays: positiveInt().default(30),
  /** 1m/1h rollups are kept this long (`plantwatch_rollup`). */
  rollupRetentionDays: positiveInt().default(730),
  /** Cardinality guard: new series beyond these are refused (metric + log), not written. */
  maxSeriesPerMachine: positiveInt().default(1000),
  maxSeries: positiveInt().default(100_000),
  /** Default point limit per series for API/dashboard queries (the gateway may pass its own). */
  maxPointsPerSeries: positiveInt().default(2000),
  /** Embedded store: how often retention and compaction run. */
  retentionIntervalMs: positiveInt().default(600_000),
  /** Embedded store: DuckDB in its own worker thread (appends overlap with decoding) or on the writer's thread. */
  embeddedThread: z.enum(['worker', 'main']).default('worker'),
});
export type StorageConfig = z.infer<typeof StorageConfig>;
