#!/usr/bin/env -S npx tsx
/**
 * The Plantwatch command line. `start` runs the whole platform; each component name runs that
 * component alone (multi-host deployments, docker-compose). Config errors print one line and exit 2.
 */
import { resolve } from 'node:path';
import { Command } from 'commander';
import { ConfigError, PlatformError } from '../common/errors.ts';
import { startPlatform, type PlatformHandle } from '../platform/index.ts';
import { COMPONENTS, type ComponentName } from '../platform/config.schema.ts';

const program = new Command()
  .name('plantwatch')
  .description('Industrial IoT sensor monitoring: MQTT edge, Kafka backbone, tfjs anomaly prediction, InfluxDB, live dashboards')
  .option('-c, --config <file>', 'YAML or JSON config file (env overrides it: KAFKA_BROKERS, INFLUX_URL, MQTT_URL, PLANTWATCH_<SECTION>__<KEY>)')
  .showHelpAfterError();

function fail(err: unknown): never {
  if (err instanceof ConfigError) {
    process.stderr.write(`plantwatch: ${err.message}\n`);
    process.exit(2);
  }
  const e = err as Error;
  // A coded failure points at its entry in docs/errors.md (cause and fix).
  const code = err instanceof PlatformError ? ` [${err.code}, see docs/errors.md]` : '';
  process.stderr.write(`plantwatch: ${e?.message ?? String(err)}${code}\n`);
  if (process.env.PLANTWATCH_DEBUG) process.stderr.write(`${e?.stack ?? ''}\n`);
  process.exit(1);
}

/**
 * Ctrl-C / SIGTERM close everything in reverse order, draining in-flight work. A second signal
 * forces exit, but only a deliberate one: Ctrl-C under `npm start` reaches us twice at once (from
 * the terminal's process group and relayed by npm), and that must not skip the drain.
 */
function stopOnSignals(handle: PlatformHandle): void {
  let firstAt = 0;
  const stop = (signal: string) => {
    if (firstAt > 0) {
      if (Date.now() - firstAt < 1000) return;
      handle.logger.warn({ signal }, 'second signal: exiting without draining');
      process.exit(130);
    }
    firstAt = Date.now();
    handle.logger.info({ signal }, 'stopping: draining in-flight work (press Ctrl-C again to force)');
    handle.close().then(
      () => process.exit(0),
      (err) => fail(err),
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

async function run(components: ComponentName[] | undefined, overrides?: Record<string, unknown>): Promise<PlatformHandle> {
  const opts = program.opts<{ config?: string }>();
  try {
    const handle = await startPlatform({ configFile: opts.config, components, overrides });
    stopOnSignals(handle);
    return handle;
  } catch (err) {
    return fail(err);
  }
}

program
  .command('start')
  .description('run the whole platform (embedded broker, MQTT, anomaly, storage, alerts, dashboard, demo plant)')
  .action(async () => {
    const h = await run(undefined);
    const lines = [
      '',
      `  Plantwatch is running.`,
      h.dashboardUrl ? `  Dashboard:  ${h.dashboardUrl}` : '',
      h.mqttUrl ? `  MQTT:       ${h.mqttUrl}` : '',
      `  Kafka:      ${h.kafkaBrokers.join(',')}`,
      `  Ctrl-C stops everything.`,
      '',
    ];
    process.stdout.write(lines.join('\n') + '\n');
  });

program
  .command('broker')
  .description('run the embedded Kafka-protocol broker alone')
  .option('--port <port>', 'listen port (default 9092)', Number)
  .option('--host <host>', 'listen host (default 127.0.0.1)')
  .option('--advertised-host <host>', 'host clients are told to connect to (default: the listen host)')
  .option('--data-dir <dir>', 'log directory, relative to the working directory (default <dataDir>/kafka)')
  .option('--fsync <policy>', 'always | interval | never (default interval)')
  .option('--http-port <port>', 'ops server port for /metrics and /healthz (default 9105)', Number)
  .action(async (o: { port?: number; host?: string; advertisedHost?: string; dataDir?: string; fsync?: string; httpPort?: number }) => {
    const broker: Record<string, unknown> = {};
    if (o.port !== undefined) broker.port = o.port;
    if (o.host !== undefined) broker.host = o.host;
    if (o.advertisedHost !== undefined) broker.advertisedHost = o.advertisedHost;
    // A path given on the command line is relative to where the command runs, not to dataDir.
    if (o.dataDir !== undefined) broker.dataDir = resolve(o.dataDir);
    if (o.fsync !== undefined) broker.fsync = o.fsync;
    if (o.httpPort !== undefined) broker.httpPort = o.httpPort;
    const h = await run(['broker'], { broker, kafka: { brokers: [] } });
    process.stdout.write(`Kafka-protocol broker listening on ${h.kafkaBrokers.join(',')}\n`);
  });

for (const name of COMPONENTS.filter((c) => c !== 'broker')) {
  program
    .command(name === 'simulator' ? 'simulate-demo' : name)
    .description(name === 'simulator' ? 'run the demo plant simulator against MQTT_URL' : `run the ${name} component alone (needs KAFKA_BROKERS)`)
    .action(async () => {
      const h = await run([name]);
      if (h.dashboardUrl) process.stdout.write(`Dashboard: ${h.dashboardUrl}\n`);
    });
}

program
  .command('build-dashboard')
  .description('build the web UI into dashboards/dist')
  .action(async () => {
    try {
      const { buildDashboard } = await import('../dashboards/build.ts');
      await buildDashboard();
    } catch (err) {
      fail(err);
    }
  });

program.parseAsync().catch(fail);
