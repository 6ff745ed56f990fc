/**
 * Configuration of the embedded Kafka-wire-protocol broker. Every key has a default, so
 * `BrokerConfig.parse({})` gives a broker on 127.0.0.1:9092 storing under `<ctx.dataDir>/kafka`.
 */
import { z } from 'zod';

export const FsyncPolicy = z.enum(['always', 'interval', 'never']);

export const BrokerConfig = z.strictObject({
  /** Address to bind. Prefer 127.0.0.1: `localhost` may resolve to ::1 for some clients. */
  host: z.string().default('127.0.0.1'),
  /** 0 picks a free port (tests). */
  port: z.number().int().min(0).max(65535).default(9092),
  /** Host name clients are told to connect to (Metadata, FindCoordinator); defaults to `host`. */
  advertisedHost: z.string().optional(),
  /** Port clients are told to connect to (a proxy or NAT in front); defaults to the bound port. */
  advertisedPort: z.number().int().min(1).max(65535).optional(),
  /** Log directory. Relative paths resolve against the component data dir (`ctx.dataDir`). */
  dataDir: z.string().default('kafka'),
  /** Create a topic when a Metadata request names an unknown one and the client allows it. */
  autoCreateTopics: z.boolean().default(true),
  /** Partitions for auto-created topics and for CreateTopics with num_partitions = -1. */
  defaultPartitions: z.number().int().min(1).max(10_000).default(1),
  /**
   * When appended data is flushed to disk. `always`: fdatasync before a produce is acknowledged
   * (survives power loss, slow). `interval`: every `fsyncIntervalMs` (a process crash loses nothing,
   * since the page cache survives it; power loss may lose the last interval). `never`: the OS decides.
   */
  fsync: FsyncPolicy.default('interval'),
  fsyncIntervalMs: z.number().int().min(1).default(1000),
  /** Delete closed segments whose newest record is older than this; -1 keeps forever (Kafka default 7 days). */
  retentionMs: z.number().int().min(-1).default(7 * 24 * 3600 * 1000),
  /** Delete the oldest closed segments while a partition is larger than this; -1 = no size limit. */
  retentionBytes: z.number().int().min(-1).default(-1),
  /** How often retention runs. */
  retentionCheckIntervalMs: z.number().int().min(10).default(60_000),
  /** Roll to a new segment file past this size. */
  segmentBytes: z.number().int().min(1024).max(2 ** 31 - 1).default(128 * 1024 * 1024),
  /** Largest request frame accepted; a bigger size prefix closes the connection. */
  maxFrameBytes: z.number().int().min(1024).max(2 ** 31 - 1).default(100 * 1024 * 1024),
  /** Consumer group session timeout bounds (Kafka: group.min/max.session.timeout.ms). */
  groupMinSessionTimeoutMs: z.number().int().min(1).default(1000),
  groupMaxSessionTimeoutMs: z.number().int().min(1).default(30 * 60 * 1000),
  /** Wait this long for more members before the first rebalance of an empty group (Kafka: 3000). */
  groupInitialRebalanceDelayMs: z.number().int().min(0).default(0),
  /** Ops HTTP server (/metrics, /healthz); null disables it, 0 picks a free port. */
  httpPort: z.number().int().min(0).max(65535).nullable().default(9105),
  /** Bind address of the ops HTTP server. */
  httpHost: z.string().default('127.0.0.1'),
  /** Idle connections are closed after this long without a request (Kafka: connections.max.idle.ms). */
  connectionIdleMs: z.number().int().min(1000).default(10 * 60 * 1000),
});
export type BrokerConfig = z.infer<typeof BrokerConfig>;
