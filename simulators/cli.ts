/**
 * `npm run simulate -- [options]` runs a plant; `npm run simulate -- replay <file.csv>` replays a CSV.
 * A progress line (rate, sent, errors) goes to stderr every second, a summary to stdout at the end.
 * Ctrl-C stops cleanly (flushes what was generated, writes the summary).
 */
import { readFileSync, realpathSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { Command, Option, InvalidArgumentError } from 'commander';
import mqtt from 'mqtt';
import { parse as parseYaml } from 'yaml';
import { ConfigError, PlatformError } from '../common/errors.ts';
import { createKafkaClients } from '../common/kafka.ts';
import { createLogger } from '../common/logger.ts';
import { FaultSpec, SimulatorConfig, type SimulatorConfigInput } from './config.schema.ts';
import { parseFaultArg } from './faults.ts';
import { LabelRecorder } from './labels.ts';
import { PlantModel } from './model.ts';
import { KafkaOutput, MqttOutput, NullOutput, setNoDelay, StreamOutput, type Output } from './outputs.ts';
import { loadPlant } from './plants.ts';
import { replayCsv, type CsvFormat } from './replay.ts';
import { formatProgress, SimulationRunner, type Progress } from './runner.ts';

function oneLine(err: unknown): string {
  if (err instanceof PlatformError) return err.message;
  return err instanceof Error ? err.message : String(err);
}

function num(name: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be a number in [${min}, ${max}]`);
    return n;
  };
}

/** A config file is a whole SimulatorConfig, or just a plant (`sites:` at the top). */
export function loadSimulatorConfig(file: string | undefined, overrides: (raw: Record<string, unknown>) => void): SimulatorConfig {
  let raw: Record<string, unknown> = {};
  if (file) {
    let parsed: unknown;
    try {
      parsed = parseYaml(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new ConfigError(`plant file ${file}: ${oneLine(err).split('\n')[0]}`);
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError(`plant file ${file} must contain a mapping`);
    raw = 'sites' in parsed ? { plant: parsed } : (parsed as Record<string, unknown>);
  }
  overrides(raw);
  const r = SimulatorConfig.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    let key = issue.path.join('.') || '(root)';
    let message = issue.message;
    if (issue.code === 'unrecognized_keys') {
      key = [...issue.path, (issue as { keys: string[] }).keys[0]].join('.');
      message = 'unknown key';
    }
    throw new ConfigError(`invalid simulator config${file ? ` (${file})` : ''}: ${key}: ${message}`);
  }
  return r.data;
}

function set(raw: Record<string, unknown>, path: string[], value: unknown): void {
  let node = raw;
  for (const k of path.slice(0, -1)) {
    if (!node[k] || typeof node[k] !== 'object') node[k] = {};
    node = node[k] as Record<string, unknown>;
  }
  node[path[path.length - 1]] = value;
}

interface RunOpts {
  seed?: number;
  speed?: number;
  start?: string;
  duration?: number;
  output?: 'mqtt' | 'kafka' | 'stdout' | 'none';
  url?: string;
  username?: string;
  password?: string;
  kafka?: string;
  qos?: number;
  format?: 'json' | 'batch' | 'sparkplug';
  connections?: string;
  batchMax?: number;
  topicPrefix?: string;
  fault: string[];
  faultsFile?: string;
  randomFaults: boolean;
  faultInterval?: number;
  labels?: string;
  labelsFormat?: 'jsonl' | 'csv';
  load?: number;
  machines?: number;
  rateHz?: number;
  tickMs?: number;
  progress: boolean;
  json: boolean;
  faultsStdin?: boolean;
}

async function runPlant(file: string | undefined, o: RunOpts): Promise<void> {
  const log = createLogger({ level: (process.env.LOG_LEVEL as 'info' | undefined) ?? 'warn', destination: process.stderr });
  const cfg = loadSimulatorConfig(file, (raw) => {
    if (o.machines !== undefined || (o.load !== undefined && !file)) {
      set(raw, ['plant'], loadPlant({ machines: o.machines ?? 100, rateHz: o.rateHz ?? 10 }));
    }
    if (o.seed !== undefined) set(raw, ['seed'], o.seed);
    if (o.speed !== undefined) set(raw, ['clock', 'speed'], o.speed);
    if (o.start !== undefined) set(raw, ['clock', 'start'], o.start);
    if (o.duration !== undefined) set(raw, ['clock', 'durationS'], o.duration);
    if (o.tickMs !== undefined) set(raw, ['clock', 'tickMs'], o.tickMs);
    if (o.output !== undefined) set(raw, ['output', 'kind'], o.output);
    if (o.kafka !== undefined) {
      set(raw, ['output', 'kind'], 'kafka');
      set(raw, ['output', 'kafka', 'brokers'], o.kafka.split(',').map((s) => s.trim()));
    }
    if (o.url !== undefined) set(raw, ['output', 'mqtt', 'url'], o.url);
    if (o.username !== undefined) set(raw, ['output', 'mqtt', 'username'], o.username);
    const password = o.password ?? process.env.MQTT_PASSWORD;
    if (password !== undefined) set(raw, ['output', 'mqtt', 'password'], password);
    if (o.qos !== undefined) set(raw, ['output', 'mqtt', 'qos'], o.qos);
    if (o.format !== undefined) set(raw, ['output', 'mqtt', 'format'], o.format);
    if (o.connections !== undefined) set(raw, ['output', 'mqtt', 'connections'], o.connections === 'machine' ? 'machine' : Number(o.connections));
    if (o.batchMax !== undefined) set(raw, ['output', 'mqtt', 'batchMax'], o.batchMax);
    if (o.topicPrefix !== undefined) set(raw, ['output', 'mqtt', 'topicPrefix'], o.topicPrefix);
    const faults = raw.faults && typeof raw.faults === 'object' ? (raw.faults as Record<string, unknown>) : {};
    const scheduled = Array.isArray(faults.scheduled) ? [...faults.scheduled] : [];
    if (o.faultsFile) {
      const list = parseYaml(readFileSync(o.faultsFile, 'utf8')) as unknown;
      if (!Array.isArray(list)) throw new ConfigError(`--faults-file ${o.faultsFile} must contain a list of faults`);
      for (const f of list) scheduled.push(FaultSpec.parse(f));
    }
    for (const f of o.fault) scheduled.push(parseFaultArg(f));
    set(raw, ['faults', 'scheduled'], scheduled);
    if (!o.randomFaults) set(raw, ['faults', 'random', 'enabled'], false);
    if (o.faultInterval !== undefined) set(raw, ['faults', 'random', 'meanIntervalS'], o.faultInterval);
    if (o.labels !== undefined) set(raw, ['labels', 'file'], o.labels);
    if (o.labelsFormat !== undefined) set(raw, ['labels', 'format'], o.labelsFormat);
  });

  const startMs = cfg.clock.start === 'now' ? Date.now() : Date.parse(cfg.clock.start);
  const model = new PlantModel(cfg, { startMs });
  // Load mode: the speed that makes the plant produce the target rate; duration counts wall seconds.
  const speed = o.load !== undefined ? o.load / model.naturalRate : cfg.clock.speed;
  const durationS = o.load !== undefined ? (cfg.clock.durationS ?? 10) * speed : cfg.clock.durationS;
  const labels = new LabelRecorder(cfg.labels.file, cfg.labels.format);

  let output: Output;
  switch (cfg.output.kind) {
    case 'mqtt':
      output = new MqttOutput(cfg.output.mqtt, model.machines, log);
      break;
    case 'kafka':
      if (cfg.output.kafka.brokers.length === 0) throw new ConfigError('output kafka needs --kafka host:port[,host:port]');
      output = new KafkaOutput(
        createKafkaClients({ brokers: cfg.output.kafka.brokers, clientId: 'plantwatch-simulator', connectionTimeoutMs: 3000, requestTimeoutMs: 30000 }, log),
        cfg.output.kafka,
        log,
      );
      break;
    case 'stdout':
      output = new StreamOutput(cfg.output.mqtt);
      break;
    default:
      output = new NullOutput();
  }
  await output.connect();

  const runner = new SimulationRunner({
    model,
    output,
    labels,
    speed,
    tickMs: cfg.clock.tickMs,
    startMs,
    endMs: durationS === undefined ? undefined : startMs + durationS * 1000,
    onLabel: (l) => {
      if (o.progress && speed > 0 && speed <= 1000) process.stderr.write(`${process.stderr.isTTY ? '\n' : ''}fault ${l.kind} on ${l.machineKey}/${l.sensor} ${l.startIso} → ${l.endIso}\n`);
    },
  });
  const tty = process.stderr.isTTY;
  let lastProgress: Progress | undefined;
  const timer = setInterval(() => {
    lastProgress = runner.progress();
    if (o.progress) process.stderr.write(tty ? `\r${formatProgress(lastProgress)}\x1b[K` : `${formatProgress(lastProgress)}\n`);
  }, 1000);
  // On demand: each stdin line is a fault spec injected at the current simulated time (+ @startS).
  let stdinFaults: ReturnType<typeof createInterface> | undefined;
  if (o.faultsStdin) {
    stdinFaults = createInterface({ input: process.stdin });
    stdinFaults.on('line', (line) => {
      if (line.trim() === '') return;
      try {
        const l = runner.injectFault(parseFaultArg(line));
        if (!(o.progress && speed > 0 && speed <= 1000)) process.stderr.write(`injected ${l.kind} on ${l.machineKey}/${l.sensor} ${l.startIso} → ${l.endIso}\n`);
      } catch (err) {
        process.stderr.write(`${tty ? '\n' : ''}${oneLine(err)}\n`);
      }
    });
  }
  const stop = () => void runner.stop();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const wall0 = performance.now();
  await runner.run();
  const genWallS = (performance.now() - wall0) / 1000;
  await output.close();
  const wallS = (performance.now() - wall0) / 1000;
  clearInterval(timer);
  stdinFaults?.close();
  if (o.progress && tty) process.stderr.write('\n');
  process.off('SIGINT', stop);
  process.off('SIGTERM', stop);

  const s = output.stats;
  const summary = {
    machines: model.machines.length,
    sensors: model.machines.reduce((a, m) => a + m.sensors.length, 0),
    naturalRate: model.naturalRate,
    speed,
    simulatedFrom: new Date(startMs).toISOString(),
    simulatedTo: new Date(runner.cursor).toISOString(),
    wallSeconds: Number(wallS.toFixed(3)),
    readings: s.readings,
    messages: s.messages,
    bytes: s.bytes,
    errors: s.errors,
    readingsPerSecond: Math.round(s.readings / wallS),
    messagesPerSecond: Math.round(s.messages / wallS),
    /** Rate while generating, before the final flush/disconnect. */
    generationReadingsPerSecond: Math.round(s.readings / genWallS),
    faults: labels.labels.length,
    labelsFile: cfg.labels.file || null,
    /** Wall seconds spent flushing and disconnecting after the last round. */
    flushSeconds: Number((wallS - genWallS).toFixed(3)),
    // Load mode: the rate over the paced run (the final flush is reported separately).
    ...(o.load !== undefined ? { targetRate: o.load, achievedRate: Math.round(s.readings / genWallS), achievedPercent: Math.round((100 * s.readings) / genWallS / o.load) } : {}),
  };
  if (o.json) {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return;
  }
  const n = (x: number) => Math.round(x).toLocaleString('en-US');
  const lines = [
    'simulator summary',
    `  plant      ${summary.machines} machines, ${summary.sensors} sensors, ${n(summary.naturalRate)} readings/s in real time`,
    `  simulated  ${summary.simulatedFrom} → ${summary.simulatedTo} (speed ×${Number(speed.toFixed(3))})`,
    `  wall       ${wallS.toFixed(1)} s`,
    `  sent       ${n(s.readings)} readings in ${n(s.messages)} messages (${n(summary.readingsPerSecond)} readings/s, ${n(summary.messagesPerSecond)} msgs/s)`,
    `  errors     ${n(s.errors)}`,
    `  faults     ${labels.labels.length} labelled${cfg.labels.file ? ` → ${cfg.labels.file}` : ''}`,
  ];
  if (o.load !== undefined) {
    lines.push(`  load       target ${n(o.load)} readings/s, achieved ${n(summary.achievedRate ?? 0)} readings/s (${summary.achievedPercent} %) over ${genWallS.toFixed(1)} s, then ${summary.flushSeconds} s to flush`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

interface ReplayOpts {
  url: string;
  username?: string;
  password?: string;
  speed: number;
  site: string;
  line: string;
  machine: string;
  sensor?: string;
  timestampColumn: string;
  valueColumns?: string;
  sensorColumn?: string;
  delimiter: string;
  timestampFormat: CsvFormat['timestampFormat'];
  header: boolean;
  rebase: boolean;
  qos: number;
  topicPrefix: string;
  format: 'json' | 'batch';
  progress: boolean;
  json: boolean;
}

async function runReplay(files: string[], o: ReplayOpts): Promise<void> {
  const col = (c: string): string | number => (/^\d+$/.test(c) && !o.header ? Number(c) : c);
  const client = await mqtt.connectAsync(o.url, {
    clientId: `plantwatch-replay-${process.pid}`,
    queueQoSZero: false,
    reconnectPeriod: 1000,
    username: o.username,
    password: o.password ?? process.env.MQTT_PASSWORD,
  });
  setNoDelay(client);
  client.on('connect', () => setNoDelay(client));
  let errors = 0;
  let inflight = 0;
  const waiters: (() => void)[] = [];
  const sink = {
    publish(topic: string, payload: string) {
      inflight++;
      client.publish(topic, payload, { qos: o.qos as 0 | 1 | 2 }, (err) => {
        inflight--;
        if (err) errors++;
        if (inflight < 1000) waiters.splice(0).forEach((w) => w());
      });
    },
    ready: () => (inflight < 1000 ? Promise.resolve() : new Promise<void>((r) => waiters.push(r))),
  };
  const abort = new AbortController();
  process.once('SIGINT', () => abort.abort());
  let total = 0;
  const timer = setInterval(() => {
    if (o.progress) process.stderr.write(`replay: sent ${total.toLocaleString('en-US')} rows, errors ${errors}\n`);
  }, 1000);
  try {
    for (const file of files) {
      const summary = await replayCsv({
        file,
        format: {
          delimiter: o.delimiter,
          timestampColumn: col(o.timestampColumn),
          valueColumns: o.valueColumns ? o.valueColumns.split(',').map(col) : o.sensorColumn ? [] : ['value'],
          sensorColumn: o.sensorColumn === undefined ? undefined : col(o.sensorColumn),
          timestampFormat: o.timestampFormat,
          header: o.header,
        },
        site: o.site,
        line: o.line,
        machine: o.machine,
        sensor: o.sensor,
        topicPrefix: o.topicPrefix,
        speed: o.speed,
        rebase: o.rebase,
        messageFormat: o.format,
        sink,
        signal: abort.signal,
        onRow: () => total++,
      });
      const out = { file, ...summary, errors };
      process.stdout.write(
        o.json
          ? `${JSON.stringify(out)}\n`
          : `replay ${file}: ${summary.sent} of ${summary.rows} rows sent in ${(summary.wallMs / 1000).toFixed(1)} s, ${summary.skipped} skipped${summary.skippedExamples.length ? ` (e.g. ${summary.skippedExamples[0]})` : ''}, max ${summary.maxLateMs.toFixed(1)} ms late, ${errors} errors\n`,
      );
    }
  } finally {
    clearInterval(timer);
    await client.endAsync();
  }
}

export function buildProgram(): Command {
  const program = new Command('simulate')
    .description('Plantwatch plant simulator: realistic sensor data with labelled faults, replay and load generation')
    .showHelpAfterError();
  program
    .command('run', { isDefault: true })
    .description('run a plant (default: the demo plant) and publish its readings')
    .argument('[plant]', 'plant or simulator config file (YAML/JSON)')
    .option('--seed <n>', 'PRNG seed: same seed, same data', num('seed', 0, Number.MAX_SAFE_INTEGER))
    .option('--speed <x>', 'simulated seconds per wall second (0 = as fast as possible)', num('speed', 0, 1e6))
    .option('--start <iso>', 'simulated start time (ISO-8601) or "now"')
    .option('--duration <s>', 'stop after this many simulated seconds (load mode: wall seconds)', num('duration', 0.001, 1e9))
    .addOption(new Option('--output <kind>', 'where readings go').choices(['mqtt', 'kafka', 'stdout', 'none']))
    .option('--url <url>', 'MQTT broker URL (default mqtt://127.0.0.1:1883)')
    .option('--username <u>', 'MQTT username')
    .option('--password <p>', 'MQTT password (or MQTT_PASSWORD)')
    .option('--kafka <brokers>', 'send straight to Kafka (host:port,…) instead of MQTT')
    .addOption(new Option('--qos <n>', 'MQTT QoS').choices(['0', '1', '2']).argParser(Number))
    .addOption(new Option('--format <f>', 'MQTT payload format').choices(['json', 'batch', 'sparkplug']))
    .option('--connections <n|machine>', 'MQTT connections: one per machine (default) or a pool of n')
    .option('--batch-max <n>', 'largest JSON array / Sparkplug DDATA', num('batch-max', 1, 100000))
    .option('--topic-prefix <p>', 'MQTT topic prefix (default plant)')
    .option('--fault <spec>', 'schedule a fault: kind:machine[/sensor][@startS][+durationS][,key=value] (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--faults-file <file>', 'YAML/JSON list of faults')
    .option('--no-random-faults', 'no random faults')
    .option('--fault-interval <s>', 'one random fault per this many simulated seconds', num('fault-interval', 10, 1e9))
    .option('--faults-stdin', 'inject faults on demand: one fault spec per stdin line, starting now (+@startS)')
    .option('--labels <file>', 'ground-truth label file')
    .addOption(new Option('--labels-format <f>', 'label file format').choices(['jsonl', 'csv']))
    .option('--load <rate>', 'load mode: target readings/s (speed is derived from the plant)', num('load', 1, 1e8))
    .option('--machines <n>', 'use the synthetic load plant with n machines', num('machines', 1, 100000))
    .option('--rate-hz <hz>', 'sampling rate of the load plant sensors (default 10)', num('rate-hz', 0.1, 1000))
    .option('--tick-ms <ms>', 'wall ms between publishing rounds', num('tick-ms', 5, 10000))
    .option('--no-progress', 'no progress line')
    .option('--json', 'print the summary as one JSON line')
    .action(async (plant: string | undefined, opts: RunOpts) => runPlant(plant, opts));
  program
    .command('replay')
    .description('replay CSV files (NAB timestamp,value; historian exports) over MQTT')
    .argument('<files...>', 'CSV files')
    .option('--url <url>', 'MQTT broker URL', 'mqtt://127.0.0.1:1883')
    .option('--username <u>', 'MQTT username')
    .option('--password <p>', 'MQTT password (or MQTT_PASSWORD)')
    .option('--speed <x>', '1 = original pace, N = N× faster, 0 = as fast as possible', num('speed', 0, 1e9), 1)
    .option('--site <id>', 'site of the topic', 'replay')
    .option('--line <id>', 'line of the topic', 'line-1')
    .option('--machine <id>', 'machine of the topic', 'machine-1')
    .option('--sensor <id>', 'sensor name for a single value column (default: file name)')
    .option('--timestamp-column <c>', 'time column name (index without --no-header)', 'timestamp')
    .option('--value-columns <list>', 'value columns, comma-separated (default: value; with --sensor-column: all others)')
    .option('--sensor-column <c>', 'long format: column with the sensor/tag name')
    .option('--delimiter <d>', 'field delimiter', ',')
    .addOption(new Option('--timestamp-format <f>', 'time format').choices(['auto', 'iso', 'epoch_ms', 'epoch_s']).default('auto'))
    .option('--no-header', 'the file has no header line')
    .option('--rebase', 'shift timestamps so the first row is now (spacing divided by speed)', false)
    .addOption(new Option('--qos <n>', 'MQTT QoS').choices(['0', '1', '2']).argParser(Number).default(0))
    .option('--topic-prefix <p>', 'MQTT topic prefix', 'plant')
    .addOption(new Option('--format <f>', 'one reading per message or arrays of rows due together').choices(['json', 'batch']).default('json'))
    .option('--no-progress', 'no progress line')
    .option('--json', 'print summaries as JSON lines')
    .action(async (files: string[], opts: ReplayOpts) => runReplay(files, opts));
  return program;
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
if (isMain) {
  buildProgram()
    .parseAsync(process.argv)
    .then(() => process.exit(0))
    .catch((err: unknown) => {
      process.stderr.write(`simulate: ${oneLine(err)}\n`);
      process.exit(err instanceof ConfigError ? 2 : 1);
    });
}

export type { SimulatorConfigInput };
