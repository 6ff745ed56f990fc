/**
 * The anomaly-prediction service: a Kafka consumer-group member that scores every reading on
 * `plantwatch.readings` with the streaming detector and produces scores to `plantwatch.scores`.
 * Any number of instances share the topic's partitions. Offsets are committed only after the scores
 * were acknowledged (acks=-1): a crash replays, it never loses. The live model is checkpointed
 * periodically and on close, restored on restart, can be replaced by a re-trained version, and
 * history can be re-scored into a new version beside the live pipeline (see rescore.ts, ops.ts).
 */
import { join, resolve } from 'node:path';
import { onceClose, type ComponentContext, type ComponentHandle } from '../../common/component.ts';
import { PlatformError } from '../../common/errors.ts';
import { ensureTopics, PLATFORM_TOPICS, type BatchProducer, type TopicSpec } from '../../common/kafka.ts';
import { ThreadedProducer } from '../../common/kafka-producer-thread.ts';
import { SCORE_OUTPUT_EXTENSION } from './score-output.ts';
import { startOpsServer } from '../../common/http.ts';
import { AnomalyConfig } from './config.schema.ts';
import type { DetectorFactory, DetectorSnapshotLike, ScoringDetector } from './detector-port.ts';
import { TrainingLedger } from './ledger.ts';
import { createAnomalyMetrics } from './metrics.ts';
import { ModelStore, assertVersionName, type ModelMetadata, type ModelOrigin } from './model-store.ts';
import { opsRoutes, type OpsControl, type RescoreBody, type RetrainBody } from './ops.ts';
import { createPipeline } from './pipeline.ts';
import { RescoreJob, type RescoreRequest, type RescoreStatus } from './rescore.ts';
import { Lock } from './scorer.ts';

export { AnomalyConfig } from './config.schema.ts';
export type { RescoreStatus } from './rescore.ts';
export type { ModelMetadata } from './model-store.ts';

export interface AnomalyDeps {
  /** Detector construction; default: the tfjs streaming detector from `./detector/` with `config.detector`. */
  detectors?: DetectorFactory;
  now?: () => number;
}

export interface AnomalyHandle extends ComponentHandle, OpsControl {
  readonly name: 'anomaly';
  /** Base URL of the ops server (metrics, health, control endpoints). */
  readonly opsUrl: string;
  modelVersion(): string;
  /** Partitions of the readings topic assigned to this instance. */
  assignment(): number[];
  /** Resolves when the job is done, failed or cancelled. */
  waitForJob(id: string): Promise<RescoreStatus>;
}

interface LiveModel {
  detector: ScoringDetector;
  ledger: TrainingLedger;
  origin: ModelOrigin;
  parent: string | null;
  createdAt: number;
  checkpoints: number;
  details: Record<string, unknown>;
}

/** The detector's state as of now; completed later when the detector can copy on write. */
async function captureOf(det: ScoringDetector): Promise<{ complete(): Promise<DetectorSnapshotLike> }> {
  if (det.captureSnapshot) return det.captureSnapshot();
  const whole = await det.snapshot();
  return { complete: async () => whole };
}

function compactTime(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

export async function start(configInput: AnomalyConfig, ctx: ComponentContext, deps: AnomalyDeps = {}): Promise<AnomalyHandle> {
  const config = AnomalyConfig.parse(configInput);
  const now = deps.now ?? Date.now;
  const log = ctx.logger.child({ component: 'anomaly' });
  const store = new ModelStore(config.model.dir || join(ctx.dataDir, 'anomaly', 'models'));
  const detectors = deps.detectors ?? (await import('./detector-factory.ts')).detectorFactory(config.detector, log);

  let live = await loadInitialModel();
  live.detector.setLimits?.({ ...config.limits });
  const metrics = createAnomalyMetrics(ctx.metrics, {
    streams: () => live.detector.streamCount(),
    stateBytes: () => live.detector.stateBytes(),
  });
  metrics.modelInfo.set({ model_version: live.detector.modelVersion, origin: live.origin }, 1);
  for (const s of ['running', 'done', 'failed', 'cancelled'] as const) metrics.rescoreJobs.set({ state: s }, 0);

  async function loadInitialModel(): Promise<LiveModel> {
    const fresh = async (): Promise<LiveModel> => ({
      detector: await detectors.create(),
      ledger: new TrainingLedger(config.inputTopic),
      origin: 'fresh',
      parent: null,
      createdAt: now(),
      checkpoints: 0,
      details: {},
    });
    const fromCheckpoint = async (ref: string, origin: ModelOrigin, source?: string): Promise<LiveModel> => {
      const loaded = await store.load(ref);
      const meta = loaded.metadata;
      const detector = await detectors.restore(loaded.snapshot, loaded.modelVersion);
      return {
        detector,
        ledger: new TrainingLedger(config.inputTopic, meta?.ledger),
        origin: source ? origin : (meta?.origin ?? origin),
        parent: source ? loaded.modelVersion : (meta?.parent ?? null),
        createdAt: meta?.createdAt ?? now(),
        checkpoints: meta?.checkpoints ?? 0,
        details: { ...(meta?.details ?? {}), ...(source ? { source } : {}) },
      };
    };
    const current = await store.current();
    if (config.model.path) {
      const source = resolve(config.model.path);
      if (current) {
        // Keep learning where we left off if our last checkpoint grew out of this same file.
        const meta = (await store.list()).find((m) => m.modelVersion === current);
        if (meta?.details.source === source) {
          log.info({ modelVersion: current, source }, 'restoring the checkpoint that continues the configured pre-trained model');
          return fromCheckpoint(current, 'restored');
        }
      }
      log.info({ source }, 'loading pre-trained model');
      return fromCheckpoint(source, 'pretrained', source);
    }
    if (current) {
      try {
        const m = await fromCheckpoint(current, 'restored');
        log.info({ modelVersion: current, streams: m.detector.streamCount() }, 'restored the last checkpoint');
        return m;
      } catch (err) {
        // A damaged checkpoint must not keep the service down; it is moved aside for inspection so
        // the fresh model's checkpoints do not overwrite it.
        const aside = await store.quarantine(current).catch(() => null);
        log.error({ err, modelVersion: current, movedTo: aside }, 'cannot restore the last checkpoint; starting a fresh model');
      }
    }
    return fresh();
  }

  const topics: TopicSpec[] = [config.inputTopic, config.outputTopic, config.deadLetterTopic].map(
    (topic) => PLATFORM_TOPICS.find((t) => t.topic === topic) ?? { topic, numPartitions: 6 },
  );
  const producerConfig = { allowAutoTopicCreation: false, idempotent: false };
  // The worker thread needs the client configuration to open its own connections (test fakes have none).
  const producer: BatchProducer =
    config.producerThread === 'worker' && ctx.kafka.config
      ? new ThreadedProducer(ctx.kafka.config, producerConfig, log, { extension: SCORE_OUTPUT_EXTENSION, nice: config.producerThreadNice })
      : ctx.kafka.producer(producerConfig);
  try {
    await ensureTopics(ctx.kafka, topics);
    await producer.connect();
  } catch (err) {
    live.detector.dispose();
    throw new PlatformError('ANOMALY_START_FAILED', `cannot reach Kafka: ${(err as Error).message}`, { retriable: true, cause: err });
  }

  const pipeline = createPipeline({
    name: 'live',
    kafka: ctx.kafka,
    producer,
    logger: log,
    metrics,
    groupId: config.groupId,
    inputTopic: config.inputTopic,
    outputTopic: config.outputTopic,
    deadLetterTopic: config.deadLetterTopic,
    fromBeginning: config.fromBeginning,
    compression: config.compression,
    batch: config.batch,
    group: config.group,
    detector: () => live.detector,
    ledger: () => live.ledger,
    now,
  });
  let consumerCrashed: string | null = null;
  pipeline.consumer.on(pipeline.consumer.events.CRASH, (e) => {
    if (!e.payload.restart) consumerCrashed = e.payload.error.message;
    log.error({ err: e.payload.error, restart: e.payload.restart }, 'consumer crashed');
  });
  pipeline.consumer.on(pipeline.consumer.events.GROUP_JOIN, () => (consumerCrashed = null));

  // ---- checkpoints ----
  const checkpointLock = new Lock();
  let lastCheckpointAt: number | null = null;

  function metadataFor(m: LiveModel, streams: number, stateBytes: number, ledger: TrainingLedger, version: string): ModelMetadata {
    return {
      modelVersion: version,
      origin: m.origin,
      parent: m.parent,
      createdAt: m.createdAt,
      checkpointedAt: now(),
      checkpoints: m.checkpoints,
      streams,
      stateBytes,
      training: ledger.training(),
      quality: ledger.quality(),
      ledger: ledger.toJSON(),
      details: { groupId: config.groupId, ...m.details },
    };
  }

  function checkpoint(): Promise<ModelMetadata> {
    return checkpointLock.run(async () => {
      const started = performance.now();
      try {
        // Quiesced: the snapshot holds exactly the committed readings, so a restart that restores it
        // and replays from the committed offsets neither skips nor double-feeds a reading.
        // Only the capture runs with scoring paused; a detector that copies on write completes the
        // snapshot (most of the work at 100k streams) while scoring goes on.
        const captured = await pipeline.quiesce(async () => {
          const captureStarted = performance.now();
          const m = live;
          const det = m.detector;
          const c = {
            m,
            snapshot: await captureOf(det),
            ledger: new TrainingLedger(config.inputTopic, m.ledger.toJSON()),
            streams: det.streamCount(),
            stateBytes: det.stateBytes(),
            version: det.modelVersion,
          };
          metrics.checkpointCapture.observe((performance.now() - captureStarted) / 1000);
          return c;
        });
        const snapshot = await captured.snapshot.complete();
        captured.m.checkpoints++;
        const meta = metadataFor(captured.m, captured.streams, captured.stateBytes, captured.ledger, captured.version);
        await store.save(snapshot, meta);
        if (captured.m === live) await store.setCurrent(captured.version);
        const removed = await store.prune(config.model.keepVersions, [live.detector.modelVersion, captured.version]);
        if (removed.length) log.info({ removed }, 'pruned old model versions');
        lastCheckpointAt = now();
        metrics.checkpoints.inc({ result: 'ok' });
        metrics.lastCheckpoint.set(lastCheckpointAt / 1000);
        metrics.checkpointDuration.observe((performance.now() - started) / 1000);
        log.info({ modelVersion: captured.version, streams: captured.streams }, 'checkpoint written');
        return meta;
      } catch (err) {
        metrics.checkpoints.inc({ result: 'error' });
        throw err;
      }
    });
  }

  let timer: NodeJS.Timeout | undefined;
  if (config.model.checkpointIntervalMs > 0) {
    timer = setInterval(() => {
      checkpoint().catch((err) => log.error({ err }, 'periodic checkpoint failed'));
    }, config.model.checkpointIntervalMs);
    timer.unref();
  }

  // ---- promote / rescore ----
  const swapLock = new Lock();
  function swapLive(next: LiveModel): Promise<void> {
    return swapLock.run(() => swapLiveNow(next));
  }

  async function swapLiveNow(next: LiveModel): Promise<void> {
    next.detector.setLimits?.({ ...config.limits });
    // Save the outgoing version first, so it can be promoted back.
    await checkpoint().catch((err) => log.error({ err }, 'checkpoint of the outgoing model failed'));
    const old = await pipeline.scorer.exclusive(async () => {
      const o = live;
      live = next;
      return o;
    });
    old.detector.dispose();
    metrics.modelInfo.reset();
    metrics.modelInfo.set({ model_version: next.detector.modelVersion, origin: next.origin }, 1);
    await checkpoint();
    log.info({ from: old.detector.modelVersion, to: next.detector.modelVersion }, 'live model replaced');
  }

  const jobs = new Map<string, RescoreJob>();
  let jobSeq = 0;
  let closing = false;

  function refreshJobMetrics(): void {
    const counts: Record<string, number> = { running: 0, done: 0, failed: 0, cancelled: 0 };
    for (const j of jobs.values()) counts[j.status.state === 'starting' ? 'running' : j.status.state]++;
    for (const [state, n] of Object.entries(counts)) metrics.rescoreJobs.set({ state }, n);
  }

  async function startJob(req: RescoreRequest): Promise<RescoreStatus> {
    if (closing) throw new PlatformError('ANOMALY_CLOSING', 'the service is closing', { retriable: true });
    assertVersionName(req.modelVersion);
    const running = [...jobs.values()].filter((j) => !j.isFinal());
    if (running.length >= config.rescore.maxConcurrentJobs) {
      throw new PlatformError('ANOMALY_RESCORE_LIMIT', `${running.length} rescore job(s) running (max ${config.rescore.maxConcurrentJobs})`, {
        retriable: true,
      });
    }
    const taken = new Set([live.detector.modelVersion, ...(await store.list()).map((m) => m.modelVersion), ...running.map((j) => j.status.modelVersion)]);
    if (taken.has(req.modelVersion)) {
      throw new PlatformError('ANOMALY_RESCORE_CONFLICT', `model version ${req.modelVersion} already exists; pick a new name`, {
        retriable: false,
        context: { modelVersion: req.modelVersion },
      });
    }
    const id = `${compactTime(now())}-${++jobSeq}`;
    const job = new RescoreJob(id, req, {
      kafka: ctx.kafka,
      producer,
      logger: log,
      metrics,
      config,
      now,
      createDetector: async (r) => {
        if (!r.model || r.model === 'fresh') return { detector: await detectors.create(r.modelVersion), ledger: null, parent: null };
        if (r.model === 'live') {
          const cap = await pipeline.scorer.exclusive(async () => ({ snapshot: await captureOf(live.detector), version: live.detector.modelVersion, ledger: live.ledger.toJSON() }));
          return { detector: await detectors.restore(await cap.snapshot.complete(), r.modelVersion), ledger: new TrainingLedger(config.inputTopic, cap.ledger), parent: cap.version };
        }
        const loaded = await store.load(r.model);
        return {
          detector: await detectors.restore(loaded.snapshot, r.modelVersion),
          ledger: loaded.metadata ? new TrainingLedger(config.inputTopic, loaded.metadata.ledger) : null,
          parent: loaded.modelVersion,
        };
      },
      saveModel: async (status, detector, ledger, parent) => {
        const m: LiveModel = {
          detector,
          ledger,
          origin: status.kind,
          parent,
          createdAt: status.startedAt,
          checkpoints: 1,
          details: { job: status.id, from: status.from, to: status.to, groupId: status.groupId, outputTopic: status.outputTopic },
        };
        return store.save(await detector.snapshot(), metadataFor(m, detector.streamCount(), detector.stateBytes(), ledger, status.modelVersion));
      },
      promote: async (version, detector, ledger) => {
        const meta = (await store.list()).find((x) => x.modelVersion === version);
        await swapLive({
          detector,
          ledger,
          origin: meta?.origin ?? 'rescore',
          parent: meta?.parent ?? null,
          createdAt: meta?.createdAt ?? now(),
          checkpoints: meta?.checkpoints ?? 1,
          details: meta?.details ?? {},
        });
      },
    });
    jobs.set(id, job);
    void job.done.then(refreshJobMetrics);
    await job.start();
    refreshJobMetrics();
    return job.view();
  }

  const control: OpsControl = {
    async models() {
      return { live: live.detector.modelVersion, versions: await store.list() };
    },
    checkpoint,
    rescore(body) {
      const kind = 'rescore';
      return startJob({
        kind,
        from: body.from,
        to: body.to,
        modelVersion: body.modelVersion ?? `${detectors.defaultVersion}-${kind}-${compactTime(now())}`,
        model: body.model,
        promote: body.promote,
      });
    },
    retrain(body) {
      const kind = 'retrain';
      return startJob({
        kind,
        from: body.from ?? now() - config.rescore.retrainLookbackMs,
        modelVersion: body.modelVersion ?? `${detectors.defaultVersion}-${kind}-${compactTime(now())}`,
        promote: body.promote,
      });
    },
    jobs: () => [...jobs.values()].map((j) => j.view()),
    job: (id) => jobs.get(id)?.view(),
    async cancelJob(id) {
      const job = jobs.get(id);
      if (!job) return undefined;
      await job.cancel();
      refreshJobMetrics();
      return job.view();
    },
    async promote(version) {
      if (closing) throw new PlatformError('ANOMALY_CLOSING', 'the service is closing', { retriable: true });
      assertVersionName(version);
      if (version === live.detector.modelVersion) return { live: version };
      const loaded = await store.load(version);
      const meta = loaded.metadata;
      const detector = await detectors.restore(loaded.snapshot, loaded.modelVersion);
      await swapLive({
        detector,
        ledger: new TrainingLedger(config.inputTopic, meta?.ledger),
        origin: meta?.origin ?? 'restored',
        parent: meta?.parent ?? null,
        createdAt: meta?.createdAt ?? now(),
        checkpoints: meta?.checkpoints ?? 0,
        details: meta?.details ?? {},
      });
      return { live: live.detector.modelVersion };
    },
  };

  const ops = await startOpsServer({
    host: config.httpHost,
    port: config.httpPort,
    registries: () => [ctx.metrics],
    health: () => ({
      ok: !closing && consumerCrashed === null,
      modelVersion: live.detector.modelVersion,
      partitions: pipeline.assignment(),
      streams: live.detector.streamCount(),
      lastCheckpointAt,
      consumerError: consumerCrashed,
      rescoreJobs: [...jobs.values()].filter((j) => !j.isFinal()).length,
    }),
    routes: [opsRoutes(control)],
  });

  try {
    await pipeline.start();
  } catch (err) {
    await ops.close();
    await producer.disconnect().catch(() => undefined);
    clearInterval(timer);
    live.detector.dispose();
    throw new PlatformError('ANOMALY_START_FAILED', `cannot start consuming ${config.inputTopic}: ${(err as Error).message}`, {
      retriable: true,
      cause: err,
    });
  }
  log.info({ groupId: config.groupId, modelVersion: live.detector.modelVersion, origin: live.origin, ops: ops.url }, 'anomaly service started');

  const close = onceClose(async () => {
    closing = true;
    clearInterval(timer);
    for (const job of jobs.values()) await job.cancel();
    await pipeline.stop().catch((err) => log.warn({ err }, 'stopping the consumer failed'));
    await checkpoint().catch((err) => log.error({ err }, 'final checkpoint failed'));
    await producer.disconnect().catch(() => undefined);
    await ops.close();
    live.detector.dispose();
    log.info('anomaly service closed');
  });

  return {
    name: 'anomaly',
    opsUrl: ops.url,
    modelVersion: () => live.detector.modelVersion,
    assignment: () => pipeline.assignment(),
    waitForJob: async (id) => {
      const job = jobs.get(id);
      if (!job) throw new PlatformError('ANOMALY_JOB_NOT_FOUND', `no rescore job ${id}`, { retriable: false });
      await job.done;
      return job.view();
    },
    ...control,
    close,
  };
}
