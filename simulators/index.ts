/**
 * The simulator component: runs a plant (by default the demo plant) in real time and publishes it to
 * the platform's MQTT broker, with a random fault now and then and faults on demand. `npm start`
 * starts it last, after the edge bridge, so the dashboard has live machines to show.
 */
import { isAbsolute, join } from 'node:path';
import type { ComponentContext, ComponentHandle } from '../common/component.ts';
import { onceClose } from '../common/component.ts';
import { ConfigError, PlatformError } from '../common/errors.ts';
import { createKafkaClients } from '../common/kafka.ts';
import { prom } from '../common/metrics.ts';
import { SimulatorConfig, type FaultSpecInput } from './config.schema.ts';
import type { FaultLabel } from './faults.ts';
import { LabelRecorder } from './labels.ts';
import { PlantModel } from './model.ts';
import { KafkaOutput, MqttOutput, NullOutput, StreamOutput, type Output, type OutputStats } from './outputs.ts';
import { SimulationRunner } from './runner.ts';

export { SimulatorConfig, DEMO_PLANT, FAULT_KINDS, MACHINE_TYPES } from './config.schema.ts';
export type { SimulatorConfigInput, FaultSpec, FaultSpecInput, FaultKind, MachineType } from './config.schema.ts';
export { PlantModel, MachineModel, sampleTime } from './model.ts';
export type { Emission, MachineBatch, SensorModel } from './model.ts';
export type { FaultLabel, Fault } from './faults.ts';
export { parseFaultArg } from './faults.ts';
export { LabelRecorder, parseLabels } from './labels.ts';
export { MACHINE_TYPE_DEFS } from './machines.ts';
export { loadPlant } from './plants.ts';
export { SimulationRunner, formatProgress } from './runner.ts';
export { replayCsv } from './replay.ts';

export interface SimulatorDeps {
  /** The broker to publish to (the embedded aedes broker's URL under `npm start`). Overrides output.mqtt.url. */
  mqttUrl: string;
}

export interface SimulatorHandle extends ComponentHandle {
  /** Injects a fault now (`at` = seconds from now, default 0); returns its ground-truth label. */
  injectFault(spec: FaultSpecInput): FaultLabel;
  /** Every fault label so far (scheduled and random faults once started, injected ones at once). */
  readonly labels: readonly FaultLabel[];
  readonly model: PlantModel;
  readonly stats: OutputStats;
  /**
   * Resolves when the run has ended (clock.durationS reached, or close()) and everything generated
   * has been handed to the output and flushed: then `stats.readings` is the final count. E2E tests
   * use a fixed `clock.start`, `speed: 0` and `durationS` for a known, finite set of readings.
   */
  readonly done: Promise<void>;
}

export async function start(config: SimulatorConfig, ctx: ComponentContext, deps: SimulatorDeps): Promise<SimulatorHandle> {
  const cfg = SimulatorConfig.parse(config);
  const log = ctx.logger.child({ component: 'simulator' });
  const startMs = cfg.clock.start === 'now' ? Date.now() : Date.parse(cfg.clock.start);
  const model = new PlantModel(cfg, { startMs });
  const labelFile = cfg.labels.file === '' ? '' : isAbsolute(cfg.labels.file) ? cfg.labels.file : join(ctx.dataDir, cfg.labels.file);
  const labels = new LabelRecorder(labelFile, cfg.labels.format);

  const faultsInjected = new prom.Counter({
    name: 'plantwatch_simulator_faults_injected_total',
    help: 'Faults started (scheduled, random or on demand), by kind',
    labelNames: ['kind', 'source'],
    registers: [ctx.metrics],
  });

  let output: Output;
  switch (cfg.output.kind) {
    case 'mqtt':
      output = new MqttOutput({ ...cfg.output.mqtt, url: deps.mqttUrl || cfg.output.mqtt.url }, model.machines, log, (m, sensor) =>
        valueNow(model, m.key, sensor),
      );
      break;
    case 'kafka': {
      if (cfg.output.kafka.brokers.length === 0 && !ctx.kafka) {
        throw new ConfigError('invalid config: simulator.output.kafka.brokers: output kind kafka needs brokers (none configured and no platform Kafka clients)');
      }
      const kafka = cfg.output.kafka.brokers.length > 0 ? createKafkaClients({ brokers: cfg.output.kafka.brokers, clientId: 'plantwatch-simulator', connectionTimeoutMs: 3000, requestTimeoutMs: 30000 }, log) : ctx.kafka;
      output = new KafkaOutput(kafka, cfg.output.kafka, log);
      break;
    }
    case 'stdout':
      output = new StreamOutput(cfg.output.mqtt);
      break;
    default:
      output = new NullOutput();
  }

  const runner = new SimulationRunner({
    model,
    output,
    labels,
    speed: cfg.clock.speed,
    tickMs: cfg.clock.tickMs,
    startMs,
    endMs: cfg.clock.durationS === undefined ? undefined : startMs + cfg.clock.durationS * 1000,
    onLabel: (l) => {
      faultsInjected.inc({ kind: l.kind, source: l.source });
      log.info({ fault: l }, `fault ${l.kind} on ${l.machineKey}/${l.sensor} until ${l.endIso}`);
    },
  });

  const stat = (name: string, help: string, pick: () => number) => {
    let last = 0;
    new prom.Counter({
      name,
      help,
      registers: [ctx.metrics],
      collect() {
        const v = pick();
        if (v > last) this.inc(v - last);
        last = v;
      },
    });
  };
  stat('plantwatch_simulator_readings_sent_total', 'Readings handed to the output', () => output.stats.readings);
  stat('plantwatch_simulator_messages_sent_total', 'Messages (MQTT publishes / Kafka records) sent', () => output.stats.messages);
  stat('plantwatch_simulator_publish_errors_total', 'Publishes that failed (connection lost, broker refused)', () => output.stats.errors);
  new prom.Gauge({
    name: 'plantwatch_simulator_lag_seconds',
    help: 'How far simulated time is behind where the configured speed puts it',
    registers: [ctx.metrics],
    collect() {
      this.set(Math.max(0, (startMs + (Date.now() - wallStart) * cfg.clock.speed - runner.cursor) / 1000));
    },
  });

  const wallStart = Date.now();
  let done: Promise<void> = Promise.resolve();
  if (cfg.enabled) {
    await output.connect();
    done = runner
      .run()
      .then(async () => {
        // A finite run flushes as soon as it ends; close() later only disconnects.
        await output.flush();
      })
      .catch((err: unknown) => log.error({ err }, 'simulator stopped on an error'));
    log.info({ machines: model.machines.length, output: cfg.output.kind, format: cfg.output.mqtt.format, url: deps.mqttUrl || cfg.output.mqtt.url }, 'simulator started');
  }

  const close = onceClose(async () => {
    await runner.stop();
    await output.close();
  });

  return {
    name: 'simulator',
    close,
    injectFault(spec) {
      if (!cfg.enabled) throw new PlatformError('SIM_DISABLED', 'the simulator is disabled (simulator.enabled: false)', { retriable: false });
      return runner.injectFault(spec);
    },
    get labels() {
      return labels.labels;
    },
    model,
    get stats() {
      return output.stats;
    },
    done,
  };
}


/** Value of a sensor at the current wall time (clean model output with noise): for Sparkplug births. */
function valueNow(model: PlantModel, machineKey: string, sensor: string): number {
  const m = model.machine(machineKey);
  const s = m.sensors.find((x) => x.id === sensor)!;
  const t = Date.now();
  const batch = m.generate(t - Math.ceil(1000 / s.rateHz) - 1, t + 1, []);
  const last = batch.filter((e) => e.sensor.id === sensor).pop();
  return last?.value ?? 0;
}
