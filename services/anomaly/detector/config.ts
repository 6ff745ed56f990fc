/**
 * Detector configuration: strict, every field defaulted, so `DetectorConfig.parse({})` is the
 * configuration used everywhere (live service, `npm run nab`, back-tests).
 */
import { z } from 'zod';

export const DetectorConfig = z
  .strictObject({
    /** Tag stamped on every score; bump when the algorithm or its defaults change. */
    modelVersion: z.string().min(1).default('pw-det-6'),
    /** Past readings the tfjs predictor sees (per stream, in arrival order). */
    window: z.number().int().min(4).max(64).default(16),
    /** Readings a stream needs before its scores are trusted (`warmingUp` is true before). */
    warmupReadings: z.number().int().min(2).default(64),
    /** Effective memory (readings) of the value normalisation and error scale. */
    normWindow: z.number().int().min(16).default(2000),
    /** Readings over which the recent record (maximum score) is kept, as 8 block maxima. */
    historyWindow: z.number().int().min(16).default(400),
    /** Memory (readings) of the long record, an exponentially decaying maximum. */
    longHistoryWindow: z.number().int().min(16).default(20000),
    /** The bar is max(recent record, this share of the long record); 0 disables the long record. */
    longRecordShare: z.number().min(0).max(1).default(0.6),
    /** Readings averaged into the short-term surprise that is compared with the record (1 = each reading on its own). */
    shortWindow: z.number().int().min(1).max(64).default(1),
    /** How scores become likelihoods: against the stream's record score (default), or a Gaussian fit of its history (HTM-style). */
    calibration: z.enum(['record', 'gaussian']).default('record'),
    /** A value beyond the stream's all-time range by more than this fraction of it is anomalous on its own; 0 disables. */
    rangeTolerance: z.number().nonnegative().default(0.02),
    /** …and by at least this many standard deviations of the prediction error. */
    rangeNoiseSigmas: z.number().nonnegative().default(0.5),
    /** Shortest run of identical readings reported as a stuck sensor (it must also be twice the longest recent run). */
    stuckMinRun: z.number().int().min(2).default(8),
    /** Floor (decimal digits of surprise) of the record a prediction surprise is compared with; also the Gaussian mode's minimum spread. */
    minSurpriseSpread: z.number().positive().default(0.2),
    /** Width of the predicted band, in error standard deviations. */
    bandSigmas: z.number().positive().default(3),
    /** Likelihood at or above which a reading counts as anomalous (the service's alert decision). */
    alertLikelihood: z.number().min(0).max(1).default(0.99998),
    /**
     * One event, one alarm: after a reading whose evidence reaches `trigger` × the stream's record, the
     * next `readings` readings of that stream are reported damped unless their evidence exceeds the
     * event's peak by `margin` (an event that keeps growing is still reported, and becomes the new peak).
     */
    refractory: z
      .strictObject({
        readings: z.number().int().min(0).default(40),
        trigger: z.number().positive().default(1.04),
        margin: z.number().min(1).default(1.35),
      })
      .default({ readings: 40, trigger: 1.04, margin: 1.35 }),
    /**
     * Weight of each evidence kind's record ratio before the strongest is taken: how much one kind's
     * "as surprising as its record" counts against another's.
     */
    evidenceWeights: z
      .strictObject({
        prediction: z.number().nonnegative().default(0.8),
        novelty: z.number().nonnegative().default(0.85),
        season: z.number().nonnegative().default(1),
        range: z.number().nonnegative().default(0.75),
        stuck: z.number().nonnegative().default(1),
      })
      .default({ prediction: 0.8, novelty: 0.85, season: 1, range: 0.75, stuck: 1 }),

    /** A time step larger than this multiple of the typical step is a gap: the window restarts. */
    gapFactor: z.number().min(1).default(10),
    /** Readings older than the stream's newest by more than this are rejected (still scored when younger). */
    maxLatenessMs: z.number().int().nonnegative().default(3_600_000),
    /** Forecast horizon of the per-sensor forecast. */
    forecastHorizonMs: z.number().int().positive().default(600_000),
    /** Time-to-limit is reported only when the crossing is predicted within this horizon, else null. */
    limitHorizonMs: z.number().int().positive().default(7 * 24 * 3_600_000),
    /** Streams kept in memory; the least recently used stream is evicted beyond this. */
    maxStreams: z.number().int().min(1).default(200_000),
    /** Streams idle (no reading) longer than this wall-clock time are evicted on the next call; 0 = never. */
    idleEvictMs: z.number().int().nonnegative().default(0),
    /** Sensors of one machine in the multivariate model (first come first served). */
    maxSensorsPerMachine: z.number().int().min(1).max(64).default(32),
    novelty: z
      .strictObject({
        /** Values per pattern window (the latest `dim` values, each the mean of `stride` readings). */
        dim: z.number().int().min(2).max(64).default(8),
        stride: z.number().int().min(1).max(64).default(1),
        /** Prototype windows remembered per stream. */
        prototypes: z.number().int().min(4).max(4096).default(32),
        /** Distance (fraction of the stream's range) within which a window matches a prototype. */
        vigilance: z.number().positive().default(0.05),
        /** Floor (fraction of range) of the record a novelty distance is compared with. */
        minSpread: z.number().positive().default(0.01),
      })
      .default({ dim: 8, stride: 1, prototypes: 32, vigilance: 0.05, minSpread: 0.01 }),
    season: z
      .strictObject({
        enabled: z.boolean().default(true),
        /** Length of the cycle (plants run daily shifts). */
        periodMs: z.number().int().positive().default(86_400_000),
        /** Phase bins of the seasonal profile per stream. */
        bins: z.number().int().min(2).max(1024).default(24),
        /** Readings a bin needs before it is trusted. */
        minSamples: z.number().int().min(1).default(12),
        /** EWMA rate of the profile (per reading in the bin). */
        learningRate: z.number().positive().max(1).default(0.05),
        /** EWMA rate of the sustained-departure score. */
        smoothing: z.number().positive().max(1).default(0.2),
      })
      .default({ enabled: true, periodMs: 86_400_000, bins: 24, minSamples: 12, learningRate: 0.05, smoothing: 0.2 }),
    model: z
      .strictObject({
        hidden: z.number().int().min(2).max(256).default(24),
        learningRate: z.number().positive().default(0.003),
        /** Training examples kept (reservoir over all streams). */
        replaySize: z.number().int().min(64).default(4096),
        /** Train after this many new accepted readings (over all streams). */
        trainEvery: z.number().int().min(16).default(1000),
        trainSteps: z.number().int().min(1).default(8),
        /**
         * Adam steps after which the shared model counts as mature: from then on it takes the same
         * `trainSteps` per `matureTrainEvery` readings (it only tracks slow change, and training
         * no longer costs more CPU than scoring). Counted in steps, so it is checkpointed and
         * deterministic; 0 = never.
         */
        matureSteps: z.number().int().min(0).default(4000),
        matureTrainEvery: z.number().int().min(16).default(8000),
        batchSize: z.number().int().min(8).default(64),
        seed: z.number().int().default(42),
      })
      .default({
        hidden: 24,
        learningRate: 0.003,
        replaySize: 4096,
        trainEvery: 1000,
        trainSteps: 8,
        matureSteps: 4000,
        matureTrainEvery: 8000,
        batchSize: 64,
        seed: 42,
      }),
  });
export type DetectorConfig = z.infer<typeof DetectorConfig>;
