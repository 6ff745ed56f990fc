/**
 * Fetch (key 1), versions 4–11. Flexible from 12 (not implemented).
 *
 * Fetch Request (Version: 4–11) => replica_id max_wait_ms min_bytes max_bytes isolation_level
 *     session_id(7+) session_epoch(7+) [topics] [forgotten_topics_data](7+) rack_id(11+)
 *   replica_id => INT32
 *   max_wait_ms => INT32
 *   min_bytes => INT32
 *   max_bytes => INT32
 *   isolation_level => INT8
 *   session_id => INT32                    (v7+)
 *   session_epoch => INT32                 (v7+)
 *   topics => topic [partitions]
 *     topic => STRING
 *     partitions => partition current_leader_epoch(9+) fetch_offset log_start_offset(5+) partition_max_bytes
 *       partition => INT32
 *       current_leader_epoch => INT32      (v9+)
 *       fetch_offset => INT64
 *       log_start_offset => INT64          (v5+)
 *       partition_max_bytes => INT32
 *   forgotten_topics_data => topic [partitions]   (v7+)
 *     topic => STRING
 *     partitions => INT32
 *   rack_id => STRING                      (v11+)
 *
 * Fetch Response (Version: 4–11) => throttle_time_ms error_code(7+) session_id(7+) [responses]
 *   responses => topic [partitions]
 *     topic => STRING
 *     partitions => partition_index error_code high_watermark last_stable_offset
 *         log_start_offset(5+) [aborted_transactions] preferred_read_replica(11+) records
 *       partition_index => INT32
 *       error_code => INT16
 *       high_watermark => INT64
 *       last_stable_offset => INT64
 *       log_start_offset => INT64          (v5+)
 *       aborted_transactions => producer_id first_offset   (NULLABLE ARRAY)
 *         producer_id => INT64
 *         first_offset => INT64
 *       preferred_read_replica => INT32    (v11+)
 *       records => RECORDS
 */
import { schema } from '../schema.ts';
import type { ApiDef } from '../api.ts';

export interface FetchRequest {
  replicaId: number;
  maxWaitMs: number;
  minBytes: number;
  maxBytes: number;
  isolationLevel: number;
  sessionId: number;
  sessionEpoch: number;
  topics: { topic: string; partitions: { partition: number; currentLeaderEpoch: number; fetchOffset: number; logStartOffset: number; partitionMaxBytes: number }[] }[];
  forgottenTopicsData: { topic: string; partitions: number[] }[];
  rackId: string;
}

export interface FetchPartitionResponse {
  partitionIndex: number;
  errorCode: number;
  highWatermark: number;
  lastStableOffset: number;
  logStartOffset: number;
  abortedTransactions: { producerId: number; firstOffset: number }[] | null;
  preferredReadReplica: number;
  records: Buffer | Buffer[] | null;
}
export interface FetchResponse {
  throttleTimeMs: number;
  errorCode: number;
  sessionId: number;
  responses: { topic: string; partitions: FetchPartitionResponse[] }[];
}

export const Fetch: ApiDef = {
  key: 1,
  name: 'Fetch',
  min: 4,
  max: 11,
  flexFrom: 12,
  request: schema([
    { n: 'replicaId', t: 'int32', v: '0+' },
    { n: 'maxWaitMs', t: 'int32', v: '0+' },
    { n: 'minBytes', t: 'int32', v: '0+' },
    { n: 'maxBytes', t: 'int32', v: '3+', d: 0x7fffffff },
    { n: 'isolationLevel', t: 'int8', v: '4+' },
    { n: 'sessionId', t: 'int32', v: '7+' },
    { n: 'sessionEpoch', t: 'int32', v: '7+', d: -1 },
    {
      n: 'topics',
      v: '0+',
      t: [
        { n: 'topic', t: 'string', v: '0+' },
        {
          n: 'partitions',
          v: '0+',
          t: [
            { n: 'partition', t: 'int32', v: '0+' },
            { n: 'currentLeaderEpoch', t: 'int32', v: '9+', d: -1 },
            { n: 'fetchOffset', t: 'int64', v: '0+' },
            { n: 'logStartOffset', t: 'int64', v: '5+', d: -1 },
            { n: 'partitionMaxBytes', t: 'int32', v: '0+' },
          ],
        },
      ],
    },
    {
      n: 'forgottenTopicsData',
      v: '7+',
      t: [
        { n: 'topic', t: 'string', v: '7+' },
        { n: 'partitions', t: '[]int32', v: '7+' },
      ],
    },
    { n: 'rackId', t: 'string', v: '11+', d: '' },
  ]),
  response: schema([
    { n: 'throttleTimeMs', t: 'int32', v: '1+' },
    { n: 'errorCode', t: 'int16', v: '7+' },
    { n: 'sessionId', t: 'int32', v: '7+' },
    {
      n: 'responses',
      v: '0+',
      t: [
        { n: 'topic', t: 'string', v: '0+' },
        {
          n: 'partitions',
          v: '0+',
          t: [
            { n: 'partitionIndex', t: 'int32', v: '0+' },
            { n: 'errorCode', t: 'int16', v: '0+' },
            { n: 'highWatermark', t: 'int64', v: '0+' },
            { n: 'lastStableOffset', t: 'int64', v: '4+', d: -1 },
            { n: 'logStartOffset', t: 'int64', v: '5+', d: -1 },
            {
              n: 'abortedTransactions',
              v: '4+',
              nullable: '4+',
              t: [
                { n: 'producerId', t: 'int64', v: '4+' },
                { n: 'firstOffset', t: 'int64', v: '4+' },
              ],
            },
            { n: 'preferredReadReplica', t: 'int32', v: '11+', d: -1 },
            { n: 'records', t: 'records', v: '0+', nullable: '0+' },
          ],
        },
      ],
    },
  ]),
};
