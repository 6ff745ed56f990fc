/**
 * Alert service component: consumes `plantwatch.readings` and `plantwatch.scores`, evaluates rules,
 * publishes every alert state change on `plantwatch.alerts` (key `<site>/<line>/<machine>`),
 * delivers signed webhooks through a durable outbox, and serves its REST API, /metrics and
 * /healthz on `httpPort`. The handle implements `AlertsApi` in-process.
 */
import type { ComponentContext, ComponentHandle } from '../../common/component.ts';
import { startOpsServer, type OpsServer } from '../../common/http.ts';
import { ensureTopics, type Consumer, type Producer } from '../../common/kafka.ts';
import type { Alert } from '../../common/messages.ts';
import { TOPICS, machineKey } from '../../common/topics.ts';
import type { AlertFilter, AlertsApi } from './api.ts';
import type { Clock } from './clock.ts';
import { AlertsConfig } from './config.schema.ts';
import { alertRoutes } from './rest.ts';
import { AlertService, COMPONENT, type AlertServiceOptions } from './service.ts';

export { AlertsConfig } from './config.schema.ts';
export { HttpAlertsApi } from './rest.ts';
export { verifySignature, newWebhookSecret } from './webhook.ts';
export type { AlertsApi, AlertFilter } from './api.ts';

export interface AlertsHandle extends ComponentHandle, AlertsApi {
  /** Resolves once the Kafka consumer has joined its group (partitions assigned). */
  whenJoined(): Promise<void>;
  /** The ops server (REST API, /metrics, /healthz). */
  readonly url: string;
  readonly port: number;
  readonly service: AlertService;
}

export interface AlertsDeps {
  clock?: Clock;
  onDelivery?: AlertServiceOptions['onDelivery'];
}

export async function start(config: AlertsConfig, ctx: ComponentContext, deps: AlertsDeps = {}): Promise<AlertsHandle> {
  const log = ctx.logger.child({ component: COMPONENT });
  await ensureTopics(ctx.kafka);
  const producer: Producer = ctx.kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();

  let service: AlertService;
  try {
    service = new AlertService({
      config,
      dataDir: ctx.dataDir,
      logger: log,
      metrics: ctx.metrics,
      clock: deps.clock,
      onDelivery: deps.onDelivery,
      publish: async (alerts: Alert[]) => {
        await producer.send({
          topic: TOPICS.alerts,
          acks: -1,
          messages: alerts.map((a) => ({ key: machineKey(a), value: JSON.stringify(a) })),
        });
      },
    });
  } catch (err) {
    // e.g. ALERTS_STATE_CORRUPT: nothing else was started yet.
    await producer.disconnect().catch(() => undefined);
    throw err;
  }

  let consumer: Consumer | undefined;
  let ops: OpsServer | undefined;
  let joined = false;
  let markJoined!: () => void;
  const joinedPromise = new Promise<void>((resolve) => {
    markJoined = () => {
      joined = true;
      resolve();
    };
  });
  try {
    ops = await startOpsServer({
      host: config.httpHost,
      port: config.httpPort,
      registries: () => [ctx.metrics],
      health: () => ({
        ok: true,
        component: COMPONENT,
        rules: service.rules().length,
        consumerJoined: joined,
        outboxDepth: service.outbox.depth(),
        groups: service.notifier.groupCount(),
      }),
      routes: [alertRoutes(service, { token: config.apiToken })],
    });
    service.start();

    // A short fetch wait: data is returned as soon as it arrives anyway; this bounds how long
    // close() waits for an idle long-poll to end.
    consumer = ctx.kafka.consumer({ groupId: config.kafka.groupId, maxWaitTimeInMs: 1000 });
    consumer.on(consumer.events.GROUP_JOIN, () => markJoined());
    await consumer.connect();
    await consumer.subscribe({ topics: [TOPICS.readings, TOPICS.scores], fromBeginning: config.kafka.fromBeginning });
    await consumer.run({
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        for (const message of batch.messages) {
          if (!isRunning() || isStale()) break;
          const dead = service.ingestRecord(batch.topic, message.value, { topic: batch.topic, partition: batch.partition, offset: message.offset });
          if (dead) {
            log.warn({ code: dead.code, reason: dead.reason, source: dead.source }, 'record refused, sent to the dead-letter topic');
            // Throwing here makes kafkajs retry the batch: a refused record is never dropped silently.
            await producer.send({ topic: TOPICS.deadLetter, acks: -1, messages: [{ key: message.key, value: JSON.stringify(dead) }] });
          }
          resolveOffset(message.offset);
        }
        await heartbeat();
      },
    });
  } catch (err) {
    await consumer?.disconnect().catch(() => undefined);
    await service.close().catch(() => undefined);
    await producer.disconnect().catch(() => undefined);
    await ops?.close().catch(() => undefined);
    throw err;
  }

  let closing: Promise<void> | undefined;
  const opsServer = ops;
  const handle: AlertsHandle = {
    name: COMPONENT,
    url: opsServer.url,
    opsUrl: opsServer.url,
    port: opsServer.port,
    service,
    whenJoined: () => joinedPromise,
    list: (filter?: AlertFilter) => service.list(filter),
    acknowledge: (fp, by, comment) => service.acknowledge(fp, by, comment),
    silence: (fp, until, by) => service.silence(fp, until, by),
    close: () =>
      (closing ??= (async () => {
        // Stop intake first, then drain: the service's last publish still needs the producer.
        await consumer!.disconnect().catch((err: Error) => log.warn({ err: err.message }, 'consumer disconnect failed'));
        await service.close();
        await producer.disconnect().catch((err: Error) => log.warn({ err: err.message }, 'producer disconnect failed'));
        await opsServer.close();
      })()),
  };
  return handle;
}

export type { AlertService };
export { AlertsConfig as ConfigSchema };
