/**
 * The anomaly service's Prometheus metrics (`plantwatch_anomaly_*`). `pipeline` is `live` for the
 * consumer-group service and `rescore` for history replays, so a replay never hides in the live
 * figures.
 */
import { prom, type Registry } from '../../common/metrics.ts';

export interface AnomalyMetrics {
  readingsScored: prom.Counter<'pipeline'>;
  batches: prom.Counter<'pipeline'>;
  batchReadings: prom.Histogram<'pipeline'>;
  scoreDuration: prom.Histogram<'pipeline'>;
  latency: prom.Histogram;
  records: prom.Counter<'pipeline'>;
  scoresProduced: prom.Counter<'pipeline' | 'kind'>;
  deadLettered: prom.Counter<'pipeline' | 'code'>;
  commitFailures: prom.Counter<'pipeline'>;
  produceFailures: prom.Counter<'pipeline'>;
  inFlightReadings: prom.Gauge<'pipeline'>;
  checkpoints: prom.Counter<'result'>;
  checkpointDuration: prom.Histogram;
  checkpointCapture: prom.Histogram;
  lastCheckpoint: prom.Gauge;
  modelInfo: prom.Gauge<'model_version' | 'origin'>;
  rescoreJobs: prom.Gauge<'state'>;
}

export interface GaugeSources {
  streams: () => number;
  stateBytes: () => number;
}

export function createAnomalyMetrics(registry: Registry, sources: GaugeSources): AnomalyMetrics {
  const registers = [registry];
  // A restarted service in the same process re-registers its metrics on the component's registry.
  for (const m of registry.getMetricsAsArray()) if (m.name.startsWith('plantwatch_anomaly_')) registry.removeSingleMetric(m.name);
  new prom.Gauge({
    name: 'plantwatch_anomaly_streams_active',
    help: 'Sensor streams the live detector holds state for',
    registers,
    collect() {
      this.set(sources.streams());
    },
  });
  // The detector keeps this sum up to date as streams come and go: reading it is O(1), so a scrape
  // never walks 100k streams in the middle of live scoring.
  new prom.Gauge({
    name: 'plantwatch_anomaly_state_bytes',
    help: 'Approximate bytes of per-stream detector state (live detector)',
    registers,
    collect() {
      this.set(sources.stateBytes());
    },
  });
  return {
    readingsScored: new prom.Counter({
      name: 'plantwatch_anomaly_readings_scored_total',
      help: 'Readings handed to the detector and produced as scores (rejected and failed ones included)',
      labelNames: ['pipeline'],
      registers,
    }),
    batches: new prom.Counter({
      name: 'plantwatch_anomaly_batches_total',
      help: 'scoreBatch calls',
      labelNames: ['pipeline'],
      registers,
    }),
    batchReadings: new prom.Histogram({
      name: 'plantwatch_anomaly_batch_readings',
      help: 'Readings per scoreBatch call (grows with load: batching across streams)',
      labelNames: ['pipeline'],
      buckets: [1, 8, 64, 256, 1024, 4096, 8192, 32768],
      registers,
    }),
    scoreDuration: new prom.Histogram({
      name: 'plantwatch_anomaly_score_batch_duration_seconds',
      help: 'Time inside the detector per scoreBatch call',
      labelNames: ['pipeline'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    latency: new prom.Histogram({
      name: 'plantwatch_anomaly_scoring_latency_seconds',
      help: 'Live pipeline: Kafka record timestamp (arrival) to its scores acknowledged by the broker',
      buckets: [0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    records: new prom.Counter({
      name: 'plantwatch_anomaly_records_consumed_total',
      help: 'Kafka records consumed from the readings topic',
      labelNames: ['pipeline'],
      registers,
    }),
    scoresProduced: new prom.Counter({
      name: 'plantwatch_anomaly_scores_produced_total',
      help: 'Scores produced (acknowledged by the broker)',
      labelNames: ['pipeline', 'kind'],
      registers,
    }),
    deadLettered: new prom.Counter({
      name: 'plantwatch_anomaly_dead_lettered_total',
      help: 'Records or readings sent to the dead-letter topic, by code',
      labelNames: ['pipeline', 'code'],
      registers,
    }),
    commitFailures: new prom.Counter({
      name: 'plantwatch_anomaly_commit_failures_total',
      help: 'Offset commits that failed after the scores were produced (the batch will be replayed)',
      labelNames: ['pipeline'],
      registers,
    }),
    produceFailures: new prom.Counter({
      name: 'plantwatch_anomaly_produce_failures_total',
      help: 'Produce attempts that failed; they are retried and nothing is committed until one succeeds',
      labelNames: ['pipeline'],
      registers,
    }),
    inFlightReadings: new prom.Gauge({
      name: 'plantwatch_anomaly_in_flight_readings',
      help: 'Readings queued, being scored or awaiting the produce ack',
      labelNames: ['pipeline'],
      registers,
    }),
    checkpoints: new prom.Counter({
      name: 'plantwatch_anomaly_checkpoints_total',
      help: 'Model checkpoints written, by result',
      labelNames: ['result'],
      registers,
    }),
    checkpointDuration: new prom.Histogram({
      name: 'plantwatch_anomaly_checkpoint_duration_seconds',
      help: 'Snapshot plus write time of a checkpoint',
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    checkpointCapture: new prom.Histogram({
      name: 'plantwatch_anomaly_checkpoint_capture_seconds',
      help: 'Time scoring is paused to capture the model for a checkpoint (after the batches in flight were committed)',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    lastCheckpoint: new prom.Gauge({
      name: 'plantwatch_anomaly_last_checkpoint_timestamp_seconds',
      help: 'When the last checkpoint of the live model was written',
      registers,
    }),
    modelInfo: new prom.Gauge({
      name: 'plantwatch_anomaly_model_info',
      help: 'The live model version (value 1)',
      labelNames: ['model_version', 'origin'],
      registers,
    }),
    rescoreJobs: new prom.Gauge({
      name: 'plantwatch_anomaly_rescore_jobs',
      help: 'Re-scoring jobs by state',
      labelNames: ['state'],
      registers,
    }),
  };
}
