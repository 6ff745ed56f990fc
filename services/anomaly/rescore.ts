/**
 * Re-scoring history: Kafka is the commit log. A job looks up, per partition, the first offset at or
 * after `from` (ListOffsets by timestamp) and the end (the log end now, or the offset of `to`),
 * then replays that range through a NEW detector (a new model version) in its own consumer group,
 * producing scores tagged with the new version to its own output topic (refused records are counted,
 * not dead-lettered again: the live service did that already). The live pipeline keeps
 * running beside it. When the range is done the new version is checkpointed, and optionally promoted
 * to live (that is what `retrain` does).
 */
import { ensureTopics, type Consumer, type KafkaClients, type BatchProducer } from '../../common/kafka.ts';
import type { Logger } from '../../common/logger.ts';
import { PlatformError } from '../../common/errors.ts';
import type { AnomalyConfig } from './config.schema.ts';
import type { ScoringDetector } from './detector-port.ts';
import type { AnomalyMetrics } from './metrics.ts';
import { TrainingLedger } from './ledger.ts';
import { createPipeline, type Pipeline } from './pipeline.ts';

export type JobState = 'starting' | 'running' | 'done' | 'failed' | 'cancelled';

export interface RescoreRequest {
  /** Replay readings whose Kafka timestamp is at or after this (epoch ms). */
  from: number;
  /** Stop before readings at or after this (epoch ms); default: the log end when the job starts. */
  to?: number;
  /** Name of the new model version. */
  modelVersion: string;
  /** Start from this checkpoint (version or folder); default: a fresh detector. */
  model?: string;
  /** Make the new version the live model once done. */
  promote?: boolean;
  /** `rescore` or `retrain` (recorded in the model's metadata). */
  kind?: 'rescore' | 'retrain';
}

export interface PartitionProgress {
  partition: number;
  startOffset: string;
  endOffset: string;
  /** Next offset to score; equals endOffset when the partition is done. */
  position: string;
}

export interface RescoreStatus {
  id: string;
  kind: 'rescore' | 'retrain';
  modelVersion: string;
  state: JobState;
  from: number;
  to: number | null;
  groupId: string;
  outputTopic: string;
  partitions: PartitionProgress[];
  readingsScored: number;
  startedAt: number;
  finishedAt: number | null;
  checkpoint: string | null;
  promoted: boolean;
  error: string | null;
}

export interface RescoreDeps {
  kafka: KafkaClients;
  producer: BatchProducer;
  logger: Logger;
  metrics: AnomalyMetrics;
  config: AnomalyConfig;
  /** Builds the job's detector (restored from `model` when given) with the new version. */
  createDetector: (req: RescoreRequest) => Promise<{ detector: ScoringDetector; ledger: TrainingLedger | null; parent: string | null }>;
  /** Checkpoints the finished version; returns the folder. */
  saveModel: (job: RescoreStatus, detector: ScoringDetector, ledger: TrainingLedger, parent: string | null, pipeline: Pipeline | null) => Promise<string>;
  /** Hands the finished detector to the live pipeline (promote); the live side owns it afterwards. */
  promote: (version: string, detector: ScoringDetector, ledger: TrainingLedger) => Promise<void>;
  now?: () => number;
}

export class RescoreJob {
  readonly status: RescoreStatus;
  readonly done: Promise<RescoreStatus>;
  private pipeline: Pipeline | null = null;
  private detector: ScoringDetector | null = null;
  private ledger: TrainingLedger;
  private parent: string | null = null;
  private resolveDone!: (s: RescoreStatus) => void;
  private finishing = false;
  private seeked = new Set<number>();
  /** Readings the starting model had already learned from (a job may start from a checkpoint). */
  private baseReadings = 0;
  private readonly now: () => number;

  constructor(
    readonly id: string,
    private readonly req: RescoreRequest,
    private readonly deps: RescoreDeps,
  ) {
    this.now = deps.now ?? Date.now;
    const cfg = deps.config;
    this.status = {
      id,
      kind: req.kind ?? 'rescore',
      modelVersion: req.modelVersion,
      state: 'starting',
      from: req.from,
      to: req.to ?? null,
      groupId: `${cfg.rescore.groupIdPrefix}-${req.modelVersion}`,
      outputTopic: cfg.rescore.outputTopic,
      partitions: [],
      readingsScored: 0,
      startedAt: this.now(),
      finishedAt: null,
      checkpoint: null,
      promoted: false,
      error: null,
    };
    this.ledger = new TrainingLedger(cfg.inputTopic);
    this.done = new Promise((r) => (this.resolveDone = r));
  }

  /** Looks up the offset range and starts consuming; resolves once running (or already done). */
  async start(): Promise<void> {
    const { kafka, config, logger } = this.deps;
    const log = logger.child({ job: this.id, modelVersion: this.req.modelVersion });
    try {
      const range = await lookupRange(kafka, config.inputTopic, this.req.from, this.req.to);
      this.status.partitions = range.map((r) => ({ ...r, position: r.startOffset }));
      const built = await this.deps.createDetector(this.req);
      this.detector = built.detector;
      this.parent = built.parent;
      if (built.ledger) this.ledger = built.ledger;
      this.baseReadings = this.ledger.training().readings;
      if (this.remaining().length === 0) {
        log.info('nothing to replay in the requested range');
        this.status.state = 'running';
        void this.finish();
        return;
      }
      await ensureTopics(kafka, [{ topic: config.rescore.outputTopic, numPartitions: range.length }]);
      const byPartition = new Map(this.status.partitions.map((p) => [p.partition, p]));
      this.pipeline = createPipeline({
        name: 'rescore',
        kafka,
        producer: this.deps.producer,
        logger: log,
        metrics: this.deps.metrics,
        groupId: this.status.groupId,
        inputTopic: config.inputTopic,
        outputTopic: config.rescore.outputTopic,
        deadLetterTopic: null,
        fromBeginning: true,
        compression: config.compression,
        // A replay tracks its progress and end per committed batch: no prefetching.
        batch: { ...config.batch, prefetch: false, partitionsConsumedConcurrently: Math.min(config.batch.partitionsConsumedConcurrently, 2) },
        group: config.group,
        detector: () => this.detector!,
        ledger: () => this.ledger,
        headers: { 'plantwatch-model-version': this.req.modelVersion, 'plantwatch-rescore-job': this.id },
        filter: (partition, offset) => {
          const p = byPartition.get(partition);
          if (!p) return 'stop';
          if (offset < BigInt(p.startOffset)) return 'skip';
          return offset < BigInt(p.endOffset) ? 'take' : 'stop';
        },
        onGroupJoin: (consumer: Consumer, partitions) => {
          // Only the first time a partition is assigned: later joins resume from the job's commits.
          for (const partition of partitions) {
            const p = byPartition.get(partition);
            if (!p || this.seeked.has(partition)) continue;
            this.seeked.add(partition);
            consumer.seek({ topic: config.inputTopic, partition, offset: p.startOffset });
          }
        },
        onCommitted: (partition, lastOffset) => {
          const p = byPartition.get(partition);
          if (!p) return;
          const next = lastOffset + 1n;
          p.position = (next < BigInt(p.endOffset) ? next : BigInt(p.endOffset)).toString();
          if (this.remaining().length === 0) void this.finish();
        },
      });
      await this.pipeline.start();
      this.status.state = 'running';
      log.info({ partitions: this.status.partitions }, 'rescore job started');
    } catch (err) {
      await this.fail(err);
    }
  }

  /** The status with the live reading count. */
  view(): RescoreStatus {
    return { ...this.status, partitions: this.status.partitions.map((p) => ({ ...p })), readingsScored: this.ledger.training().readings - this.baseReadings };
  }

  async cancel(): Promise<void> {
    if (this.isFinal()) return;
    // Already saving/promoting: let that finish rather than pull the detector from under it.
    if (this.finishing) {
      await this.done;
      return;
    }
    this.finishing = true;
    this.status.state = 'cancelled';
    await this.pipeline?.stop().catch(() => undefined);
    this.detector?.dispose();
    this.status.finishedAt = this.now();
    this.resolveDone(this.status);
  }

  isFinal(): boolean {
    return this.status.state === 'done' || this.status.state === 'failed' || this.status.state === 'cancelled';
  }

  private remaining(): PartitionProgress[] {
    return this.status.partitions.filter((p) => BigInt(p.position) < BigInt(p.endOffset));
  }

  private async finish(): Promise<void> {
    if (this.finishing) return;
    this.finishing = true;
    try {
      await this.pipeline?.stop();
      this.status.readingsScored = this.ledger.training().readings - this.baseReadings;
      this.status.checkpoint = await this.deps.saveModel(this.status, this.detector!, this.ledger, this.parent, this.pipeline);
      if (this.req.promote) {
        await this.deps.promote(this.req.modelVersion, this.detector!, this.ledger);
        this.status.promoted = true;
      } else {
        this.detector!.dispose();
      }
      this.status.state = 'done';
      this.status.finishedAt = this.now();
      this.deps.logger.info({ job: this.id, modelVersion: this.req.modelVersion, readings: this.status.readingsScored }, 'rescore job done');
      this.resolveDone(this.status);
    } catch (err) {
      this.finishing = false;
      await this.fail(err);
    }
  }

  private async fail(err: unknown): Promise<void> {
    if (this.isFinal()) return;
    this.finishing = true;
    this.status.state = 'failed';
    this.status.error = (err as Error).message ?? String(err);
    this.deps.logger.error({ err, job: this.id }, 'rescore job failed');
    await this.pipeline?.stop().catch(() => undefined);
    if (!this.status.promoted) this.detector?.dispose();
    this.status.finishedAt = this.now();
    this.resolveDone(this.status);
  }
}

/** Per partition: first offset with timestamp ≥ from, and the end (offset of `to`, or the log end). */
export async function lookupRange(
  kafka: KafkaClients,
  topic: string,
  from: number,
  to?: number,
): Promise<{ partition: number; startOffset: string; endOffset: string }[]> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const starts = await admin.fetchTopicOffsetsByTimestamp(topic, from);
    const ends = to === undefined ? await admin.fetchTopicOffsets(topic) : await admin.fetchTopicOffsetsByTimestamp(topic, to);
    const endBy = new Map(ends.map((e) => [e.partition, e.offset]));
    return starts
      .map((s) => {
        const end = endBy.get(s.partition);
        if (end === undefined) {
          throw new PlatformError('ANOMALY_RESCORE_OFFSETS', `no end offset for ${topic}[${s.partition}]`, { retriable: true });
        }
        const start = BigInt(s.offset) > BigInt(end) ? end : s.offset;
        return { partition: s.partition, startOffset: start, endOffset: end };
      })
      .sort((a, b) => a.partition - b.partition);
  } finally {
    await admin.disconnect();
  }
}
