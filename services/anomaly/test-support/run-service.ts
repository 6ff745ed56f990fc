/**
 * Runs one anomaly-service instance in its own process, so tests can SIGKILL it like a crash.
 *
 *   tsx run-service.ts '{"brokers":["127.0.0.1:1234"],"dataDir":"/tmp/x","config":{...},"detector":"real"}'
 *
 * Prints one JSON line `{"ready":true,"opsUrl":...}` once consuming; SIGTERM closes gracefully.
 */
import { createKafkaClients, type KafkaClients } from '../../../common/kafka.ts';
import { KafkaClientConfig } from '../../../common/config/fragments.ts';
import { createLogger } from '../../../common/logger.ts';
import { createRegistry } from '../../../common/metrics.ts';
import { AnomalyConfig, start } from '../index.ts';
import { FakeDetector } from './fake-detector.ts';

interface RunSpec {
  brokers: string[];
  dataDir: string;
  config?: Record<string, unknown>;
  detector?: 'real' | 'fake';
  clientId?: string;
  /**
   * Crash test: SIGKILL this process right after its Nth produce was acknowledged, i.e. after the
   * scores are out and before the offsets can be committed.
   */
  crashAfterSends?: number;
}

const spec = JSON.parse(process.argv[2] ?? '{}') as RunSpec;
const logger = createLogger({ level: (process.env.LOG_LEVEL as 'warn' | undefined) ?? 'warn', destination: process.stderr });
const clients = createKafkaClients({ ...KafkaClientConfig.parse({}), clientId: spec.clientId ?? 'anomaly-test', brokers: spec.brokers }, logger);
let sends = 0;
const kafka: KafkaClients = {
  ...clients,
  // The crash hook wraps kafkajs' producer in this thread; without `config` the service keeps its
  // producer here instead of in a worker thread (the commit-after-ack logic is the same for both).
  config: spec.crashAfterSends ? undefined : clients.config,
  producer: (opts) => {
    const producer = clients.producer(opts);
    if (!spec.crashAfterSends) return producer;
    const sendBatch = producer.sendBatch.bind(producer);
    producer.sendBatch = async (batch) => {
      const result = await sendBatch(batch);
      if (++sends === spec.crashAfterSends) process.kill(process.pid, 'SIGKILL');
      return result;
    };
    return producer;
  },
};
const handle = await start(
  AnomalyConfig.parse({ httpPort: 0, ...spec.config }),
  { logger, metrics: createRegistry('anomaly'), kafka, dataDir: spec.dataDir },
  spec.detector === 'fake'
    ? {
        detectors: {
          defaultVersion: 'fake-1',
          create: async (v) => new FakeDetector({ modelVersion: v ?? 'fake-1', reuseColumns: true }),
          restore: async (snap, v) => {
            const d = new FakeDetector({ modelVersion: v, reuseColumns: true });
            await d.restore(snap);
            d.modelVersion = v;
            return d;
          },
        },
      }
    : {},
);
process.stdout.write(`${JSON.stringify({ ready: true, opsUrl: handle.opsUrl, pid: process.pid })}\n`);
process.on('SIGTERM', () => {
  void handle.close().then(() => process.exit(0));
});
