/**
 * Runs the broker as its own process (crash-safety tests, benchmarks, manual runs):
 *   node --import tsx services/kafka-broker/testdata/run-broker.ts --port 0 --data-dir /tmp/k [--fsync interval] [--log-level warn]
 * Prints `READY <host:port>` on stdout once listening; SIGTERM/SIGINT close it cleanly.
 */
import { parseArgs } from 'node:util';
import { createLogger } from '../../../common/logger.ts';
import { startBroker } from '../index.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '9092' },
    host: { type: 'string', default: '127.0.0.1' },
    'data-dir': { type: 'string', default: 'data/kafka' },
    fsync: { type: 'string', default: 'interval' },
    'http-port': { type: 'string' },
    'log-level': { type: 'string', default: 'warn' },
    /** Write a V8 CPU profile of the running broker (start-up excluded) here on SIGTERM. */
    'cpu-profile': { type: 'string' },
  },
});

const broker = await startBroker({
  port: Number(values.port),
  host: values.host,
  dataDir: values['data-dir'],
  fsync: values.fsync as 'always' | 'interval' | 'never',
  httpPort: values['http-port'] === undefined ? null : Number(values['http-port']),
  logger: createLogger({ level: values['log-level'] as 'warn', destination: process.stderr }),
});
let stopProfile: (() => Promise<void>) | undefined;
if (values['cpu-profile']) {
  const { Session } = await import('node:inspector');
  const { writeFileSync } = await import('node:fs');
  const session = new Session();
  session.connect();
  const post = (method: string): Promise<unknown> => new Promise((resolve, reject) => session.post(method, {}, (err, res) => (err ? reject(err) : resolve(res))));
  await post('Profiler.enable');
  await post('Profiler.start');
  stopProfile = async () => {
    const { profile } = (await post('Profiler.stop')) as { profile: unknown };
    writeFileSync(values['cpu-profile']!, JSON.stringify(profile));
  };
}
process.stdout.write(`READY ${broker.brokers[0]}\n`);

const stop = async (): Promise<void> => {
  await stopProfile?.();
  await broker.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
