/**
 * Baseline for the benchmark: the same embedded broker module (aedes) with allow-all hooks and no
 * Kafka, in its own process:  npx tsx edge/testdata/mqtt-runner.ts   → prints `READY <port>`
 */
import { silentLogger } from '../../common/logger.ts';
import { EdgeConfig } from '../config.schema.ts';
import { startEmbeddedBroker } from '../mqtt-broker.ts';
import type { BrokerHooks } from '../hooks.ts';

const allowAll: BrokerHooks = {
  preConnect: async () => true,
  authenticate: async ({ clientId }) => ({ ok: true, principal: { clientId, username: null, publish: ['#'], subscribe: ['#'] } }),
  authorizePublish: async () => true,
  authorizeSubscribe: async () => true,
  mapToKafka: async () => undefined,
};
const cfg = EdgeConfig.parse({ embedded: { host: '127.0.0.1', port: Number(process.env.MQTT_PORT ?? 0) } });
const broker = await startEmbeddedBroker(cfg.embedded, allowAll, silentLogger(), { denied: () => undefined, clients: () => undefined });
process.stdout.write(`READY ${broker.port}\n`);
process.on('SIGTERM', () => {
  broker.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
