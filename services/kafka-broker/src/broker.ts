/**
 * The broker: owns the log manager, group coordinator, offset store and TCP server, and routes
 * each request to its handler through the API table. Request/response codecs come from
 * `protocol/`, framing from `network/`, behaviour from `handlers/`.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Logger } from '../../../common/logger.ts';
import { PlatformError } from '../../../common/errors.ts';
import type { Registry } from '../../../common/metrics.ts';
import type { BrokerConfig } from '../config.schema.ts';
import { API_BY_KEY, APIS, ApiVersions, CreateTopics, DeleteTopics, DescribeGroups, Fetch, FindCoordinator, Heartbeat, InitProducerId, JoinGroup, LeaveGroup, ListGroups, ListOffsets, Metadata, OffsetCommit, OffsetFetch, Produce, SyncGroup, type ApiDef } from './protocol/index.ts';
import { isFlexible } from './protocol/api.ts';
import { decode, encode } from './protocol/schema.ts';
import { Writer, type Reader } from './protocol/primitives.ts';
import { ErrorCode, errorName } from './protocol/errors.ts';
import type { ApiVersionsResponse } from './protocol/apiVersions/index.ts';
import type { InitProducerIdRequest, InitProducerIdResponse } from './protocol/initProducerId/index.ts';
import { KafkaServer, type ConnectionWithEnd, type DispatchResult, type RequestHeader } from './network/server.ts';
import { LogManager } from './log/logManager.ts';
import type { PartitionLog } from './log/partitionLog.ts';
import { GroupCoordinator } from './group/coordinator.ts';
import { OffsetStore } from './group/offsetStore.ts';
import { createBrokerMetrics, type BrokerMetrics } from './metrics.ts';
import type { BrokerCore, ProducerState, RequestContext } from './handlers/context.ts';
import { handleProduce } from './handlers/produce.ts';
import { handleFetch } from './handlers/fetch.ts';
import { handleCreateTopics, handleDeleteTopics, handleListOffsets, handleMetadata } from './handlers/topics.ts';
import { handleDescribeGroups, handleFindCoordinator, handleHeartbeat, handleJoinGroup, handleLeaveGroup, handleListGroups, handleOffsetCommit, handleOffsetFetch, handleSyncGroup } from './handlers/groups.ts';

type Handler = (b: BrokerCore, req: never, ctx: RequestContext) => object | null | Promise<object | null>;

function handleApiVersions(): ApiVersionsResponse {
  return { errorCode: 0, apiKeys: APIS.map((a) => ({ apiKey: a.key, minVersion: a.min, maxVersion: a.max })), throttleTimeMs: 0 };
}

function handleInitProducerId(b: BrokerCore, req: InitProducerIdRequest): InitProducerIdResponse {
  if (req.transactionalId !== null) {
    // Transactions are not implemented; idempotent producers (null transactional id) are.
    b.countError('InitProducerId', ErrorCode.INVALID_REQUEST);
    return { throttleTimeMs: 0, errorCode: ErrorCode.INVALID_REQUEST, producerId: -1, producerEpoch: -1 };
  }
  return { throttleTimeMs: 0, errorCode: 0, producerId: b.nextProducerId(), producerEpoch: 0 };
}

const HANDLERS = new Map<number, Handler>([
  [Produce.key, handleProduce as Handler],
  [Fetch.key, handleFetch as Handler],
  [ListOffsets.key, handleListOffsets as Handler],
  [Metadata.key, handleMetadata as Handler],
  [OffsetCommit.key, handleOffsetCommit as Handler],
  [OffsetFetch.key, handleOffsetFetch as Handler],
  [FindCoordinator.key, handleFindCoordinator as Handler],
  [JoinGroup.key, handleJoinGroup as Handler],
  [Heartbeat.key, handleHeartbeat as Handler],
  [LeaveGroup.key, handleLeaveGroup as Handler],
  [SyncGroup.key, handleSyncGroup as Handler],
  [DescribeGroups.key, handleDescribeGroups as Handler],
  [ListGroups.key, handleListGroups as Handler],
  [ApiVersions.key, handleApiVersions as Handler],
  [CreateTopics.key, handleCreateTopics as Handler],
  [DeleteTopics.key, handleDeleteTopics as Handler],
  [InitProducerId.key, handleInitProducerId as Handler],
]);

/** Encodes a response frame: header (v0, or v1 for flexible non-ApiVersions responses) then body. */
export function encodeResponse(api: ApiDef, version: number, correlationId: number, body: object): Buffer[] {
  const w = new Writer();
  w.int32(correlationId);
  const flex = isFlexible(api, version);
  // ApiVersions always answers with response header v0 (KIP-511).
  if (flex && api.key !== ApiVersions.key) w.emptyTags();
  encode(api.response, w, version, flex, body);
  return w.finish();
}

export class Broker implements BrokerCore {
  readonly nodeId = 0;
  readonly clusterId: string;
  readonly logs: LogManager;
  readonly groups: GroupCoordinator;
  readonly offsets: OffsetStore;
  readonly metrics: BrokerMetrics;
  advertised = { host: '127.0.0.1', port: 0 };
  private readonly server: KafkaServer;
  private producerIdSeq: number;
  private readonly producers = new WeakMap<PartitionLog, Map<number, ProducerState>>();
  private readonly apiLabels = new Map<number, { requests: { inc(): void }; latency: { observe(v: number): void } }>();

  constructor(
    readonly config: BrokerConfig,
    readonly dataDir: string,
    readonly logger: Logger,
    registry: Registry,
  ) {
    this.metrics = createBrokerMetrics(registry);
    mkdirSync(dataDir, { recursive: true });
    this.clusterId = loadClusterId(dataDir);
    // Unique across restarts without persisting a counter: ids are never reused within a run and
    // a restart starts above the wall clock in ms.
    this.producerIdSeq = Date.now();
    this.logs = new LogManager({
      dataDir,
      segmentBytes: config.segmentBytes,
      retentionMs: config.retentionMs,
      retentionBytes: config.retentionBytes,
      retentionCheckIntervalMs: config.retentionCheckIntervalMs,
      fsync: config.fsync,
      fsyncIntervalMs: config.fsyncIntervalMs,
      logger,
      onRetention: (_t, _p, n) => this.metrics.retentionDeletedSegments.inc(n),
    });
    this.offsets = new OffsetStore(dataDir, config.fsync, logger, config.fsyncIntervalMs);
    this.groups = new GroupCoordinator({
      minSessionTimeoutMs: config.groupMinSessionTimeoutMs,
      maxSessionTimeoutMs: config.groupMaxSessionTimeoutMs,
      initialRebalanceDelayMs: config.groupInitialRebalanceDelayMs,
      onRebalance: (groupId, generation, members) => {
        this.metrics.rebalances.inc();
        logger.info({ groupId, generation, members }, 'group rebalanced');
      },
    });
    for (const api of APIS) {
      this.apiLabels.set(api.key, { requests: this.metrics.requests.labels(api.name), latency: this.metrics.latency.labels(api.name) });
    }
    this.server = new KafkaServer({
      host: config.host,
      port: config.port,
      maxFrameBytes: config.maxFrameBytes,
      idleMs: config.connectionIdleMs,
      logger,
      dispatcher: {
        isFlexibleHeader: (key, version) => {
          const api = API_BY_KEY.get(key);
          return api !== undefined && version >= api.flexFrom;
        },
        dispatch: (conn, header, body) => this.dispatch(conn as ConnectionWithEnd, header, body),
      },
      hooks: {
        onConnection: (open) => {
          if (open) {
            this.metrics.connections.inc();
            this.metrics.connectionsTotal.inc();
          } else this.metrics.connections.dec();
        },
        onBadFrame: (reason) => this.metrics.badFrames.labels(reason.replace(/[0-9]+/g, 'N').slice(0, 60)).inc(),
        onBytesIn: (n) => this.metrics.bytesIn.inc(n),
        onBytesOut: (n) => this.metrics.bytesOut.inc(n),
      },
    });
  }

  async start(): Promise<{ host: string; port: number }> {
    try {
      this.logs.open();
      this.offsets.open();
    } catch (err) {
      throw new PlatformError('KAFKA_BROKER_DATA_DIR', `cannot open the broker data dir ${this.dataDir}: ${(err as Error).message}`, { retriable: false, cause: err, context: { dataDir: this.dataDir } });
    }
    let bound: { host: string; port: number };
    try {
      bound = await this.server.listen();
    } catch (err) {
      this.logs.close();
      this.offsets.close();
      this.groups.close();
      throw new PlatformError('KAFKA_BROKER_LISTEN_FAILED', `cannot listen on ${this.config.host}:${this.config.port}: ${(err as Error).message}`, {
        retriable: false,
        cause: err,
        context: { host: this.config.host, port: this.config.port },
      });
    }
    const host = this.config.advertisedHost ?? (this.config.host === '0.0.0.0' || this.config.host === '::' ? '127.0.0.1' : this.config.host);
    this.advertised = { host, port: this.config.advertisedPort ?? bound.port };
    this.logger.info({ host: bound.host, port: bound.port, advertised: `${host}:${bound.port}`, dataDir: this.dataDir, topics: this.logs.topics.size }, 'kafka broker listening');
    return bound;
  }

  nextProducerId(): number {
    return this.producerIdSeq++;
  }

  producerStates(log: PartitionLog): Map<number, ProducerState> {
    let m = this.producers.get(log);
    if (!m) this.producers.set(log, (m = log.recoveredProducers()));
    return m;
  }

  countError(api: string, code: number): void {
    this.metrics.errors.labels(api, errorName(code)).inc();
  }

  private dispatch(conn: ConnectionWithEnd, header: RequestHeader, body: Reader): DispatchResult {
    const api = API_BY_KEY.get(header.apiKey);
    if (!api || header.apiVersion < api.min || header.apiVersion > api.max) {
      if (api === ApiVersions) {
        // KIP-511: answer an unknown ApiVersions version with v0 and our table, so the client can retry lower.
        return encodeResponse(ApiVersions, 0, header.correlationId, { ...handleApiVersions(), errorCode: ErrorCode.UNSUPPORTED_VERSION });
      }
      // No body layout exists for a version we don't know: send the correlation id and
      // UNSUPPORTED_VERSION, then close, as Kafka closes on requests it cannot parse.
      const w = new Writer(16);
      w.int32(header.correlationId).int16(ErrorCode.UNSUPPORTED_VERSION);
      this.countError(api?.name ?? 'unknown', ErrorCode.UNSUPPORTED_VERSION);
      conn.endWith(w.finish(), api ? `unsupported ${api.name} version ${header.apiVersion}` : `unknown api key ${header.apiKey}`);
      return null;
    }
    const labels = this.apiLabels.get(api.key)!;
    labels.requests.inc();
    const started = performance.now();
    const req = decode<object>(api.request, body, header.apiVersion, isFlexible(api, header.apiVersion));
    const ctx: RequestContext = { version: header.apiVersion, clientId: header.clientId, clientHost: conn.remoteAddress, closed: conn.closed };
    const out = HANDLERS.get(api.key)!(this, req as never, ctx);
    const finish = (res: object | null): Buffer[] | null => {
      labels.latency.observe((performance.now() - started) / 1000);
      return res === null ? null : encodeResponse(api, header.apiVersion, header.correlationId, res);
    };
    return out instanceof Promise ? out.then(finish) : finish(out);
  }

  async close(): Promise<void> {
    await this.server.close();
    this.groups.close();
    this.logs.close();
    this.offsets.close();
    this.logger.info('kafka broker closed');
  }
}

function loadClusterId(dataDir: string): string {
  const path = join(dataDir, 'cluster-id');
  if (existsSync(path)) return readFileSync(path, 'utf8').trim();
  const id = randomBytes(16).toString('base64url').slice(0, 22);
  writeFileSync(path, id);
  return id;
}
