/**
 * One consumer → detector → producer pipeline. The live service runs one in the shared consumer
 * group; every re-scoring job runs another in its own group with its own detector and output topic.
 *
 * Delivery guarantee: a partition batch's offsets are committed only after its scores and dead
 * letters were acknowledged by all in-sync replicas (acks=-1). A crash or a lost partition between
 * the two replays the batch in whichever instance owns the partition next: at least once, never lost.
 *
 * Two rules keep replays from feeding a detector readings it has already absorbed (it would reject
 * them as duplicates instead of scoring them):
 * - a failed produce is retried (with backoff, until it succeeds or the pipeline stops) rather than
 *   the batch being re-scored;
 * - records at or below the highest offset this process already delivered for a partition (a
 *   re-fetch after a failed commit) are committed without scoring them again.
 * And a checkpoint is taken only when every scored batch has been committed (`quiesce`), so a
 * restored model never contains readings that a restart replays.
 *
 * Prefetching (`batch.prefetch`, the default): kafkajs fetches again only when every batch of the
 * previous fetch was handled, so a batch is handed over and its offset resolved (the fetch position
 * moves on) as soon as it is queued for scoring; fetching and decoding the next records overlaps
 * scoring and producing. Commits then happen per partition, in offset order, for the longest run of
 * batches whose scores were acknowledged; a batch that could not be delivered stops that
 * partition's commits and makes the next `eachBatch` fail, so kafkajs restarts the consumer from the
 * committed offsets. Records this process already has in flight are not scored again when they
 * are re-fetched (after a rebalance). Backpressure: a batch waits while a scoring call's worth of
 * readings is already waiting for the detector.
 */
import type { Consumer, EachBatchPayload, KafkaClients, BatchProducer } from '../../common/kafka.ts';
import type { Logger } from '../../common/logger.ts';
import type { DeadLetter } from '../../common/messages.ts';
import type { AnomalyConfig } from './config.schema.ts';
import type { ScoringDetector } from './detector-port.ts';
import type { AnomalyMetrics } from './metrics.ts';
import type { TrainingLedger } from './ledger.ts';
import { retry } from '../../common/retry.ts';
import { ReadingBatch, ReadingDecoder } from '../../common/reading-batch.ts';
import { BatchScorer, type ScoredGroup } from './scorer.ts';
import { decodeMessages, deadLetter, encodeDeadLetters, type DecodedBatch } from './records.ts';
import { createScoreOutput, type PreparedScores, type TopicMessages } from './score-output.ts';

interface LaneEntry {
  /** Last offset of the Kafka batch (committed as last + 1). */
  last: bigint;
  state: 'pending' | 'done' | 'failed';
  work: PartitionWork;
}

interface Lane {
  entries: LaneEntry[];
  committing: boolean;
  /** A batch of this partition failed: no further commits until the consumer restarts. */
  broken: boolean;
  committedUpTo: bigint | undefined;
}

export interface PartitionWork {
  partition: number;
  /** Offsets of the records scored (null when a replay filtered all of them out). */
  firstOffset: string | null;
  lastOffset: string | null;
  deadLetters: DeadLetter[];
  /** Kafka record timestamps (ms) of the batch, for the arrival → produced latency (live pipeline only). */
  arrivals: Float64Array | null;
  records: number;
  /** Set once the batch reached the detector (it then counts as scored-but-uncommitted). */
  counted?: boolean;
}

/**
 * Decides per record: score it, skip it (before a replay's start), or it is past a replay's end.
 * Monotone in the offset (skip… take… stop…): a fetched batch is cut to one contiguous range.
 */
export type OffsetFilter = (partition: number, offset: bigint) => 'take' | 'skip' | 'stop';

/** A scored group, encoded (or packed for the producer thread): what is produced once the detector is free again. */
interface Delivery {
  items: PartitionWork[];
  scores: PreparedScores;
  /** Dead letters, produced in the same request as the scores. */
  extra: TopicMessages[];
  letters: DeadLetter[];
  readings: number;
  sensorScores: number;
  machineScores: number;
}

/** Decode batches kept for reuse (their columns grow to the usual batch size once). */
const DECODE_POOL_MAX = 16;

export interface PipelineOptions {
  name: 'live' | 'rescore';
  kafka: KafkaClients;
  /** A producer thread with the score extension encodes the scores there (score-output.ts). */
  producer: BatchProducer;
  logger: Logger;
  metrics: AnomalyMetrics;
  groupId: string;
  inputTopic: string;
  outputTopic: string;
  /** null: count refused records but do not dead-letter them (a replay would repeat the live service's letters). */
  deadLetterTopic: string | null;
  fromBeginning: boolean;
  batch: AnomalyConfig['batch'];
  group: AnomalyConfig['group'];
  /** The detector to score with; read per batch so a model swap takes effect at a batch boundary. */
  detector: () => ScoringDetector;
  ledger: () => TrainingLedger;
  compression?: AnomalyConfig['compression'];
  /** Headers on every produced score record (re-scoring tags its job). */
  headers?: Record<string, string>;
  filter?: OffsetFilter;
  /** Called after a partition batch was committed (re-scoring tracks its progress). */
  onCommitted?: (partition: number, lastOffset: bigint) => void;
  /** Called once the consumer joined and partitions were assigned (re-scoring seeks here). */
  onGroupJoin?: (consumer: Consumer, partitions: number[]) => void;
  now?: () => number;
  /** How long stop() lets undeliverable batches retry before giving up on them. */
  stopGraceMs?: number;
}

export interface Pipeline {
  readonly scorer: BatchScorer<PartitionWork, Delivery>;
  readonly consumer: Consumer;
  start(): Promise<void>;
  /** Stops fetching, waits for batches in flight to be produced and committed, leaves the group. */
  stop(): Promise<void>;
  /** Partitions currently assigned to this member. */
  assignment(): number[];
  /**
   * Runs `fn` with scoring paused and every scored batch committed (or given up), so the detector
   * state matches the committed offsets: what a checkpoint needs.
   */
  quiesce<R>(fn: () => Promise<R>): Promise<R>;
}

export function createPipeline(opts: PipelineOptions): Pipeline {
  const now = opts.now ?? Date.now;
  const log = opts.logger;
  const m = opts.metrics;
  const label = { pipeline: opts.name };
  let assigned: number[] = [];
  const stopping = new AbortController();
  /** Highest offset per partition handed to the scorer (synchronous mode: acknowledged) by this process. */
  const deliveredUpTo = new Map<number, bigint>();
  const prefetch = opts.batch.prefetch;
  /** Prefetching: per partition, the batches handed over and not yet committed, in offset order. */
  const lanes = new Map<number, Lane>();
  /** Prefetching: a batch could not be delivered; the next eachBatch fails so kafkajs restarts from the commits. */
  let laneFailure: unknown = null;
  /**
   * Prefetching: the commit function of the latest eachBatch payload, whatever its partition (each
   * payload commits through its runner's consumer group alike). One for all lanes, not one per
   * lane: a payload's functions keep its kafkajs batch, and with it the whole fetch response (up to
   * `batch.maxBytes`), reachable. Kept per lane, a response stayed alive until every partition in it
   * had been fetched again, for as long as a quiet partition stayed quiet.
   */
  let commitOffsets: EachBatchPayload['commitOffsetsIfNecessary'] | null = null;
  /** Partition batches scored but not yet committed (or failed). */
  let uncommitted = 0;
  let settledWaiters: (() => void)[] = [];
  const settle = () => {
    uncommitted--;
    if (uncommitted === 0) {
      const w = settledWaiters;
      settledWaiters = [];
      for (const f of w) f();
    }
  };

  const decoder = new ReadingDecoder();
  const output = createScoreOutput(opts.producer, {
    topic: opts.outputTopic,
    maxScoresPerRecord: opts.batch.maxScoresPerRecord,
    compression: opts.compression ?? 'none',
    ...(opts.headers ? { headers: opts.headers } : {}),
  });
  const decodePool: ReadingBatch[] = [];

  const scorer = new BatchScorer<PartitionWork, Delivery>({
    detector: opts.detector,
    maxReadings: opts.batch.maxReadings,
    targetBatchMs: opts.batch.targetBatchMs,
    minReadings: opts.batch.minReadings,
    maxInFlight: opts.batch.maxInFlight,
    afterScore: (g) => {
      uncommitted += g.items.length;
      for (const w of g.items) w.counted = true;
      const ledger = opts.ledger();
      for (const w of g.items) if (w.firstOffset !== null && w.lastOffset !== null) ledger.recordOffsets(w.partition, w.firstOffset, w.lastOffset);
      ledger.recordColumns(g.output.sensor, g.input, g.output.machine.length, g.output.rejected.length, g.failed.length);
      if (g.readings > 0) {
        m.batches.inc(label);
        m.batchReadings.observe(label, g.readings);
        m.scoreDuration.observe(label, g.scoreMs / 1000);
      }
    },
    prepare,
    deliver,
    release: (batch) => {
      batch.clear();
      if (decodePool.length < DECODE_POOL_MAX) decodePool.push(batch);
    },
  });

  /** Encodes a scored group right away, so its columns and input batch die young (or are reused). */
  function prepare(g: ScoredGroup<PartitionWork>): Delivery {
    const t = now();
    const letters: DeadLetter[] = [];
    for (const w of g.items) for (const d of w.deadLetters) letters.push(d);
    for (const r of g.output.rejected) {
      const json = JSON.stringify(g.input.readingAt(r.point));
      letters.push(deadLetter('READING_REJECTED', `detector rejected the reading: ${r.reason}`, { topic: opts.inputTopic, stage: 'detector' }, json, t));
    }
    for (const f of g.failed) {
      const json = JSON.stringify(g.input.readingAt(f.point));
      letters.push(deadLetter('DETECTOR_FAILED', `detector threw on this reading: ${f.error.message}`, { topic: opts.inputTopic, stage: 'detector' }, json, t));
    }
    const scores = output.prepare(g.output.sensor, g.input, g.output.machine, g.modelVersion);
    const extra: TopicMessages[] = [];
    if (letters.length > 0 && opts.deadLetterTopic !== null) extra.push({ topic: opts.deadLetterTopic, messages: encodeDeadLetters(letters) });
    return { items: g.items, scores, extra, letters, readings: g.readings, sensorScores: g.output.sensor.n, machineScores: g.output.machine.length };
  }

  async function deliver(d: Delivery): Promise<void> {
    if (!d.scores.empty || d.extra.length > 0) {
      // Re-scoring the batch is not an option (the detector already learned from it): resend until
      // acknowledged. Consumption of these partitions waits meanwhile (backpressure, no skipping).
      await retry(() => output.send(d.scores, d.extra), {
        retries: Infinity,
        initialDelayMs: 200,
        maxDelayMs: 5000,
        factor: 2,
        signal: stopping.signal,
        isRetriable: () => !stopping.signal.aborted,
        onRetry: (err, attempt, delayMs) => {
          m.produceFailures.inc(label);
          log.warn({ err, attempt, delayMs }, 'producing scores failed; retrying');
        },
      });
    }
    const acked = now();
    output.release(d.scores);
    m.readingsScored.inc(label, d.readings);
    if (d.sensorScores) m.scoresProduced.inc({ ...label, kind: 'sensor' }, d.sensorScores);
    if (d.machineScores) m.scoresProduced.inc({ ...label, kind: 'machine' }, d.machineScores);
    for (const l of d.letters) m.deadLettered.inc({ ...label, code: l.code });
    for (const w of d.items) {
      const arrivals = w.arrivals;
      if (arrivals !== null) for (let i = 0; i < arrivals.length; i++) m.latency.observe(Math.max(0, acked - arrivals[i]) / 1000);
    }
  }

  const consumer = opts.kafka.consumer({
    groupId: opts.groupId,
    sessionTimeout: opts.group.sessionTimeoutMs,
    heartbeatInterval: opts.group.heartbeatIntervalMs,
    rebalanceTimeout: opts.group.rebalanceTimeoutMs,
    maxBytesPerPartition: opts.batch.maxBytesPerPartition,
    maxBytes: opts.batch.maxBytes,
    maxWaitTimeInMs: opts.batch.maxWaitMs,
    allowAutoTopicCreation: false,
  });
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    assigned = [...(e.payload.memberAssignment[opts.inputTopic] ?? [])].sort((a, b) => a - b);
    // A (re)join starts fetching from the committed offsets: failed lanes and lanes of partitions
    // that moved elsewhere commit nothing more (their batches still in flight finish and are dropped).
    laneFailure = null;
    for (const [partition, lane] of lanes) {
      if (lane.broken || !assigned.includes(partition)) {
        breakLane(lane);
        lanes.delete(partition);
      }
    }
    log.info({ groupId: opts.groupId, partitions: assigned }, 'partitions assigned');
    opts.onGroupJoin?.(consumer, assigned);
  });

  function laneOf(partition: number): Lane {
    let lane = lanes.get(partition);
    if (!lane) lanes.set(partition, (lane = { entries: [], committing: false, broken: false, committedUpTo: undefined }));
    return lane;
  }

  /**
   * A lane that commits nothing more: its acknowledged batches count as settled now, its pending
   * ones when they finish (so `quiesce` never waits for a commit that will not come).
   */
  function breakLane(lane: Lane): void {
    lane.broken = true;
    for (const e of lane.entries) if (e.state === 'done' && e.work.counted) settle();
    lane.entries = lane.entries.filter((e) => e.state === 'pending');
  }

  function dropEntry(lane: Lane, entry: LaneEntry): void {
    const i = lane.entries.indexOf(entry);
    if (i >= 0) lane.entries.splice(i, 1);
    if (entry.work.counted) settle();
  }

  /** Commits the longest acknowledged run at the head of a partition's lane (one commit at a time). */
  async function commitLane(topic: string, partition: number, lane: Lane): Promise<void> {
    if (lane.committing) return;
    lane.committing = true;
    try {
      for (;;) {
        let n = 0;
        while (n < lane.entries.length && lane.entries[n].state === 'done') n++;
        if (n === 0 || lane.broken) return;
        const covered = lane.entries.splice(0, n);
        const last = covered[n - 1].last;
        try {
          await commitOffsets!({ topics: [{ topic, partitions: [{ partition, offset: (last + 1n).toString() }] }] });
          lane.committedUpTo = last;
          opts.onCommitted?.(partition, last);
        } catch (err) {
          // Scores are out; a later commit covers these offsets, or the next owner replays them (duplicates, no loss).
          m.commitFailures.inc(label);
          log.warn({ err, partition, offset: last.toString() }, 'offset commit failed after scores were produced');
        } finally {
          for (const e of covered) if (e.work.counted) settle();
        }
      }
    } finally {
      lane.committing = false;
    }
  }

  /**
   * Prefetching: queues a decoded batch for scoring and commits its lane once delivered. Takes
   * what it needs of the kafkajs batch as values: a callback that referred to the batch would keep
   * the fetch response alive until the scores are acknowledged (see `commitOffsets`).
   */
  function handOver(topic: string, partition: number, lastOffset: bigint, decodedBatch: ReadingBatch, work: PartitionWork): void {
    const n = decodedBatch.n;
    const lane = laneOf(partition);
    const entry: LaneEntry = { last: lastOffset, state: 'pending', work };
    lane.entries.push(entry);
    if (work.lastOffset !== null) deliveredUpTo.set(partition, BigInt(work.lastOffset));
    scorer.submit(decodedBatch, work).then(
      () => {
        m.inFlightReadings.dec(label, n);
        entry.state = 'done';
        if (lane.broken) dropEntry(lane, entry);
        else void commitLane(topic, partition, lane);
      },
      (err: unknown) => {
        m.inFlightReadings.dec(label, n);
        entry.state = 'failed';
        if (!lane.broken) {
          laneFailure ??= err;
          log.error({ err, partition, offset: work.firstOffset }, 'a batch could not be scored or delivered; the consumer restarts from the committed offsets');
          // Nothing more is committed on this partition; the kafkajs restart re-fetches from its last commit.
          breakLane(lane);
          if (lane.committedUpTo === undefined) deliveredUpTo.delete(partition);
          else deliveredUpTo.set(partition, lane.committedUpTo);
        }
        dropEntry(lane, entry);
      },
    );
  }

  async function eachBatch(p: EachBatchPayload): Promise<void> {
    const { batch } = p;
    if (!p.isRunning() || p.isStale()) return;
    if (prefetch && laneFailure !== null) throw laneFailure;
    // The records to score are one contiguous range lo..hi of the fetched batch (offsets ascend):
    // offsets are compared as BigInt only where a replay filter or an earlier delivery may cut it.
    const messages = batch.messages;
    let lo = 0;
    let hi = messages.length;
    const done = deliveredUpTo.get(batch.partition);
    if (done !== undefined && hi > 0 && BigInt(messages[0].offset) <= done) {
      while (lo < hi && BigInt(messages[lo].offset) <= done) lo++;
    }
    const f = opts.filter;
    if (f && lo < hi && (f(batch.partition, BigInt(messages[lo].offset)) !== 'take' || f(batch.partition, BigInt(messages[hi - 1].offset)) !== 'take')) {
      while (lo < hi && f(batch.partition, BigInt(messages[lo].offset)) !== 'take') lo++;
      while (hi > lo && f(batch.partition, BigInt(messages[hi - 1].offset)) !== 'take') hi--;
    }
    const decoded: DecodedBatch = { batch: decodePool.pop() ?? new ReadingBatch(4096), deadLetters: [] };
    decodeMessages(batch.topic, batch.partition, messages, now(), decoded, decoder, lo, hi);
    const records = hi - lo;
    m.records.inc(label, records);
    let arrivals: Float64Array | null = null;
    if (opts.name === 'live') {
      arrivals = new Float64Array(records);
      for (let i = 0; i < records; i++) arrivals[i] = Number(messages[lo + i].timestamp);
    }
    const work: PartitionWork = {
      partition: batch.partition,
      firstOffset: records > 0 ? messages[lo].offset : null,
      lastOffset: records > 0 ? messages[hi - 1].offset : null,
      deadLetters: decoded.deadLetters,
      arrivals,
      records,
    };
    /** Points submitted (the batch itself is reused once scored). */
    const n = decoded.batch.n;
    m.inFlightReadings.inc(label, n);
    if (prefetch) {
      commitOffsets = p.commitOffsetsIfNecessary;
      handOver(batch.topic, batch.partition, BigInt(batch.lastOffset()), decoded.batch, work);
      p.resolveOffset(batch.lastOffset());
      await scorer.whenUnscoredBelow(scorer.batchLimit);
      await p.heartbeat();
      return;
    }
    try {
      try {
        await scorer.submit(decoded.batch, work);
      } finally {
        m.inFlightReadings.dec(label, n);
      }
      const last = BigInt(batch.lastOffset());
      if (work.lastOffset !== null) deliveredUpTo.set(batch.partition, BigInt(work.lastOffset));
      p.resolveOffset(batch.lastOffset());
      try {
        await p.commitOffsetsIfNecessary({
          topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: (last + 1n).toString() }] }],
        });
      } catch (err) {
        // Scores are out; without the commit the next owner replays this batch (duplicates, no loss).
        m.commitFailures.inc(label);
        log.warn({ err, partition: batch.partition, offset: batch.lastOffset() }, 'offset commit failed after scores were produced');
        throw err;
      }
      opts.onCommitted?.(batch.partition, last);
    } finally {
      // Only batches that reached the detector were counted by afterScore.
      if (work.counted) settle();
    }
    await p.heartbeat();
  }

  let running = false;
  return {
    scorer,
    consumer,
    assignment: () => assigned,
    quiesce: (fn) =>
      scorer.exclusive(async () => {
        if (uncommitted > 0) await new Promise<void>((r) => settledWaiters.push(r));
        return fn();
      }),
    async start() {
      await consumer.connect();
      await consumer.subscribe({ topics: [opts.inputTopic], fromBeginning: opts.fromBeginning });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: opts.batch.partitionsConsumedConcurrently,
        eachBatch,
      });
      running = true;
    },
    async stop() {
      if (!running) {
        await consumer.disconnect().catch(() => undefined);
        return;
      }
      running = false;
      // kafkajs waits for running eachBatch calls before leaving the group. A produce that keeps
      // failing (Kafka down) is given up after the grace period: those batches are not committed.
      const giveUp = setTimeout(() => stopping.abort(new Error('pipeline stopping')), opts.stopGraceMs ?? 10_000);
      try {
        if (prefetch) {
          // Batches handed over but not yet committed: stop fetching, let them finish and commit while
          // this member still owns their partitions.
          consumer.pause([{ topic: opts.inputTopic }]);
          await scorer.idle();
          if (uncommitted > 0) await new Promise<void>((r) => settledWaiters.push(r));
        }
        await consumer.disconnect();
        await scorer.idle();
      } finally {
        clearTimeout(giveUp);
        output.close();
      }
    },
  };
}
