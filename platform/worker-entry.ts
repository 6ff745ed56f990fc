/**
 * The worker side of `startInWorker` (platform/worker.ts): builds the component's own context
 * (logger, metrics registry, Kafka clients), starts it, answers metric scrapes and closes it on request.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createLogger } from '../common/logger.ts';
import { createRegistry } from '../common/metrics.ts';
import { createKafkaClients, type KafkaClients } from '../common/kafka.ts';
import type { ComponentContext, ComponentHandle } from '../common/component.ts';
import { serializeError, type ToWorker, type WorkerInit } from './worker.ts';

const init = (workerData as { init: WorkerInit }).init;
const port = parentPort!;
const logger = createLogger({ level: init.logLevel });
const metrics = createRegistry(init.name);
const kafka: KafkaClients | undefined = init.kafka.brokers.length > 0 ? createKafkaClients(init.kafka, logger.child({ component: 'kafka-client' })) : undefined;
const ctx: ComponentContext = {
  logger,
  metrics,
  // A component that never touches Kafka (the broker itself) gets a clear error if it tries.
  kafka: kafka ?? new Proxy({} as KafkaClients, { get: () => { throw new Error(`${init.name}: no Kafka brokers were given to this worker`); } }),
  dataDir: init.dataDir,
};

/** Handle fields the main thread can use as plain data (URLs, ports, broker lists). */
function plainInfo(h: ComponentHandle): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === null || ['string', 'number', 'boolean'].includes(typeof v)) out[k] = v;
    else if (Array.isArray(v) && v.every((x) => ['string', 'number'].includes(typeof x))) out[k] = [...v];
  }
  return out;
}

async function flushLogs(): Promise<void> {
  await new Promise<void>((resolve) => logger.flush(() => resolve()));
}

let handle: ComponentHandle | undefined;
try {
  const mod = (await import(init.module)) as { start(config: unknown, ctx: ComponentContext): Promise<ComponentHandle> };
  handle = await mod.start(init.config, ctx);
  port.postMessage({ type: 'started', info: plainInfo(handle), opsUrl: handle.opsUrl ?? null });
} catch (err) {
  logger.error({ err, component: init.name }, 'component failed to start in its worker');
  await flushLogs();
  port.postMessage({ type: 'start-failed', error: serializeError(err) });
  process.exit(1);
}

port.on('message', async (m: ToWorker) => {
  if (m.type === 'metrics') {
    try {
      port.postMessage({ type: 'metrics', id: m.id, text: await metrics.metrics() });
    } catch (err) {
      port.postMessage({ type: 'metrics', id: m.id, error: serializeError(err) });
    }
  } else if (m.type === 'close') {
    let error: ReturnType<typeof serializeError> | undefined;
    try {
      await handle!.close();
    } catch (err) {
      error = serializeError(err);
    }
    await flushLogs();
    port.postMessage({ type: 'closed', error });
    // Libraries may keep timers or sockets alive after close; the component has drained, so end here.
    process.exit(0);
  }
});
