/**
 * Runs the edge bridge as its own process, for the kill test and the benchmark:
 *   KAFKA_BROKERS=127.0.0.1:9092 EDGE_DATA_DIR=/tmp/x EDGE_MQTT_PORT=18830 npx tsx edge/testdata/edge-runner.ts
 * Optional: EDGE_HTTP_PORT (ops server; default off), EDGE_CONFIG (JSON merged into the edge config),
 * EDGE_CPU_PROFILE=<file.cpuprofile> (V8 CPU profile written at SIGTERM; NODE_OPTIONS cannot carry --cpu-prof).
 * Prints `READY <mqttPort> <httpPort|->` on stdout once devices can connect. SIGTERM closes cleanly.
 */
import { createKafkaClients } from '../../common/kafka.ts';
import { KafkaClientConfig } from '../../common/config/fragments.ts';
import { createLogger } from '../../common/logger.ts';
import { createRegistry } from '../../common/metrics.ts';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { start } from '../index.ts';

const brokers = (process.env.KAFKA_BROKERS ?? '').split(',').filter(Boolean);
const dataDir = process.env.EDGE_DATA_DIR;
if (brokers.length === 0 || !dataDir) {
  console.error('edge-runner: set KAFKA_BROKERS and EDGE_DATA_DIR');
  process.exit(2);
}
let profiler: Session | null = null;
if (process.env.EDGE_CPU_PROFILE) {
  profiler = new Session();
  profiler.connect();
  await profiler.post('Profiler.enable');
  await profiler.post('Profiler.start');
}
const logger = createLogger({ level: (process.env.LOG_LEVEL as 'warn' | undefined) ?? 'warn', destination: process.stderr });
const kafkaClientConfig = { ...KafkaClientConfig.parse({}), clientId: 'edge-runner', brokers };
const kafka = createKafkaClients(kafkaClientConfig, logger);
const extra = process.env.EDGE_CONFIG ? (JSON.parse(process.env.EDGE_CONFIG) as Record<string, unknown>) : {};
const edge = await start(
  {
    ...extra,
    embedded: { host: '127.0.0.1', port: Number(process.env.EDGE_MQTT_PORT ?? 0), ...(extra.embedded as object) },
    httpPort: process.env.EDGE_HTTP_PORT ? Number(process.env.EDGE_HTTP_PORT) : null,
    httpHost: '127.0.0.1',
  },
  { logger, metrics: createRegistry('edge'), kafka, dataDir },
);
process.stdout.write(`READY ${edge.mqttPort} ${edge.httpUrl ? new URL(edge.httpUrl).port : '-'}\n`);
// npx, tsx and node share the process group: SIGTERM may arrive more than once.
let stopping = false;
process.on('SIGTERM', async () => {
  if (stopping) return;
  stopping = true;
  if (profiler) {
    const { profile } = await profiler.post('Profiler.stop');
    writeFileSync(process.env.EDGE_CPU_PROFILE as string, JSON.stringify(profile));
  }
  edge.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
