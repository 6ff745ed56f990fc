/**
 * What the service needs from a streaming detector: the subset of `StreamDetector`
 * (`./detector/index.ts`) that the Kafka pipeline, checkpoints and re-scoring call. Keeping it this
 * small lets the unit tests drive the service with a fake and keeps the service independent of how
 * the models work inside.
 */
import type { Reading, SensorScore, MachineScore } from '../../common/messages.ts';
import type { ReadingBatch } from '../../common/reading-batch.ts';
import type { ColumnScoreOutput } from './score-columns.ts';

/** JSON-serialisable detector state; `version` is the model version that produced it. */
export interface DetectorSnapshotLike {
  version: string;
  createdAt: number;
}

export interface ScoreOutputLike {
  sensor: SensorScore[];
  machine: MachineScore[];
  rejected: { reading: Reading; reason: string }[];
}

export type SensorLimits = Record<string, { upper?: number; lower?: number }>;

export interface ScoringDetector {
  readonly modelVersion: string;
  /** Scores readings of many streams in one call; readings of one stream arrive in offset order. */
  scoreBatch(readings: Reading[]): Promise<ScoreOutputLike>;
  /**
   * The same scoring on a column batch (the service's hot path): no object per reading or score.
   * Optional: without it the service bridges through `scoreBatch` (`scoreColumnsViaObjects`).
   * Must give exactly the scores `scoreBatch` gives for the same readings. It must not keep `input`
   * after it returns (the service reuses the batch), and the service copies what it keeps of the
   * output before the next call (a detector may reuse its output columns).
   */
  scoreColumns?(input: ReadingBatch): Promise<ColumnScoreOutput>;
  setLimits?(limits: SensorLimits): void;
  snapshot(): Promise<DetectorSnapshotLike>;
  /**
   * Optional: the state as of now, completed later while scoring goes on (copy-on-write). The
   * service captures under its lock and completes outside it, so a big checkpoint does not stop
   * scoring. `complete()` must be called.
   */
  captureSnapshot?(): { complete(): Promise<DetectorSnapshotLike> };
  restore(s: DetectorSnapshotLike): Promise<void>;
  streamCount(): number;
  stateBytes(): number;
  dispose(): void;
}

/** Creates detectors for the service: fresh, or restored from a checkpoint, with a given version. */
export interface DetectorFactory {
  /** A fresh detector reporting `modelVersion` (default: the configured one). */
  create(modelVersion?: string): Promise<ScoringDetector>;
  /** A detector reporting `modelVersion`, restored from `snapshot`. */
  restore(snapshot: DetectorSnapshotLike, modelVersion: string): Promise<ScoringDetector>;
  /** The configured model version. */
  readonly defaultVersion: string;
}
