/**
 * The embedded Kafka-protocol broker in its own process, for the edge benchmark and outage runs:
 *   KAFKA_DATA_DIR=/tmp/k KAFKA_PORT=0 npx tsx edge/testdata/kafka-runner.ts   → prints `READY host:port`
 */
import { silentLogger } from '../../common/logger.ts';
import { startBroker } from '../../services/kafka-broker/index.ts';

const broker = await startBroker({ port: Number(process.env.KAFKA_PORT ?? 0), dataDir: process.env.KAFKA_DATA_DIR ?? 'data/bench-kafka', httpPort: null, logger: silentLogger() });
process.stdout.write(`READY ${broker.brokers[0]}\n`);
process.on('SIGTERM', () => {
  broker.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
