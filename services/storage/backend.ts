/**
 * What both stores offer beyond the gateway's `TimeSeriesStore`, and the options they share.
 * `TimeSeriesStore` (store.ts) stays as the gateway knows it; the writer and tests use this.
 */
import type { Logger } from '../../common/logger.ts';
import type { Registry } from '../../common/metrics.ts';
import type { ReadingBatch } from '../../common/reading-batch.ts';
import type { SeriesQuery, TimeSeriesStore } from './store.ts';

/** The result of a columnar write: refused points by their index in the batch. */
export interface BatchWriteResult {
  written: number;
  rejected: { index: number; code: string; reason: string }[];
}

export interface MachineScorePoint {
  ts: number;
  rawScore: number;
  likelihood: number;
  /** Raw points only: each sensor's share of the score. */
  contributions?: Record<string, number>;
}

export interface StorageBackend extends TimeSeriesStore {
  /** Machine-level scores over a range, raw or bucketed (max per bucket) within maxPoints. */
  queryMachineScores(q: Omit<SeriesQuery, 'sensor'>): Promise<{ site: string; line: string; machine: string; resolution: string; points: MachineScorePoint[] }[]>;
  /** Brings the rollups up to date with everything written so far (late data included). */
  flushRollups(): Promise<void>;
  /** Deletes data past its retention now (InfluxDB does this itself; the embedded store on a timer). */
  enforceRetention(): Promise<void>;
  /**
   * The writer's hot path: readings in columns (reading-batch.ts), with the same guarantees and
   * results as `writeReadings`. Optional: the writer falls back to `writeReadings` without it.
   */
  writeReadingBatch?(batch: ReadingBatch): Promise<BatchWriteResult>;
}

export interface StoreOptions {
  logger: Logger;
  /** Where the guard's and the store's metrics go (usually the writer's registry). */
  metrics?: Registry;
  rawRetentionDays: number;
  rollupRetentionDays: number;
  maxSeriesPerMachine: number;
  maxSeries: number;
  /** InfluxDB: HTTP request timeout. */
  requestTimeoutMs: number;
  /** Embedded store: the DuckDB file. */
  embeddedPath: string;
  /** Embedded store: how often retention runs. */
  retentionIntervalMs: number;
  /**
   * Embedded store: where DuckDB runs. 'worker' (default): its own worker thread, so appends overlap
   * with the writer's decoding (embedded-worker.ts); 'main': the calling thread.
   */
  embeddedThread?: 'worker' | 'main';
  /** Clock; tests move it. */
  now?: () => number;
}

export const DEFAULT_STORE_OPTIONS: Omit<StoreOptions, 'logger' | 'embeddedPath'> = {
  rawRetentionDays: 30,
  rollupRetentionDays: 730,
  maxSeriesPerMachine: 1000,
  maxSeries: 100_000,
  requestTimeoutMs: 10_000,
  retentionIntervalMs: 600_000,
};
