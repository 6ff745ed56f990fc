/**
 * Starts Plantwatch components in dependency order and stops them in reverse:
 * Kafka-protocol broker (embedded unless KAFKA_BROKERS) → topics → edge (embedded MQTT broker unless
 * MQTT_URL) → anomaly → storage → alerts → gateway → demo simulator.
 * `npm start` runs all of them in one process; `npm run <component>` runs one (multi-host deployment).
 * Within that process, `isolation` puts the broker, edge or anomaly service in its own worker thread
 * (platform/worker.ts); the anomaly service's tfjs scoring runs there by default.
 */
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError } from '../common/errors.ts';
import { loadConfig } from '../common/config/load.ts';
import { createLogger, type Logger } from '../common/logger.ts';
import { createRegistry, type Registry } from '../common/metrics.ts';
import { createKafkaClients, ensureTopics, type KafkaClients } from '../common/kafka.ts';
import type { ComponentContext, ComponentHandle } from '../common/component.ts';
import { PlatformConfig, COMPONENTS, type ComponentName, type IsolationConfig, type PlatformConfigInput } from './config.schema.ts';
import { preflight } from './preflight.ts';
import { checkPortClashes, explainListenError, listenerPorts } from './ports.ts';
import { startInWorker, type WorkerComponentHandle } from './worker.ts';
import type { LevelWithSilent } from 'pino';
import * as broker from '../services/kafka-broker/index.ts';
import * as edge from '../edge/index.ts';
import * as anomaly from '../services/anomaly/index.ts';
import * as storage from '../services/storage/index.ts';
import * as alerts from '../services/alerts/index.ts';
import type { AlertsApi } from '../services/alerts/api.ts';
import * as gateway from '../services/gateway/index.ts';
import * as simulator from '../simulators/index.ts';

export interface StartOptions {
  /** YAML/JSON config file. */
  configFile?: string;
  /** Environment to read overrides from; default process.env. */
  env?: Record<string, string | undefined>;
  /** Applied last (tests). */
  overrides?: PlatformConfigInput;
  /** Which components; default all (the embedded broker only when no external Kafka is configured). */
  components?: ComponentName[];
  logger?: Logger;
  /** Skip the reachability check of external servers (tests that start them later). */
  skipPreflight?: boolean;
  /**
   * A component's worker thread died while the platform was running. Default: log at error level,
   * close the rest of the platform (at most 10 s) and exit the process with code 1, so a supervisor
   * restarts it instead of it running half.
   */
  onWorkerFailure?: (err: Error, platform: { close(): Promise<void>; logger: Logger }) => void;
}

/** Entry modules of the components that may run in a worker (`isolation`). */
const WORKER_MODULES: Record<keyof IsolationConfig, string> = {
  broker: new URL('../services/kafka-broker/index.ts', import.meta.url).href,
  edge: new URL('../edge/index.ts', import.meta.url).href,
  anomaly: new URL('../services/anomaly/index.ts', import.meta.url).href,
  alerts: new URL('../services/alerts/index.ts', import.meta.url).href,
};

/**
 * The running components' handles, by name (absent when not started in this process). A component
 * placed in a worker (`isolation`) has a WorkerComponentHandle: opsUrl, close() and `info` only.
 */
export interface ComponentHandles {
  broker?: broker.BrokerHandle | WorkerComponentHandle;
  edge?: edge.EdgeHandle | WorkerComponentHandle;
  anomaly?: anomaly.AnomalyHandle | WorkerComponentHandle;
  storage?: storage.StorageHandle;
  /** In a worker, AlertsApi calls go to the service's REST API (as for a gateway deployed apart). */
  alerts?: alerts.AlertsHandle | (WorkerComponentHandle & AlertsApi);
  gateway?: gateway.GatewayHandle;
  simulator?: simulator.SimulatorHandle;
}

export interface PlatformHandle {
  config: PlatformConfig;
  logger: Logger;
  kafkaBrokers: string[];
  /** Dashboard URL (with the login token for the demo) when the gateway runs. */
  dashboardUrl?: string;
  mqttUrl?: string;
  components: ComponentHandles;
  registries: Map<ComponentName | 'process', Registry>;
  close(): Promise<void>;
}

export async function startPlatform(opts: StartOptions = {}): Promise<PlatformHandle> {
  const config = loadConfig(PlatformConfig, { file: opts.configFile, env: opts.env ?? process.env, overrides: opts.overrides as Record<string, unknown> });
  const wanted = new Set<ComponentName>(opts.components ?? COMPONENTS);
  if (!config.simulator.enabled) wanted.delete('simulator');
  const external = config.kafka.brokers.length > 0;
  if (external) wanted.delete('broker');
  const needsKafka = [...wanted].some((c) => c !== 'simulator' && c !== 'broker');
  if (needsKafka && !external && !wanted.has('broker')) {
    throw new ConfigError('invalid config: kafka.brokers (KAFKA_BROKERS): required when the embedded broker is not started in this process');
  }
  const ports = listenerPorts(config as unknown as Record<string, unknown>, [...wanted]);
  checkPortClashes(ports);
  const logger = opts.logger ?? createLogger({ level: config.log.level });
  if (!opts.skipPreflight) await preflight({ kafkaBrokers: config.kafka.brokers, mqttUrl: wanted.has('edge') ? config.mqtt.url : '', influxUrl: wanted.has('storage') || wanted.has('gateway') ? config.influx.url : '' });

  const dataDir = resolve(config.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const registries = new Map<ComponentName | 'process', Registry>([['process', createRegistry('process', true)]]);
  const started: ComponentHandle[] = [];
  const components: PlatformHandle['components'] = {};
  let kafka: KafkaClients | undefined;
  const ctxFor = (name: ComponentName): ComponentContext => {
    const metrics = createRegistry(name);
    registries.set(name, metrics);
    // Components name themselves in their child loggers (`component` field).
    return { logger, metrics, kafka: kafka!, dataDir };
  };
  const add = <N extends ComponentName, H extends NonNullable<ComponentHandles[N]>>(name: N, h: H): H => {
    started.push(h);
    components[name] = h;
    return h;
  };
  let closing = false;
  const close = async () => {
    closing = true;
    for (const h of [...started].reverse()) {
      try {
        await h.close();
      } catch (err) {
        logger.error({ err, component: h.name }, 'component did not close cleanly');
      }
    }
  };

  const closeOnce = onceOnly(close);
  const onWorkerFailure =
    opts.onWorkerFailure ??
    ((err: Error) => {
      logger.error({ err, component: (err as Error & { component?: string }).component }, 'a component worker died: stopping the platform');
      const timer = setTimeout(() => process.exit(1), 10_000);
      timer.unref();
      void closeOnce().finally(() => process.exit(1));
    });
  /** Starts a movable component in its worker; its metrics registry proxies the worker's. */
  const inWorker = async (name: keyof IsolationConfig, section: unknown, brokers: string[]): Promise<WorkerComponentHandle> => {
    const h = await startInWorker({
      name,
      module: WORKER_MODULES[name],
      config: section,
      dataDir,
      logLevel: logger.level as LevelWithSilent,
      kafka: { ...config.kafka, brokers },
      onFailure: (err) => {
        if (!closing) onWorkerFailure(err, { close: closeOnce, logger });
      },
    });
    registries.set(name, h.metrics);
    return h;
  };
  const infoString = (h: WorkerComponentHandle, key: string): string | undefined => (typeof h.info[key] === 'string' ? (h.info[key] as string) : undefined);

  try {
    let brokers = config.kafka.brokers;
    if (wanted.has('broker')) {
      if (config.isolation.broker === 'worker') {
        const b = add('broker', await inWorker('broker', config.broker, []));
        brokers = Array.isArray(b.info.brokers) ? (b.info.brokers as string[]) : [];
        if (brokers.length === 0) throw new Error('broker worker did not report its listen address');
      } else {
        const ctx = ctxFor('broker');
        const b = add('broker', await broker.start(config.broker, ctx));
        brokers = b.brokers;
      }
    }
    if (brokers.length > 0) {
      kafka = createKafkaClients({ ...config.kafka, brokers }, logger.child({ component: 'kafka-client' }));
      if (needsKafka) await ensureTopics(kafka);
    }

    let mqttUrl: string | undefined;
    if (wanted.has('edge')) {
      // MQTT_URL (top-level `mqtt`) turns the edge into a client of that broker; edge.client.* may refine it.
      const c = config.edge.client;
      const edgeConfig = config.mqtt.url
        ? { ...config.edge, mode: 'client' as const, client: { ...c, url: config.mqtt.url, username: config.mqtt.username ?? c.username, password: config.mqtt.password ?? c.password, tls: config.mqtt.tls ?? c.tls } }
        : config.edge;
      if (config.isolation.edge === 'worker') {
        const h = add('edge', await inWorker('edge', edgeConfig, brokers));
        mqttUrl = config.mqtt.url || infoString(h, 'mqttUrl');
      } else {
        const h = add('edge', await edge.start(edgeConfig, ctxFor('edge')));
        mqttUrl = config.mqtt.url || h.mqttUrl;
      }
    }
    if (wanted.has('anomaly')) {
      if (config.isolation.anomaly === 'worker') add('anomaly', await inWorker('anomaly', config.anomaly, brokers));
      else add('anomaly', await anomaly.start(config.anomaly, ctxFor('anomaly')));
    }
    let store: storage.StorageHandle['store'] | undefined;
    if (wanted.has('storage')) store = add('storage', await storage.start(config.storage, ctxFor('storage'), config.influx)).store;
    let alertsApi: AlertsApi | undefined;
    if (wanted.has('alerts')) {
      if (config.isolation.alerts === 'worker') {
        const h = await inWorker('alerts', config.alerts, brokers);
        const url = infoString(h, 'url');
        if (!url) {
          await h.close();
          throw new Error('alerts worker did not report its REST API URL');
        }
        const http = new alerts.HttpAlertsApi(url, config.alerts.apiToken);
        alertsApi = add('alerts', Object.assign(h, { list: http.list.bind(http), acknowledge: http.acknowledge.bind(http), silence: http.silence.bind(http) }));
      } else alertsApi = add('alerts', await alerts.start(config.alerts, ctxFor('alerts')));
    }
    let dashboardUrl: string | undefined;
    if (wanted.has('gateway')) {
      const ctx = ctxFor('gateway');
      if (!store) {
        if (!config.influx.url) throw new ConfigError('invalid config: influx.url (INFLUX_URL): a gateway running apart from the storage writer needs InfluxDB');
        const standalone = storage.createStore(config.influx, { ...storage.storeOptionsFromConfig(config.storage), logger: ctx.logger, dataDir });
        await standalone.init();
        started.push({ name: 'gateway-store', close: () => standalone.close() });
        store = standalone;
      }
      const api = alertsApi ?? (config.gateway.alertsApiUrl ? new alerts.HttpAlertsApi(config.gateway.alertsApiUrl) : undefined);
      if (!api) throw new ConfigError('invalid config: gateway.alertsApiUrl: a gateway running apart from the alert service needs its URL');
      const g = add('gateway', await gateway.start(config.gateway, ctx, { store, alerts: api, registries: () => [...registries.values()] }));
      dashboardUrl = g.loginUrl || g.url;
    }
    if (wanted.has('simulator')) {
      if (!mqttUrl) mqttUrl = config.mqtt.url || undefined;
      if (!mqttUrl) throw new ConfigError('invalid config: mqtt.url (MQTT_URL): the simulator needs an MQTT broker when the edge bridge is not in this process');
      add('simulator', await simulator.start(config.simulator, ctxFor('simulator'), { mqttUrl }));
    }
    return { config, logger, kafkaBrokers: brokers, dashboardUrl, mqttUrl, components, registries, close: closeOnce };
  } catch (err) {
    await closeOnce();
    throw explainListenError(err, ports);
  }
}

function onceOnly(fn: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | undefined;
  return () => (p ??= fn());
}
