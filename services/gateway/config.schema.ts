/**
 * Gateway configuration: the HTTP port that serves the dashboard UI, the REST API, Socket.IO live
 * updates and the merged Prometheus metrics. Strict: unknown keys are errors. `GatewayConfig.parse({})`
 * gives a working config for `npm start` (a demo operator token is generated and logged at start).
 */
import { z } from 'zod';

export const Role = z.enum(['viewer', 'operator']);
export type Role = z.infer<typeof Role>;

const TokenEntry = z.strictObject({
  /** Opaque secret sent as `Authorization: Bearer <token>` or in the Socket.IO handshake `auth.token`. */
  token: z.string().min(8, 'tokens must be at least 8 characters'),
  role: Role,
  /** Who this token belongs to: recorded as `acknowledgedBy` on alerts. */
  name: z.string().min(1).default('token'),
});

const UserEntry = z.strictObject({
  username: z.string().min(1),
  password: z.string().min(8, 'passwords must be at least 8 characters'),
  role: Role,
});

export const AuthConfig = z.strictObject({
  /**
   * Empty (and no users): a random operator token is generated (kept in `<dataDir>/gateway/demo-token`),
   * logged and returned by `start()` as `demoToken`.
   */
  tokens: z.array(TokenEntry).default([]),
  /** Optional user/password logins for the login page (same roles as tokens). */
  users: z.array(UserEntry).default([]),
  /**
   * HMAC key for session cookies. Empty: generated once and kept in `<dataDir>/gateway/session-secret`.
   * Set the same value on every gateway instance behind one load balancer.
   */
  sessionSecret: z.string().default(''),
  sessionTtlMs: z.number().int().positive().default(12 * 3600_000),
  /** `Secure` attribute on the session cookie; turn on behind HTTPS. */
  secureCookie: z.boolean().default(false),
});

export const LiveConfig = z.strictObject({
  /** Per series, per client: at most this many live updates per second (the newest by event time wins). */
  maxUpdatesPerSecond: z.number().positive().max(50).default(4),
  /** How often due updates are flushed to sockets; bounds the extra latency coalescing adds. */
  flushIntervalMs: z.number().int().min(5).max(1000).default(40),
  /** Recent raw points kept per series in memory to bridge the storage writer's lag on backfill. */
  recentWindowMs: z.number().int().min(1000).default(120_000),
  recentMaxPointsPerSeries: z.number().int().min(8).max(100_000).default(512),
  /** Series the recent buffer tracks at most (bounds memory; oldest-touched series are evicted). */
  maxSeries: z.number().int().positive().default(100_000),
  /** Default and maximum history window a subscription may ask for. */
  backfillWindowMs: z.number().int().positive().default(15 * 60_000),
  maxBackfillWindowMs: z.number().int().positive().default(7 * 24 * 3600_000),
  /** Most points per series in a backfill. */
  maxBackfillPoints: z.number().int().positive().max(20_000).default(2000),
  /** A series (or the whole live feed) without data for this long is reported stale. */
  staleAfterMs: z.number().int().positive().default(15_000),
  /** How often `status` (connection/staleness) is emitted to every socket. */
  statusIntervalMs: z.number().int().positive().default(2000),
  /** Most live items held for one subscription while its backfill is being read. */
  maxHeldPerSubscription: z.number().int().positive().default(20_000),
  /**
   * A client whose connection has more than this many messages waiting to be sent (a display on bad
   * Wi-Fi, a frozen tab) has its connection closed instead of the gateway buffering for it without
   * bound; it reconnects and resumes from its per-series cursors, so it gets the gap from history.
   */
  maxQueuedMessagesPerClient: z.number().int().min(8).default(256),
  /** Subscriptions one socket may hold at once. */
  maxSubscriptionsPerSocket: z.number().int().positive().default(16),
});

export const UiConfig = z.strictObject({
  /** Build `dashboards/dist` at start when it is missing or older than the sources. */
  autoBuild: z.boolean().default(true),
  /** Folder with the built UI; empty: `dashboards/dist` of this checkout. */
  dir: z.string().default(''),
});

export const GatewayConfig = z.strictObject({
  host: z.string().default('0.0.0.0'),
  port: z.number().int().min(0).max(65535).default(8080),
  /** Names this instance: its Kafka consumer group is `plantwatch-gateway-<instanceId>`. Empty: `<hostname>-<pid>`. */
  instanceId: z
    .string()
    .regex(/^[A-Za-z0-9_.-]*$/, 'letters, digits and _ . - only')
    .default(''),
  /**
   * For a gateway deployed apart from the alert service: its REST base URL (the platform builds the
   * HTTP AlertsApi client from it). Empty: the in-process alert service.
   */
  alertsApiUrl: z.union([z.literal(''), z.url({ protocol: /^https?$/ })]).default(''),
  auth: AuthConfig.default(AuthConfig.parse({})),
  live: LiveConfig.default(LiveConfig.parse({})),
  ui: UiConfig.default(UiConfig.parse({})),
  /** Most points per series the REST API returns (`maxPoints` is clamped to it). */
  maxSeriesPoints: z.number().int().positive().default(10_000),
});
export type GatewayConfig = z.infer<typeof GatewayConfig>;
export type GatewayConfigInput = z.input<typeof GatewayConfig>;
