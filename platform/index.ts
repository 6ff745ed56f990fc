/**
 * Starts Plantwatch components in dependency order and stops them in reverse:
 * Kafka-protocol broker (embedded unless KAFKA_BROKERS) → topics → edge (embedded MQTT broker unless
 * MQTT_URL) → anomaly → storage → alerts → gateway → demo simulator.
 * `npm start` runs all of them in one process; `npm run <component>` runs one (multi-host deployment).
 */
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError } from '../common/errors.ts';
import { loadConfig } from '../common/config/load.ts';
import { createLogger, type Logger } from '../common/logger.ts';
import { createRegistry, type Registry } from '../common/metrics.ts';
import { createKafkaClients, ensureTopics, type KafkaClients } from '../common/kafka.ts';
import type { ComponentContext, ComponentHandle } from '../common/component.ts';
import { PlatformConfig, COMPONENTS, type ComponentName, type PlatformConfigInput } from './config.schema.ts';
import { preflight } from './preflight.ts';
import * as broker from '../services/kafka-broker/index.ts';
import * as edge from '../edge/index.ts';
import * as anomaly from '../services/anomaly/index.ts';
import * as storage from '../services/storage/index.ts';
import * as alerts from '../services/alerts/index.ts';
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
}

/** The running components' handles, by name (absent when not started in this process). */
export interface ComponentHandles {
  broker?: broker.BrokerHandle;
  edge?: edge.EdgeHandle;
  anomaly?: anomaly.AnomalyHandle;
  storage?: storage.StorageHandle;
  alerts?: alerts.AlertsHandle;
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
  const add = <N extends ComponentName>(name: N, h: NonNullable<ComponentHandles[N]>): NonNullable<ComponentHandles[N]> => {
    started.push(h);
    components[name] = h;
    return h;
  };
  const close = async () => {
    for (const h of [...started].reverse()) {
      try {
        await h.close();
      } catch (err) {
        logger.error({ err, component: h.name }, 'component did not close cleanly');
      }
    }
  };

  try {
    let brokers = config.kafka.brokers;
    if (wanted.has('broker')) {
      const ctx = ctxFor('broker');
      const b = add('broker', await broker.start(config.broker, ctx));
      brokers = b.brokers;
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
      const h = add('edge', await edge.start(edgeConfig, ctxFor('edge')));
      mqttUrl = config.mqtt.url || h.mqttUrl;
    }
    if (wanted.has('anomaly')) add('anomaly', await anomaly.start(config.anomaly, ctxFor('anomaly')));
    let store: storage.StorageHandle['store'] | undefined;
    if (wanted.has('storage')) store = add('storage', await storage.start(config.storage, ctxFor('storage'), config.influx)).store;
    let alertsApi: alerts.AlertsHandle | undefined;
    if (wanted.has('alerts')) alertsApi = add('alerts', await alerts.start(config.alerts, ctxFor('alerts')));
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
    return { config, logger, kafkaBrokers: brokers, dashboardUrl, mqttUrl, components, registries, close: onceOnly(close) };
  } catch (err) {
    await close();
    throw err;
  }
}

function onceOnly(fn: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | undefined;
  return () => (p ??= fn());
}
