/**
 * Edge bridge configuration. `EdgeConfig.parse({})` gives a working default: an embedded MQTT broker
 * on 0.0.0.0:1883 accepting anonymous devices under `plant/#` and `spBv1.0/#`, relaying to
 * `plantwatch.readings`.
 *
 * Client mode (subscribe to Mosquitto/EMQX/HiveMQ): set `client.url` (the platform maps `MQTT_URL`,
 * i.e. the top-level `mqtt.url`, onto `edge.client.url`). When `mode` is not given, a non-empty
 * `client.url` selects client mode.
 */
import { z } from 'zod';
import { TOPICS } from '../common/topics.ts';

/** PEM file paths, as in common/config/fragments.ts, repeated here so edge stays self-contained. */
const Tls = z.strictObject({
  ca: z.string().optional(),
  cert: z.string().optional(),
  key: z.string().optional(),
  /** Only for lab setups with self-signed certificates. */
  rejectUnauthorized: z.boolean().default(true),
});

/**
 * Topic ACL entry: MQTT filters (`+`, `#`) in which `{username}` and `{clientId}` are replaced by the
 * connecting device's values, so one rule can say "each device publishes only under its own prefix".
 */
const Filters = z.array(z.string().min(1)).default([]);

const User = z.strictObject({
  username: z.string().min(1),
  /** Plain password, or `passwordSha256` (hex) so configs need not hold the secret. One is required. */
  password: z.string().optional(),
  passwordSha256: z.string().regex(/^[0-9a-f]{64}$/i).optional(),
  /** If set, the device must connect with a client id matching this regex. */
  clientIdPattern: z.string().optional(),
  publish: Filters,
  subscribe: Filters,
});
export type EdgeUser = z.infer<typeof User>;

const Embedded = z.strictObject({
  host: z.string().default('0.0.0.0'),
  /** 0 picks a free port (tests); the bound port is on the handle. */
  port: z.number().int().min(0).max(65535).default(1883),
  /** TLS listener: when cert and key are set, the MQTT port speaks MQTT over TLS. */
  tls: Tls.optional(),
  /** MQTT over WebSocket (path `/mqtt`), optional. */
  ws: z.strictObject({ enabled: z.boolean().default(false), host: z.string().default('0.0.0.0'), port: z.number().int().min(0).max(65535).default(9001) }).prefault({}),
  auth: z
    .strictObject({
      /**
       * Devices without credentials. Enabled by default for the demo plant; production configs list
       * `users` and set `anonymous.enabled: false`.
       */
      anonymous: z
        .strictObject({
          enabled: z.boolean().default(true),
          publish: z.array(z.string()).default(['plant/#', 'spBv1.0/#']),
          subscribe: z.array(z.string()).default(['plant/#', 'spBv1.0/#']),
        })
        .prefault({}),
      users: z.array(User).default([]),
    })
    .prefault({}),
  /**
   * Per-connection packets parsed while the client is not yet connected (aedes `queueLimit`);
   * beyond it the connection is closed. Bounded so a slow authenticate cannot buffer unbounded data.
   */
  queueLimit: z.number().int().min(1).max(10_000).default(100),
  /**
   * Socket read buffer per connection (bytes). aedes handles one read chunk per device at a time and
   * we hold its acknowledgements until Kafka acked, so a larger chunk means larger Kafka batches
   * for chatty devices; it is a ceiling, not an allocation.
   */
  readBufferBytes: z.number().int().min(16 * 1024).max(16 * 1024 * 1024).default(256 * 1024),
  /** Unacknowledged inbound QoS 2 messages per client (aedes `maxInflightInbound`). */
  maxInflightInbound: z.number().int().min(1).max(65_535).default(1000),
  /** Seconds a CONNECT may take before the socket is dropped. */
  connectTimeoutMs: z.number().int().positive().default(30_000),
});

const Client = z.strictObject({
  /** mqtt://host:port, mqtts://…, ws://…; empty = not used. */
  url: z.string().default(''),
  /** Fixed so the external broker keeps our persistent session across restarts [MQTT-3.1.2-4]. */
  clientId: z.string().min(1).max(23).default('plantwatch-edge'),
  username: z.string().optional(),
  password: z.string().optional(),
  tls: Tls.optional(),
  /** MQTT filters subscribed with QoS 1. */
  subscriptions: z.array(z.string().min(1)).default(['plant/#', 'spBv1.0/#']),
  protocolVersion: z.union([z.literal(4), z.literal(5)]).default(4),
  keepaliveSec: z.number().int().min(0).max(65_535).default(30),
  reconnectPeriodMs: z.number().int().min(100).default(1000),
});

const Rule = z.strictObject({
  /** MQTT topic pattern with named wildcards `{name}` (one level) and an optional trailing `#`. */
  pattern: z.string().min(1),
  decoder: z.enum(['auto', 'json', 'number', 'sparkplug']).default('auto'),
  kafkaTopic: z.string().min(1).default(TOPICS.readings),
  /** Record key template; default `{site}/{line}/{machine}` (common/topics.ts machineKey). */
  key: z.string().default('{site}/{line}/{machine}'),
  /** Fixed values for reading fields the pattern does not capture, e.g. `{ site: 'plant1' }`. */
  defaults: z.record(z.string(), z.string()).default({}),
});
export type MappingRule = z.infer<typeof Rule>;

const DEFAULT_RULES = [
  { pattern: 'plant/{site}/{line}/{machine}/{sensor}' },
  // Sparkplug B: group → site, edge node → line, device → machine, metric name → sensor.
  { pattern: 'spBv1.0/{group}/{messageType}/{edgeNode}/#', decoder: 'sparkplug' as const },
];

const EdgeConfigObject = z
    .strictObject({
      mode: z.enum(['embedded', 'client']).default('embedded'),
      embedded: Embedded.prefault({}),
      client: Client.prefault({}),
      /** First matching rule wins; topics matching no rule are counted and ignored. */
      mapping: z.array(Rule).default(DEFAULT_RULES.map((r) => Rule.parse(r))),
      /** MQTT metadata copied into Kafka record headers. */
      headers: z.boolean().default(true),
      validation: z
        .strictObject({
          /** Largest accepted MQTT payload; larger ones are dead-lettered (the raw bytes kept up to this size). */
          maxPayloadBytes: z.number().int().positive().max(16 * 1024 * 1024).default(256 * 1024),
          /** Largest JSON array (batched readings) in one payload. */
          maxBatchReadings: z.number().int().positive().default(10_000),
          /** Event time more than this far behind arrival is absurd (device clock reset to 1970, etc.). */
          maxPastMs: z.number().int().nonnegative().default(365 * 24 * 3600_000),
          /** …or this far ahead of arrival. */
          maxFutureMs: z.number().int().nonnegative().default(5 * 60_000),
        })
        .prefault({}),
      sparkplug: z
        .strictObject({
          /** Rebirth requests (NCMD) to one node at most this often. */
          rebirthMinIntervalMs: z.number().int().nonnegative().default(5000),
          /** Machine name used for node-level (NBIRTH/NDATA) metrics. */
          nodeMachine: z.string().default('node'),
        })
        .prefault({}),
      kafka: z
        .strictObject({
          /** Wait this long for more records before sending a batch. */
          lingerMs: z.number().int().nonnegative().max(1000).default(5),
          maxBatchRecords: z.number().int().positive().max(100_000).default(5000),
          maxBatchBytes: z.number().int().positive().default(4 * 1024 * 1024),
          /** A batched payload whose readings JSON exceeds this becomes several records (Kafka's message.max.bytes is 1 MB by default). */
          maxRecordBytes: z.number().int().min(1024).default(512 * 1024),
          compression: z.enum(['none', 'gzip']).default('gzip'),
          /** A send slower than this counts as "Kafka unavailable": the batch goes to the spool. */
          sendTimeoutMs: z.number().int().positive().default(5000),
          /** Records waiting in memory for Kafka; beyond it intake waits (QoS 0 included). */
          maxPendingRecords: z.number().int().positive().default(10_000),
          /** Spool replay retry backoff while Kafka is down. */
          retryInitialMs: z.number().int().positive().default(200),
          retryMaxMs: z.number().int().positive().default(5000),
        })
        .prefault({}),
      spool: z
        .strictObject({
          /** Under ctx.dataDir unless absolute. */
          dir: z.string().default('edge-spool'),
          maxBytes: z.number().int().positive().default(1024 * 1024 * 1024),
          segmentBytes: z.number().int().positive().default(64 * 1024 * 1024),
          /** `backpressure`: stop acknowledging when full (devices retry); `drop`: ack, drop and count. */
          whenFull: z.enum(['backpressure', 'drop']).default('backpressure'),
          /** fsync each spool write group before acknowledging (power-loss safety). */
          fsync: z.boolean().default(true),
        })
        .prefault({}),
      /** Ops HTTP server (/metrics, /healthz); 0 picks a free port; null disables it (the platform serves metrics). */
      httpPort: z.number().int().min(0).max(65535).nullable().default(9101),
      httpHost: z.string().default('0.0.0.0'),
    })
    .superRefine((cfg, ctx) => {
      if (cfg.mode === 'client' && !cfg.client.url) {
        ctx.addIssue({ code: 'custom', path: ['client', 'url'], message: 'client mode needs client.url (e.g. mqtt://127.0.0.1:1883)' });
      }
      if (cfg.mode === 'client' && cfg.client.url && !/^(mqtts?|wss?|tcp|ssl):\/\//.test(cfg.client.url)) {
        ctx.addIssue({ code: 'custom', path: ['client', 'url'], message: 'expected mqtt://, mqtts://, ws://, wss://, tcp:// or ssl://' });
      }
      cfg.embedded.auth.users.forEach((u, i) => {
        if (u.password === undefined && u.passwordSha256 === undefined) {
          ctx.addIssue({ code: 'custom', path: ['embedded', 'auth', 'users', i], message: 'user needs password or passwordSha256' });
        }
      });
    });

export const EdgeConfig = z.preprocess(
  (raw) => {
    // A non-empty client.url without an explicit mode means "client of that broker".
    if (raw && typeof raw === 'object' && !Array.isArray(raw) && !('mode' in raw)) {
      const client = (raw as { client?: { url?: unknown } }).client;
      if (client && typeof client.url === 'string' && client.url !== '') return { ...raw, mode: 'client' };
    }
    return raw;
  },
  EdgeConfigObject,
);
export type EdgeConfig = z.infer<typeof EdgeConfigObject>;
/** What a config file may contain: every key optional. */
export type EdgeConfigInput = z.input<typeof EdgeConfigObject>;
