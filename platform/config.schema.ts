/**
 * The platform's config: shared sections (data folder, logs, Kafka, MQTT, InfluxDB) and one section
 * per component, each defined in the component's own `config.schema.ts`. `PlatformConfig.parse({})`
 * runs everything embedded.
 */
import { z } from 'zod';
import { InfluxConfig, KafkaClientConfig, LogLevel, MqttClientConfig } from '../common/config/fragments.ts';
import { BrokerConfig } from '../services/kafka-broker/config.schema.ts';
import { EdgeConfig } from '../edge/config.schema.ts';
import { AnomalyConfig } from '../services/anomaly/config.schema.ts';
import { StorageConfig } from '../services/storage/config.schema.ts';
import { AlertsConfig } from '../services/alerts/config.schema.ts';
import { GatewayConfig } from '../services/gateway/config.schema.ts';
import { SimulatorConfig } from '../simulators/config.schema.ts';

export const COMPONENTS = ['broker', 'edge', 'anomaly', 'storage', 'alerts', 'gateway', 'simulator'] as const;
export type ComponentName = (typeof COMPONENTS)[number];

const Placement = z.enum(['inline', 'worker']);

/**
 * Where each movable component runs inside the platform's process: `inline` on the main event loop,
 * `worker` in its own worker_threads Worker (own event loop, own core). The anomaly service defaults
 * to a worker: its tfjs scoring stalled the shared loop (bench:dashboard). Storage, gateway
 * and simulator stay inline: the gateway reads the storage handle's embedded store in-process.
 */
export const IsolationConfig = z.strictObject({
  broker: Placement.default('inline'),
  edge: Placement.default('inline'),
  anomaly: Placement.default('worker'),
  /** In a worker the gateway reaches the alert service over its REST API (loopback HTTP). */
  alerts: Placement.default('inline'),
});
export type IsolationConfig = z.infer<typeof IsolationConfig>;

export const PlatformConfig = z.strictObject({
  /** Root of all durable state (broker log, edge spool, models, embedded store, alert journal). */
  dataDir: z.string().min(1).default('./data'),
  log: z.strictObject({ level: LogLevel.default('info') }).prefault({}),
  isolation: IsolationConfig.prefault({}),
  kafka: KafkaClientConfig.prefault({}),
  mqtt: MqttClientConfig.prefault({}),
  influx: InfluxConfig.prefault({}),
  broker: BrokerConfig.prefault({}),
  edge: EdgeConfig.prefault({}),
  anomaly: AnomalyConfig.prefault({}),
  storage: StorageConfig.prefault({}),
  alerts: AlertsConfig.prefault({}),
  gateway: GatewayConfig.prefault({}),
  simulator: SimulatorConfig.prefault({}),
});
export type PlatformConfig = z.infer<typeof PlatformConfig>;
export type PlatformConfigInput = z.input<typeof PlatformConfig>;
