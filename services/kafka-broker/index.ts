/**
 * Embedded single-node Kafka-wire-protocol broker.
 *
 *   const broker = await startBroker({ port: 0, dataDir: '/tmp/k' });
 *   createKafkaClients({ brokers: broker.brokers, ... })
 *   await broker.close();
 *
 * or, as a platform component, `start(BrokerConfig.parse(section), ctx)`.
 */
import { isAbsolute, resolve } from 'node:path';
import type { ComponentContext, ComponentHandle } from '../../common/component.ts';
import { onceClose } from '../../common/component.ts';
import { createLogger, type Logger } from '../../common/logger.ts';
import { createRegistry, type Registry } from '../../common/metrics.ts';
import { startOpsServer, type OpsServer } from '../../common/http.ts';
import { BrokerConfig } from './config.schema.ts';
import { Broker } from './src/broker.ts';

export { BrokerConfig } from './config.schema.ts';

export interface BrokerHandle extends ComponentHandle {
  readonly host: string;
  readonly port: number;
  /** `['host:port']`, ready for `createKafkaClients({ brokers })`. */
  readonly brokers: string[];
  /** The port actually bound (differs from `port` only when `advertisedPort` is set). */
  readonly boundPort: number;
  /** Ops server URL (/metrics, /healthz), when `httpPort` is not null. */
  readonly opsUrl: string | null;
  /** The metrics registry the broker writes to. */
  readonly metrics: Registry;
  readonly dataDir: string;
}

/** What the broker needs from the platform context; it has no use for Kafka clients. */
export type BrokerContext = Pick<ComponentContext, 'logger' | 'metrics' | 'dataDir'>;

export async function start(config: BrokerConfig, ctx: BrokerContext): Promise<BrokerHandle> {
  const logger = ctx.logger.child({ component: 'kafka-broker' });
  const dataDir = isAbsolute(config.dataDir) ? config.dataDir : resolve(ctx.dataDir, config.dataDir);
  const broker = new Broker(config, dataDir, logger, ctx.metrics);
  const bound = await broker.start();
  let ops: OpsServer | null = null;
  if (config.httpPort !== null) {
    try {
      ops = await startOpsServer({
        host: config.httpHost,
        port: config.httpPort,
        registries: () => [ctx.metrics],
        health: () => ({ ok: true, topics: broker.logs.topics.size, groups: broker.groups.groups.size }),
      });
    } catch (err) {
      await broker.close();
      throw err;
    }
  }
  const { host, port } = broker.advertised;
  return {
    name: 'kafka-broker',
    host,
    port,
    brokers: [`${host}:${port}`],
    boundPort: bound.port,
    opsUrl: ops?.url ?? null,
    metrics: ctx.metrics,
    dataDir,
    close: onceClose(async () => {
      await ops?.close();
      await broker.close();
    }),
  };
}

export interface StartBrokerOptions extends Partial<BrokerConfig> {
  port?: number;
  host?: string;
  /** Log directory; relative paths resolve against the working directory. Default `./data/kafka`. */
  dataDir?: string;
  logger?: Logger;
  metrics?: Registry;
}

/** Starts a broker outside the platform (tests, `npm run broker`, embedding). */
export async function startBroker(opts: StartBrokerOptions = {}): Promise<BrokerHandle> {
  const { logger, metrics, ...rest } = opts;
  const config = BrokerConfig.parse({ ...rest, dataDir: rest.dataDir ?? 'data/kafka' });
  return start(config, {
    logger: logger ?? createLogger(),
    metrics: metrics ?? createRegistry('kafka-broker'),
    dataDir: process.cwd(),
  });
}
