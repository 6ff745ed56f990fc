/**
 * Configuration of the anomaly service (`anomaly:` section). Strict, every key has a default, so
 * `AnomalyConfig.parse({})` is a working service: consume `plantwatch.readings` in group
 * `plantwatch-anomaly`, score, produce to `plantwatch.scores`, ops server on :9102.
 */
import { z } from 'zod';
import { TOPICS } from '../../common/topics.ts';
import { DetectorConfig } from './detector/index.ts';

/** `site/line/machine/sensor` */
const SensorKey = z.string().regex(/^[^/\s]+\/[^/\s]+\/[^/\s]+\/[^/\s]+$/, 'expected site/line/machine/sensor');

export const SensorLimit = z
  .strictObject({
    upper: z.number().refine(Number.isFinite, 'must be finite').optional(),
    lower: z.number().refine(Number.isFinite, 'must be finite').optional(),
  })
  .refine((l) => l.upper !== undefined || l.lower !== undefined, 'set upper, lower or both')
  .refine((l) => l.upper === undefined || l.lower === undefined || l.lower < l.upper, 'lower must be below upper');

/** Re-scored history goes to its own topic by default, so alert rules never fire on replayed data. */
export const RESCORE_TOPIC = TOPICS.scoresRescore;

export const AnomalyConfig = z.strictObject({
  /** Consumer group shared by all instances of the live service. */
  groupId: z.string().min(1).default('plantwatch-anomaly'),
  inputTopic: z.string().min(1).default(TOPICS.readings),
  outputTopic: z.string().min(1).default(TOPICS.scores),
  deadLetterTopic: z.string().min(1).default(TOPICS.deadLetter),
  /**
   * Where a group with no committed offsets starts. `true` (default): readings accepted into Kafka
   * before the service first ran are still scored; with `false` they are skipped.
   */
  fromBeginning: z.boolean().default(true),
  /** The detector's own configuration (models, windows, warm-up, forecast horizon). */
  detector: DetectorConfig.prefault({}),
  model: z
    .strictObject({
      /** Folder for checkpoints; empty: `<dataDir>/anomaly/models`. */
      dir: z.string().default(''),
      /**
       * A pre-trained model to load at start: a checkpoint folder (or its `model.json`) written by
       * this service. Empty: restore the last checkpoint, or start fresh.
       */
      path: z.string().default(''),
      /** Periodic checkpoint; 0 disables (a checkpoint is still written on close). */
      checkpointIntervalMs: z.number().int().nonnegative().default(300_000),
      /** Old versions kept on disk besides the live one; older folders are deleted. */
      keepVersions: z.number().int().min(1).max(1000).default(5),
    })
    .prefault({}),
  /** Per-sensor limits for time-to-limit prediction, keyed `site/line/machine/sensor`. */
  limits: z.record(SensorKey, SensorLimit).default({}),
  batch: z
    .strictObject({
      /** Upper bound on readings in one `scoreBatch` call (a bigger Kafka batch is split across calls). */
      maxReadings: z.number().int().positive().default(8192),
      /**
       * Adaptive limit: a call takes at most as many readings as the detector is measured to score
       * in this many ms, so no reading waits long behind one call (0: always up to `maxReadings`).
       */
      targetBatchMs: z.number().nonnegative().max(10_000).default(20),
      /** The adaptive limit never drops below this many readings (per-call costs stay shared). */
      minReadings: z.number().int().positive().default(256),
      /**
       * Scored batches whose results may be waiting for the produce ack at once. With the batch
       * being scored and the Kafka fetch buffers this bounds the readings held in memory.
       */
      maxInFlight: z.number().int().min(1).max(64).default(4),
      /**
       * Hand a fetched batch over as soon as it is queued for scoring, so the next fetch overlaps
       * scoring and producing; offsets are still committed only after the scores were acknowledged
       * (per partition, in order). `false`: each fetch waits until its batches are committed.
       */
      prefetch: z.boolean().default(true),
      /** Partitions processed at once by one instance; their batches are merged into one scoring call. */
      partitionsConsumedConcurrently: z.number().int().min(1).max(256).default(6),
      maxBytesPerPartition: z.number().int().positive().default(1024 * 1024),
      maxBytes: z.number().int().positive().default(8 * 1024 * 1024),
      /** Longest the broker holds a fetch when fewer bytes are ready (adds to latency at low load). */
      maxWaitMs: z.number().int().min(0).max(10_000).default(50),
      /** Scores per produced record (one record holds scores of one machine). */
      maxScoresPerRecord: z.number().int().min(1).max(100_000).default(500),
    })
    .prefault({}),
  /**
   * Compression of produced score records. `gzip` runs in libuv's thread pool (off the event loop)
   * and shrinks score JSON several times; consumers (kafkajs, librdkafka) read it transparently.
   */
  compression: z.enum(['none', 'gzip']).default('none'),
  /**
   * Where the score producer runs. `worker` (default): a kafkajs producer in its own worker thread
   * (common/kafka-producer-thread.ts) that also encodes the score records (score-output.ts), so
   * encoding, building record batches and writing them to the socket run on the other core, beside
   * fetching, decoding and scoring. `main`: all of it in the service's thread.
   */
  producerThread: z.enum(['worker', 'main']).default('worker'),
  /**
   * Nice value of the producer thread (Linux; 0 = the service's own priority). Its work (encoding
   * and sending scores) can wait a few ms; fetching, decoding and scoring cannot: niced, the thread
   * runs when a core is free instead of preempting the scoring thread at every hand-off.
   */
  producerThreadNice: z.number().int().min(0).max(19).default(10),
  group: z
    .strictObject({
      /** An instance that stops heart-beating for this long loses its partitions to the others. */
      sessionTimeoutMs: z.number().int().min(1000).default(30_000),
      heartbeatIntervalMs: z.number().int().min(100).default(3_000),
      rebalanceTimeoutMs: z.number().int().min(1000).default(60_000),
    })
    .prefault({}),
  httpHost: z.string().default('0.0.0.0'),
  /** Ops server (/metrics, /healthz, control endpoints); 0 picks a free port. */
  httpPort: z.number().int().min(0).max(65535).default(9102),
  rescore: z
    .strictObject({
      /** Each job consumes in its own group `<prefix>-<modelVersion>`. */
      groupIdPrefix: z.string().min(1).default('plantwatch-anomaly-rescore'),
      outputTopic: z.string().min(1).default(RESCORE_TOPIC),
      /** Jobs running at once; each holds a detector with its own state. */
      maxConcurrentJobs: z.number().int().min(1).max(16).default(1),
      /** `POST /retrain` without `from` replays this far back. */
      retrainLookbackMs: z.number().int().positive().default(24 * 3600_000),
    })
    .prefault({}),
});
export type AnomalyConfig = z.infer<typeof AnomalyConfig>;
export type AnomalyConfigInput = z.input<typeof AnomalyConfig>;
