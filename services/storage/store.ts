/**
 * The time-series store interface. Two implementations honour it with the same guarantees:
 * InfluxDB 1.x (`influx` package, the only module that imports it) and the embedded store
 * (used when no INFLUX_URL is configured). The storage writer writes through it; the gateway's
 * REST API and dashboard backfill read through it. `test/conformance/` runs one suite on both.
 */
import type { Reading, SensorScore, MachineScore, Alert } from '../../common/messages.ts';

export interface SeriesQuery {
  site?: string;
  line?: string;
  machine: string;
  /** Omit for all sensors of the machine. */
  sensor?: string;
  /** Epoch ms, inclusive. */
  from: number;
  /** Epoch ms, exclusive. */
  to: number;
  /** No series in the answer has more points than this; the store picks raw or rolled-up data. */
  maxPoints: number;
}

export interface SeriesPoint {
  ts: number;
  /** Raw value, or the bucket mean when rolled up. */
  value: number;
  min?: number;
  max?: number;
}

export interface Series {
  site: string;
  line: string;
  machine: string;
  sensor: string;
  /** 'raw', or the rollup bucket such as '1m' / '1h'. */
  resolution: string;
  points: SeriesPoint[];
}

export interface ScoreSeriesPoint {
  ts: number;
  value: number;
  predicted: number;
  lower: number;
  upper: number;
  likelihood: number;
}

export interface LatestValue {
  site: string;
  line: string;
  machine: string;
  sensor: string;
  ts: number;
  value: number;
  unit?: string;
  quality?: string;
}

export interface MachineInfo {
  site: string;
  line: string;
  machine: string;
  sensors: string[];
  lastSeen: number;
}

export interface WriteResult {
  written: number;
  /** Points refused (cardinality guard, rejected by the database), with reasons. */
  rejected: { reason: string; code: string; item: unknown }[];
}

export interface TimeSeriesStore {
  readonly kind: 'influx' | 'embedded';
  /** Creates database, retention policies and rollups idempotently. */
  init(): Promise<void>;
  writeReadings(readings: Reading[]): Promise<WriteResult>;
  writeScores(scores: (SensorScore | MachineScore)[]): Promise<WriteResult>;
  writeAlerts(alerts: Alert[]): Promise<WriteResult>;
  querySeries(q: SeriesQuery): Promise<Series[]>;
  queryScores(q: SeriesQuery): Promise<{ sensor: string; resolution: string; points: ScoreSeriesPoint[] }[]>;
  queryAlerts(q: { machine?: string; from: number; to: number; limit: number }): Promise<Alert[]>;
  /** Newest value per sensor by event time (late data never overwrites a newer value). */
  latest(filter: { site?: string; line?: string; machine?: string }): Promise<LatestValue[]>;
  machines(): Promise<MachineInfo[]>;
  close(): Promise<void>;
}
