/**
 * Metadata (key 3), versions 4–6. Flexible from 9.
 *
 * Metadata Request (Version: 4–6) => [topics] allow_auto_topic_creation
 *   topics => name                          (NULLABLE ARRAY: null = all topics)
 *     name => STRING
 *   allow_auto_topic_creation => BOOLEAN
 *
 * Metadata Response (Version: 4–6) => throttle_time_ms [brokers] cluster_id controller_id [topics]
 *   brokers => node_id host port rack
 *     node_id => INT32
 *     host => STRING
 *     port => INT32
 *     rack => NULLABLE_STRING
 *   cluster_id => NULLABLE_STRING
 *   controller_id => INT32
 *   topics => error_code name is_internal [partitions]
 *     error_code => INT16
 *     name => STRING
 *     is_internal => BOOLEAN
 *     partitions => error_code partition_index leader_id [replica_nodes] [isr_nodes] [offline_replicas](5+)
 *       error_code => INT16
 *       partition_index => INT32
 *       leader_id => INT32
 *       replica_nodes => INT32
 *       isr_nodes => INT32
 *       offline_replicas => INT32           (v5+)
 */
import { schema } from '../schema.ts';
import type { ApiDef } from '../api.ts';

export interface MetadataRequest {
  topics: { name: string }[] | null;
  allowAutoTopicCreation: boolean;
}
export interface MetadataPartition {
  errorCode: number;
  partitionIndex: number;
  leaderId: number;
  replicaNodes: number[];
  isrNodes: number[];
  offlineReplicas: number[];
}
export interface MetadataResponse {
  throttleTimeMs: number;
  brokers: { nodeId: number; host: string; port: number; rack: string | null }[];
  clusterId: string | null;
  controllerId: number;
  topics: { errorCode: number; name: string; isInternal: boolean; partitions: MetadataPartition[] }[];
}

export const Metadata: ApiDef = {
  key: 3,
  name: 'Metadata',
  min: 4,
  max: 6,
  flexFrom: 9,
  request: schema([
    { n: 'topics', v: '0+', nullable: '1+', t: [{ n: 'name', t: 'string', v: '0+' }] },
    { n: 'allowAutoTopicCreation', t: 'bool', v: '4+', d: true },
  ]),
  response: schema([
    { n: 'throttleTimeMs', t: 'int32', v: '3+' },
    {
      n: 'brokers',
      v: '0+',
      t: [
        { n: 'nodeId', t: 'int32', v: '0+' },
        { n: 'host', t: 'string', v: '0+' },
        { n: 'port', t: 'int32', v: '0+' },
        { n: 'rack', t: 'string', v: '1+', nullable: '1+', d: null },
      ],
    },
    { n: 'clusterId', t: 'string', v: '2+', nullable: '2+', d: null },
    { n: 'controllerId', t: 'int32', v: '1+', d: -1 },
    {
      n: 'topics',
      v: '0+',
      t: [
        { n: 'errorCode', t: 'int16', v: '0+' },
        { n: 'name', t: 'string', v: '0+' },
        { n: 'isInternal', t: 'bool', v: '1+' },
        {
          n: 'partitions',
          v: '0+',
          t: [
            { n: 'errorCode', t: 'int16', v: '0+' },
            { n: 'partitionIndex', t: 'int32', v: '0+' },
            { n: 'leaderId', t: 'int32', v: '0+' },
            { n: 'replicaNodes', t: '[]int32', v: '0+' },
            { n: 'isrNodes', t: '[]int32', v: '0+' },
            { n: 'offlineReplicas', t: '[]int32', v: '5+' },
          ],
        },
      ],
    },
  ]),
};
