/**
 * Edge bridge: MQTT → Kafka with no data loss.
 *
 *   devices ──MQTT──▶ embedded aedes broker ─┐
 *   external broker ◀─subscribe (clean=false)─┤ mapToKafka: map topic → decode → validate
 *                                             ▼
 *                      Forwarder (batch, gzip, acks=-1) ──▶ Kafka plantwatch.readings / .deadletter
 *                           │ Kafka down or slow                ▲
 *                           ▼                                   │ replay in order
 *                      on-disk spool (ctx.dataDir/edge-spool) ──┘
 *
 * A QoS 1/2 message is acknowledged to its sender only once its records are durable (Kafka acked
 * or spooled and fsynced). See README.md.
 */
import { isAbsolute, join } from 'node:path';
import type { ComponentContext, ComponentHandle } from '../common/component.ts';
import { onceClose } from '../common/component.ts';
import { ensureTopics, PLATFORM_TOPICS } from '../common/kafka.ts';
import { startOpsServer, type OpsServer } from '../common/http.ts';
import { sleep } from '../common/retry.ts';
import { EdgeConfig, type EdgeConfigInput } from './config.schema.ts';
import { Ingestor, deadLetterRecord, type InboundMessage } from './pipeline.ts';
import { Forwarder, type KafkaSink, type ForwarderMode } from './forwarder.ts';
import { Spool } from './spool.ts';
import { createEdgeMetrics, type EdgeMetrics } from './metrics.ts';
import { createKafkaSink } from './sink.ts';
import { configHooks, type BrokerHooks } from './hooks.ts';
import { startEmbeddedBroker, type EmbeddedBroker } from './mqtt-broker.ts';
import { startExternalSubscriber, type ExternalSubscriber } from './mqtt-client.ts';

export { EdgeConfig } from './config.schema.ts';
export type { EdgeConfigInput } from './config.schema.ts';

export interface EdgeHandle extends ComponentHandle {
  readonly mode: 'embedded' | 'client';
  /** Embedded mode: URL devices connect to (mqtt://127.0.0.1:<port> for a wildcard bind); client mode: the external broker. */
  readonly mqttUrl: string;
  /** Embedded mode: the bound MQTT port (useful with port 0); null in client mode. */
  readonly mqttPort: number | null;
  readonly wsPort: number | null;
  /** Ops server (/metrics, /healthz); null when httpPort is null. */
  readonly httpUrl: string | null;
  readonly metrics: EdgeMetrics;
  /** 'spool' while Kafka is unavailable or the spool is being replayed. */
  forwarderMode(): ForwarderMode;
  spoolBytes(): number;
  sparkplug(): { nodes: number; born: number; stale: number };
}

export interface EdgeDeps {
  /** Replaces the Kafka producer (tests use an in-memory sink). */
  sink?: KafkaSink;
  /** Override the broker hooks (custom auth); defaults come from `embedded.auth`. */
  hooks?: (defaults: BrokerHooks) => BrokerHooks;
}

export async function start(config: EdgeConfigInput | EdgeConfig, ctx: ComponentContext, deps: EdgeDeps = {}): Promise<EdgeHandle> {
  const cfg = EdgeConfig.parse(config);
  const log = ctx.logger.child({ component: 'edge' });
  const metrics = createEdgeMetrics(ctx.metrics);
  const ingestor = new Ingestor(cfg);
  const spoolDir = isAbsolute(cfg.spool.dir) ? cfg.spool.dir : join(ctx.dataDir, cfg.spool.dir);
  const spool = Spool.open(spoolDir, cfg.spool);
  const kafkaSink = deps.sink ? null : createKafkaSink(ctx.kafka, cfg.kafka);
  const sink: KafkaSink = deps.sink ?? (kafkaSink as KafkaSink);
  const forwarder = new Forwarder(sink, spool, { ...cfg.kafka, whenFull: cfg.spool.whenFull }, metrics, log);

  const stopTopics = new AbortController();
  if (!deps.sink) {
    const topics = new Set([...cfg.mapping.map((m) => m.kafkaTopic)]);
    const specs = [...PLATFORM_TOPICS.filter((t) => topics.has(t.topic) || t.topic === 'plantwatch.deadletter'), ...[...topics].filter((t) => !PLATFORM_TOPICS.some((p) => p.topic === t)).map((topic) => ({ topic }))];
    // Kafka may be down at start: the bridge still starts (records spool) and keeps trying.
    const ensure = async () => {
      for (let attempt = 1; !stopTopics.signal.aborted; attempt++) {
        try {
          await ensureTopics(ctx.kafka, specs);
          return;
        } catch (err) {
          if (attempt === 1) log.warn({ err: (err as Error).message }, 'cannot create Kafka topics yet; retrying in the background');
          await sleep(Math.min(5000, 250 * attempt), stopTopics.signal).catch(() => undefined);
        }
      }
    };
    await Promise.race([ensure(), sleep(3000)]);
    kafkaSink?.warmUp().catch((err: Error) => log.warn({ err: err.message }, 'Kafka producer not connected yet; records spool until it is'));
  }

  let intakeOpen = true;
  let broker: EmbeddedBroker | null = null;
  let subscriber: ExternalSubscriber | null = null;
  const publishCommand = (topic: string, payload: Buffer) => (broker ? broker.publish(topic, payload, 0) : subscriber ? subscriber.publish(topic, payload, 0) : Promise.resolve());

  // Label lookups hash the label set on every call; rules × QoS levels is a small fixed set.
  const receivedCounters = new Map<string, { inc(): void }>();
  const readingCounters = new Map<string, { inc(n: number): void }>();
  const mapToKafka = async (msg: InboundMessage): Promise<void> => {
    if (!intakeOpen) throw new Error('edge is closing');
    let records;
    try {
      const res = ingestor.ingest(msg);
      const receivedKey = `${res.rule ?? 'unmapped'}|${msg.qos}`;
      let received = receivedCounters.get(receivedKey);
      if (!received) receivedCounters.set(receivedKey, (received = metrics.received.labels(res.rule ?? 'unmapped', String(msg.qos))));
      received.inc();
      for (const r of res.rejects) {
        metrics.deadLettered.inc({ code: r.code });
        log.debug({ topic: msg.topic, clientId: msg.clientId, code: r.code, reason: r.reason }, 'dead-lettered');
      }
      if (res.readings > 0 && res.records[0]) {
        const topic = res.records[0].topic;
        let readings = readingCounters.get(topic);
        if (!readings) readingCounters.set(topic, (readings = metrics.readings.labels(topic)));
        readings.inc(res.readings);
      }
      for (const e of res.sparkplugEvents) metrics.sparkplug.inc({ event: e });
      for (const c of res.commands) {
        metrics.rebirths.inc();
        log.info({ topic: c.topic, reason: c.reason }, 'requesting Sparkplug rebirth');
        publishCommand(c.topic, c.payload).catch((err: Error) => log.warn({ err: err.message }, 'rebirth request failed'));
      }
      records = res.records;
    } catch (err) {
      // A decoder bug must not take the bridge down or lose the message: dead-letter it as is.
      log.error({ err, topic: msg.topic }, 'decoder failed');
      metrics.deadLettered.inc({ code: 'DECODER_FAILED' });
      records = [deadLetterRecord(msg, { code: 'DECODER_FAILED', reason: `decoder failed: ${(err as Error).message}`, raw: msg.payload })];
    }
    if (records.length === 0) return;
    const durable = forwarder.submit(records);
    // QoS 0 is best effort: don't hold the device back unless memory is the limit.
    if (msg.qos === 0 && !forwarder.saturated) {
      durable.catch(() => undefined);
      return;
    }
    await durable;
  };

  const events = {
    denied: (what: 'connect' | 'publish' | 'subscribe', clientId: string, detail: string) => {
      metrics.authFailures.inc({ what });
      log.warn({ what, clientId, detail }, 'denied');
    },
    clients: (n: number) => metrics.clients.set(n),
  };

  try {
    if (cfg.mode === 'embedded') {
      const defaults = configHooks(cfg.embedded.auth, mapToKafka);
      broker = await startEmbeddedBroker(cfg.embedded, deps.hooks ? deps.hooks(defaults) : defaults, log, events);
    } else {
      subscriber = await startExternalSubscriber(cfg.client, mapToKafka, log);
    }
  } catch (err) {
    stopTopics.abort();
    await forwarder.close();
    await kafkaSink?.close();
    throw err;
  }

  let ops: OpsServer | null = null;
  if (cfg.httpPort !== null) {
    try {
      ops = await startOpsServer({
        host: cfg.httpHost,
        port: cfg.httpPort,
        registries: () => [ctx.metrics],
        health: () => ({
          ok: broker !== null || (subscriber?.connected() ?? false),
          mode: cfg.mode,
          delivery: forwarder.currentMode,
          spoolBytes: spool.bytes,
          pendingRecords: forwarder.pendingRecords,
          sparkplug: ingestor.sparkplug.summary(),
          ...(broker ? { clients: broker.connectedClients() } : {}),
          ...(subscriber ? { connected: subscriber.connected(), heldAcks: subscriber.heldAcks() } : {}),
        }),
      });
    } catch (err) {
      // e.g. the ops port is taken: release what was started, then report.
      intakeOpen = false;
      stopTopics.abort();
      await broker?.close();
      await subscriber?.close();
      await forwarder.close();
      await kafkaSink?.close();
      throw err;
    }
  }

  const close = onceClose(async () => {
    intakeOpen = false;
    stopTopics.abort();
    await broker?.close();
    await subscriber?.close();
    await forwarder.close();
    await kafkaSink?.close();
    await ops?.close();
    log.info('edge closed');
  });

  return {
    name: 'edge',
    mode: cfg.mode,
    mqttUrl: broker ? broker.url : cfg.client.url,
    mqttPort: broker ? broker.port : null,
    wsPort: broker ? broker.wsPort : null,
    httpUrl: ops ? ops.url : null,
    opsUrl: ops ? ops.url : null,
    metrics,
    forwarderMode: () => forwarder.currentMode,
    spoolBytes: () => spool.bytes,
    sparkplug: () => ingestor.sparkplug.summary(),
    close,
  };
}
