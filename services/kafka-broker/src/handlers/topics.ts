/** Metadata (with auto-create), CreateTopics, DeleteTopics and ListOffsets. */
import { ErrorCode } from '../protocol/errors.ts';
import type { MetadataRequest, MetadataResponse, MetadataPartition } from '../protocol/metadata/index.ts';
import type { CreateTopicsRequest, CreateTopicsResponse } from '../protocol/createTopics/index.ts';
import type { DeleteTopicsRequest, DeleteTopicsResponse } from '../protocol/deleteTopics/index.ts';
import type { ListOffsetsRequest, ListOffsetsResponse } from '../protocol/listOffsets/index.ts';
import { validTopicName, type TopicConfig } from '../log/logManager.ts';
import type { BrokerCore, RequestContext } from './context.ts';

export function handleMetadata(b: BrokerCore, req: MetadataRequest, _ctx: RequestContext): MetadataResponse {
  const names = req.topics === null ? [...b.logs.topics.keys()] : req.topics.map((t) => t.name);
  const topics = names.map((name) => {
    let topic = b.logs.get(name);
    if (!topic && req.topics !== null) {
      if (!validTopicName(name)) return { errorCode: ErrorCode.INVALID_TOPIC_EXCEPTION, name, isInternal: false, partitions: [] };
      if (!(req.allowAutoTopicCreation && b.config.autoCreateTopics)) return { errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, name, isInternal: false, partitions: [] };
      topic = b.logs.create(name, b.config.defaultPartitions);
    }
    if (!topic) return { errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, name, isInternal: false, partitions: [] };
    const partitions = topic.partitions.map(
      (_, i): MetadataPartition => ({ errorCode: 0, partitionIndex: i, leaderId: b.nodeId, replicaNodes: [b.nodeId], isrNodes: [b.nodeId], offlineReplicas: [] }),
    );
    return { errorCode: 0, name, isInternal: false, partitions };
  });
  for (const t of topics) if (t.errorCode !== 0) b.countError('Metadata', t.errorCode);
  return {
    throttleTimeMs: 0,
    brokers: [{ nodeId: b.nodeId, host: b.advertised.host, port: b.advertised.port, rack: null }],
    clusterId: b.clusterId,
    controllerId: b.nodeId,
    topics,
  };
}

const NUMERIC_CONFIGS: Record<string, keyof TopicConfig> = {
  'retention.ms': 'retentionMs',
  'retention.bytes': 'retentionBytes',
  'segment.bytes': 'segmentBytes',
};

export function handleCreateTopics(b: BrokerCore, req: CreateTopicsRequest, _ctx: RequestContext): CreateTopicsResponse {
  const topics = req.topics.map((t) => {
    const fail = (errorCode: number, errorMessage: string) => {
      b.countError('CreateTopics', errorCode);
      return { name: t.name, errorCode, errorMessage };
    };
    if (!validTopicName(t.name)) return fail(ErrorCode.INVALID_TOPIC_EXCEPTION, `invalid topic name '${t.name}'`);
    if (b.logs.get(t.name)) return fail(ErrorCode.TOPIC_ALREADY_EXISTS, `Topic '${t.name}' already exists.`);
    const partitions = t.assignments.length > 0 ? t.assignments.length : t.numPartitions === -1 ? b.config.defaultPartitions : t.numPartitions;
    if (partitions < 1 || partitions > 10_000) return fail(ErrorCode.INVALID_PARTITIONS, `num_partitions must be 1..10000, got ${t.numPartitions}`);
    if (t.replicationFactor !== -1 && t.replicationFactor !== 1) return fail(ErrorCode.INVALID_REPLICATION_FACTOR, `replication factor ${t.replicationFactor} > 1 on a single-node broker`);
    const config: TopicConfig = {};
    for (const c of t.configs) {
      const key = NUMERIC_CONFIGS[c.name];
      if (!key || c.value === null) continue; // other topic configs are accepted and ignored
      const n = Number(c.value);
      if (!Number.isInteger(n) || (key === 'segmentBytes' && n < 1024)) return fail(ErrorCode.INVALID_CONFIG, `invalid ${c.name}=${c.value}`);
      config[key] = n;
    }
    if (!req.validateOnly) b.logs.create(t.name, partitions, config);
    return { name: t.name, errorCode: 0, errorMessage: null };
  });
  return { throttleTimeMs: 0, topics };
}

export function handleDeleteTopics(b: BrokerCore, req: DeleteTopicsRequest, _ctx: RequestContext): DeleteTopicsResponse {
  return {
    throttleTimeMs: 0,
    responses: req.topicNames.map((name) => {
      if (!b.logs.delete(name)) {
        b.countError('DeleteTopics', ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
        return { name, errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION };
      }
      b.offsets.deleteTopic(name);
      return { name, errorCode: 0 };
    }),
  };
}

export const LATEST_TIMESTAMP = -1;
export const EARLIEST_TIMESTAMP = -2;

export function handleListOffsets(b: BrokerCore, req: ListOffsetsRequest, _ctx: RequestContext): ListOffsetsResponse {
  return {
    throttleTimeMs: 0,
    topics: req.topics.map((t) => ({
      name: t.name,
      partitions: t.partitions.map((p) => {
        const log = b.logs.partition(t.name, p.partitionIndex);
        if (!log) {
          b.countError('ListOffsets', ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
          return { partitionIndex: p.partitionIndex, errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, timestamp: -1, offset: -1 };
        }
        if (p.timestamp === LATEST_TIMESTAMP) return { partitionIndex: p.partitionIndex, errorCode: 0, timestamp: -1, offset: log.nextOffset };
        if (p.timestamp === EARLIEST_TIMESTAMP) return { partitionIndex: p.partitionIndex, errorCode: 0, timestamp: -1, offset: log.logStartOffset };
        const found = log.offsetForTimestamp(p.timestamp);
        return { partitionIndex: p.partitionIndex, errorCode: 0, timestamp: found?.timestamp ?? -1, offset: found?.offset ?? -1 };
      }),
    })),
  };
}
