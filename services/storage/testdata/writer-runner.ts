/**
 * Runs the storage writer alone in its own process, for the crash test (SIGKILL mid-stream, start
 * again) and the benchmark. Configuration by environment:
 *   KAFKA_BROKERS   host:port list (required)
 *   INFLUX_URL      InfluxDB URL with database; empty → embedded store
 *   STORAGE_CONFIG  JSON for the storage section (optional)
 *   DATA_DIR        data folder (embedded store file goes under it)
 * Prints one JSON line `{"ready":true,"httpPort":…}` on stdout once consuming; SIGTERM closes cleanly.
 */
import { createKafkaClients } from '../../../common/kafka.ts';
import { KafkaClientConfig } from '../../../common/config/fragments.ts';
import { createLogger } from '../../../common/logger.ts';
import { createRegistry } from '../../../common/metrics.ts';
import { StorageConfig, start } from '../index.ts';

const brokers = (process.env.KAFKA_BROKERS ?? '').split(',').filter(Boolean);
if (brokers.length === 0) {
  console.error('KAFKA_BROKERS is required');
  process.exit(2);
}
const logger = createLogger({ level: (process.env.LOG_LEVEL as 'info' | undefined) ?? 'warn', destination: process.stderr });
const config = StorageConfig.parse({ httpPort: 0, ...JSON.parse(process.env.STORAGE_CONFIG ?? '{}') });
const kafka = createKafkaClients({ ...KafkaClientConfig.parse({}), clientId: 'storage-runner', brokers }, logger);
const handle = await start(config, { logger, metrics: createRegistry('storage'), kafka, dataDir: process.env.DATA_DIR ?? './data' }, { url: process.env.INFLUX_URL ?? '' });
process.stdout.write(`${JSON.stringify({ ready: true, httpPort: handle.httpPort, pid: process.pid })}\n`);
const shutdown = async () => {
  await handle.close();
  process.exit(0);
};
process.once('SIGTERM', () => void shutdown());
process.once('SIGINT', () => void shutdown());
