/** What request handlers get: the broker's state, no sockets. */
import type { Logger } from '../../../../common/logger.ts';
import type { BrokerConfig } from '../../config.schema.ts';
import type { LogManager } from '../log/logManager.ts';
import type { GroupCoordinator } from '../group/coordinator.ts';
import type { OffsetStore } from '../group/offsetStore.ts';
import type { BrokerMetrics } from '../metrics.ts';
import type { PartitionLog } from '../log/partitionLog.ts';

export interface ProducerState {
  epoch: number;
  nextSeq: number;
  /** The last few appended batches, to answer retries of them (Kafka keeps 5). */
  recent: { firstSeq: number; lastSeq: number; baseOffset: number }[];
}

export interface BrokerCore {
  readonly config: BrokerConfig;
  readonly logger: Logger;
  readonly logs: LogManager;
  readonly groups: GroupCoordinator;
  readonly offsets: OffsetStore;
  readonly metrics: BrokerMetrics;
  readonly nodeId: number;
  readonly clusterId: string;
  /** Host and port clients are told to connect to. */
  readonly advertised: { host: string; port: number };
  nextProducerId(): number;
  producerStates(log: PartitionLog): Map<number, ProducerState>;
  countError(api: string, code: number): void;
}

export interface RequestContext {
  version: number;
  clientId: string;
  clientHost: string;
  /** Aborted when the client's connection closes. */
  closed: AbortSignal;
}
