/**
 * The storage writer component: consumes `plantwatch.readings`, `plantwatch.scores` and
 * `plantwatch.alerts`, writes them to the configured store (InfluxDB or embedded), commits Kafka
 * offsets only after the store acknowledged, and serves /metrics and /healthz on `httpPort`.
 * The handle exposes `store` so the gateway in the same process can read through it.
 *
 *   const storage = await start(StorageConfig.parse({}), ctx, config.influx);
 *   storage.store.querySeries(…)
 */
import type { ComponentContext, ComponentHandle } from '../../common/component.ts';
import { onceClose } from '../../common/component.ts';
import type { InfluxConfig } from '../../common/config/fragments.ts';
import { ensureTopics, type Consumer, type Producer } from '../../common/kafka.ts';
import { prom } from '../../common/metrics.ts';
import { startOpsServer, type OpsServer } from '../../common/http.ts';
import { sleep } from '../../common/retry.ts';
import { TOPICS } from '../../common/topics.ts';
import type { StorageBackend } from './backend.ts';
import { getOrCreate } from './cardinality.ts';
import { StorageConfig } from './config.schema.ts';
import { createStore, type CreateStoreOptions } from './create-store.ts';
import { StorageWriter } from './writer.ts';

export { StorageConfig } from './config.schema.ts';
export { createStore, defaultEmbeddedPath } from './create-store.ts';
export type { StorageBackend, StoreOptions } from './backend.ts';
export type { TimeSeriesStore } from './store.ts';

export interface StorageHandle extends ComponentHandle {
  readonly name: 'storage';
  /** The store the writer writes to; the gateway reads through it. */
  readonly store: StorageBackend;
  /** Default point limit per series for queries (`maxPointsPerSeries`). */
  readonly maxPointsPerSeries: number;
  /** Ops HTTP port actually bound (useful with httpPort 0). */
  readonly httpPort: number;
  /** Writes everything accepted so far and commits its offsets (tests, graceful handover). */
  drain(): Promise<void>;
}

/**
 * The store options a `storage` config section implies. A gateway that opens its own store (running
 * apart from the writer) should pass these too, so both agree on retention: `init()` alters the
 * InfluxDB retention policies to what it is given.
 */
export function storeOptionsFromConfig(cfg: StorageConfig): Omit<CreateStoreOptions, 'logger'> {
  return {
    embeddedPath: cfg.embeddedPath,
    rawRetentionDays: cfg.rawRetentionDays,
    rollupRetentionDays: cfg.rollupRetentionDays,
    maxSeriesPerMachine: cfg.maxSeriesPerMachine,
    maxSeries: cfg.maxSeries,
    requestTimeoutMs: cfg.requestTimeoutMs,
    retentionIntervalMs: cfg.retentionIntervalMs,
    embeddedThread: cfg.embeddedThread,
  };
}

export const SUBSCRIBED_TOPICS = [TOPICS.readings, TOPICS.scores, TOPICS.alerts];

export async function start(config: StorageConfig, ctx: ComponentContext, influx?: Pick<InfluxConfig, 'url'>): Promise<StorageHandle> {
  const cfg = StorageConfig.parse(config);
  const log = ctx.logger.child({ component: 'storage' });
  const url = influx?.url || cfg.influxUrl;

  const store = createStore({ url }, { ...storeOptionsFromConfig(cfg), logger: log, metrics: ctx.metrics, dataDir: ctx.dataDir });
  // InfluxDB may not be up yet when the platform starts: setup is retried by the first write too,
  // so a failing init is logged, not fatal. The embedded store must open.
  try {
    await store.init();
  } catch (err) {
    if (store.kind === 'embedded') throw err;
    log.warn({ err }, 'InfluxDB setup failed at start; retried before the first write');
  }

  await ensureTopics(ctx.kafka);
  const producer: Producer = ctx.kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  const consumer: Consumer = ctx.kafka.consumer({ groupId: cfg.groupId, allowAutoTopicCreation: false, sessionTimeout: cfg.sessionTimeoutMs, heartbeatInterval: cfg.heartbeatIntervalMs });

  const lag = getOrCreate(
    ctx.metrics,
    'plantwatch_storage_consumer_lag_messages',
    () => new prom.Gauge({ name: 'plantwatch_storage_consumer_lag_messages', help: 'Messages behind the partition end when the last batch was fetched', labelNames: ['topic', 'partition'], registers: [ctx.metrics] }),
  ) as prom.Gauge<'topic' | 'partition'>;

  const writer = new StorageWriter(
    {
      batchSize: cfg.batchSize,
      lingerMs: cfg.lingerMs,
      concurrency: cfg.concurrency,
      maxBufferedPoints: cfg.maxBufferedPoints,
      retryInitialDelayMs: cfg.retryInitialDelayMs,
      retryMaxDelayMs: cfg.retryMaxDelayMs,
      commitIntervalMs: cfg.commitIntervalMs,
    },
    {
      store,
      logger: log,
      metrics: ctx.metrics,
      deadLetter: async (dl, key) => {
        await producer.send({ topic: TOPICS.deadLetter, messages: [{ key, value: JSON.stringify(dl) }] });
      },
      commit: async (offsets) => {
        await consumer.commitOffsets(offsets);
      },
    },
  );

  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    const assignment = e.payload.memberAssignment;
    const dropped = writer.retainPartitions(Object.entries(assignment).flatMap(([topic, partitions]) => partitions.map((partition) => ({ topic, partition }))));
    log.info({ assignment, dropped }, 'partitions assigned');
  });

  await consumer.connect();
  await consumer.subscribe({ topics: SUBSCRIBED_TOPICS, fromBeginning: true });
  let intakeOpen = true;
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently: cfg.partitionsConsumedConcurrently,
    eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
      if (!intakeOpen || batch.messages.length === 0) return;
      writer.push(batch.messages.map((m) => ({ topic: batch.topic, partition: batch.partition, offset: m.offset, key: m.key, value: m.value })));
      // Resolved = fetched; committed only when stored (the writer commits).
      resolveOffset(batch.lastOffset());
      lag.set({ topic: batch.topic, partition: String(batch.partition) }, Number(batch.offsetLag()));
      // Backpressure while the store is slow or away; keep the group membership alive meanwhile.
      let room = false;
      const roomReady = writer.waitForRoom().then(() => (room = true));
      while (!room && intakeOpen) {
        await Promise.race([roomReady, sleep(1000)]);
        if (!room) await heartbeat();
      }
    },
  });

  const ops: OpsServer = await startOpsServer({
    host: cfg.httpHost,
    port: cfg.httpPort,
    registries: () => [ctx.metrics],
    health: () => ({ ok: writer.healthy, store: store.kind, storeUp: writer.healthy, bufferedPoints: writer.bufferedPoints }),
  });
  log.info({ store: store.kind, httpPort: ops.port, groupId: cfg.groupId }, 'storage writer started');

  const close = onceClose(async () => {
    intakeOpen = false;
    consumer.pause(SUBSCRIBED_TOPICS.map((topic) => ({ topic })));
    const drained = await Promise.race([writer.drain().then(() => true), sleep(cfg.drainTimeoutMs).then(() => false)]);
    if (!drained) log.warn({ bufferedPoints: writer.bufferedPoints }, 'drain timed out; unwritten points stay uncommitted and are replayed after restart');
    writer.stop();
    await writer.commitNow().catch(() => undefined);
    await consumer.disconnect().catch((err) => log.warn({ err }, 'consumer disconnect failed'));
    await producer.disconnect().catch((err) => log.warn({ err }, 'producer disconnect failed'));
    await ops.close();
    await store.close();
    log.info('storage writer stopped');
  });

  return {
    name: 'storage',
    store,
    maxPointsPerSeries: cfg.maxPointsPerSeries,
    httpPort: ops.port,
    opsUrl: ops.url,
    drain: () => writer.drain(),
    close,
  };
}
