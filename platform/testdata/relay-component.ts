/**
 * A tiny component for platform/worker.test.ts: relays each record of `config.from` to `config.to`
 * with its value upper-cased, counts them in a metric, serves /metrics, and can be told to crash
 * (a record with value `crash` throws outside any handler, like a bug in a real component) or to
 * fail at start.
 */
import { isMainThread, threadId } from 'node:worker_threads';
import { z } from 'zod';
import { onceClose, type ComponentContext, type ComponentHandle } from '../../common/component.ts';
import { ConfigError } from '../../common/errors.ts';
import { startOpsServer } from '../../common/http.ts';
import { prom } from '../../common/metrics.ts';

export const RelayConfig = z.strictObject({
  from: z.string(),
  to: z.string(),
  groupId: z.string(),
  failStart: z.boolean().default(false),
});

export interface RelayHandle extends ComponentHandle {
  readonly opsUrl: string;
  readonly threadId: number;
  readonly inWorker: boolean;
  readonly topics: string[];
}

export async function start(input: z.input<typeof RelayConfig>, ctx: ComponentContext): Promise<RelayHandle> {
  const config = RelayConfig.parse(input);
  if (config.failStart) throw new ConfigError('invalid config: relay.failStart is set');
  const relayed = new prom.Counter({ name: 'plantwatch_relay_records_total', help: 'records relayed', registers: [ctx.metrics] });
  const consumer = ctx.kafka.consumer({ groupId: config.groupId });
  const producer = ctx.kafka.producer();
  await Promise.all([consumer.connect(), producer.connect()]);
  await consumer.subscribe({ topic: config.from, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      const value = message.value?.toString() ?? '';
      if (value === 'crash') setImmediate(() => { throw new Error('relay: told to crash'); });
      await producer.send({ topic: config.to, messages: [{ key: message.key, value: value.toUpperCase() }] });
      relayed.inc();
    },
  });
  const ops = await startOpsServer({ host: '127.0.0.1', port: 0, registries: () => [ctx.metrics] });
  ctx.logger.info({ component: 'relay' }, 'relay started');
  return {
    name: 'relay',
    opsUrl: ops.url,
    threadId,
    inWorker: !isMainThread,
    topics: [config.from, config.to],
    close: onceClose(async () => {
      await consumer.disconnect();
      await producer.disconnect();
      await ops.close();
    }),
  };
}
