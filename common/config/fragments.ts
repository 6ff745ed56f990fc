/**
 * Config fragments shared by several components. Each component's `config.schema.ts` composes them;
 * defaults live here, in one place.
 */
import { z } from 'zod';

export const LogLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

export const TlsConfig = z
  .strictObject({
    /** PEM file paths. */
    ca: z.string().optional(),
    cert: z.string().optional(),
    key: z.string().optional(),
    /** Only for lab setups with self-signed certificates. */
    rejectUnauthorized: z.boolean().default(true),
  })
  .optional();

/** host:port */
export const HostPort = z.string().regex(/^[^\s:]+:\d{1,5}$/, 'expected host:port, e.g. 127.0.0.1:9092');

export const KafkaClientConfig = z.strictObject({
  /** Empty: use the embedded Kafka-protocol broker started by the platform. */
  brokers: z.array(HostPort).default([]),
  clientId: z.string().default('plantwatch'),
  ssl: TlsConfig,
  sasl: z
    .strictObject({
      mechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']),
      username: z.string(),
      password: z.string(),
    })
    .optional(),
  connectionTimeoutMs: z.number().int().positive().default(3000),
  requestTimeoutMs: z.number().int().positive().default(30000),
});
export type KafkaClientConfig = z.infer<typeof KafkaClientConfig>;

export const MqttClientConfig = z.strictObject({
  /** Empty: use the embedded aedes broker. Otherwise mqtt://host:port or mqtts://… */
  url: z.union([z.literal(''), z.url({ protocol: /^(mqtts?|wss?|tcp|ssl)$/ })]).default(''),
  username: z.string().optional(),
  password: z.string().optional(),
  tls: TlsConfig,
});
export type MqttClientConfig = z.infer<typeof MqttClientConfig>;

export const InfluxConfig = z.strictObject({
  /**
   * Empty: the embedded store. Otherwise an InfluxDB 1.x URL with the database in the path,
   * e.g. http://user:pass@127.0.0.1:8086/plantwatch
   */
  url: z.union([z.literal(''), z.url({ protocol: /^https?$/ })]).default(''),
});
export type InfluxConfig = z.infer<typeof InfluxConfig>;

export const HttpServerConfig = z.strictObject({
  host: z.string().default('0.0.0.0'),
  port: z.number().int().min(0).max(65535).default(8080),
});
