/**
 * OffsetCommit (key 8), versions 2–7. Flexible from 8.
 *
 * OffsetCommit Request (Version: 2–7) => group_id generation_id member_id group_instance_id(7+)
 *     retention_time_ms(2–4) [topics]
 *   group_id => STRING
 *   generation_id => INT32
 *   member_id => STRING
 *   group_instance_id => NULLABLE_STRING    (v7+)
 *   retention_time_ms => INT64              (v2–4, ignored)
 *   topics => name [partitions]
 *     name => STRING
 *     partitions => partition_index committed_offset committed_leader_epoch(6+) committed_metadata
 *       partition_index => INT32
 *       committed_offset => INT64
 *       committed_leader_epoch => INT32     (v6+)
 *       committed_metadata => NULLABLE_STRING
 *
 * OffsetCommit Response (Version: 2–7) => throttle_time_ms(3+) [topics]
 *   topics => name [partitions]
 *     name => STRING
 *     partitions => partition_index error_code
 */
import { schema } from '../schema.ts';
import type { ApiDef } from '../api.ts';

export interface OffsetCommitRequest {
  groupId: string;
  generationId: number;
  memberId: string;
  groupInstanceId: string | null;
  topics: { name: string; partitions: { partitionIndex: number; committedOffset: number; committedMetadata: string | null }[] }[];
}
export interface OffsetCommitResponse {
  throttleTimeMs: number;
  topics: { name: string; partitions: { partitionIndex: number; errorCode: number }[] }[];
}

export const OffsetCommit: ApiDef = {
  key: 8,
  name: 'OffsetCommit',
  min: 2,
  max: 7,
  flexFrom: 8,
  request: schema([
    { n: 'groupId', t: 'string', v: '0+' },
    { n: 'generationId', t: 'int32', v: '1+', d: -1 },
    { n: 'memberId', t: 'string', v: '1+' },
    { n: 'groupInstanceId', t: 'string', v: '7+', nullable: '7+', d: null },
    { n: 'retentionTimeMs', t: 'int64', v: '2-4', d: -1 },
    {
      n: 'topics',
      v: '0+',
      t: [
        { n: 'name', t: 'string', v: '0+' },
        {
          n: 'partitions',
          v: '0+',
          t: [
            { n: 'partitionIndex', t: 'int32', v: '0+' },
            { n: 'committedOffset', t: 'int64', v: '0+' },
            { n: 'committedLeaderEpoch', t: 'int32', v: '6+', d: -1 },
            { n: 'commitTimestamp', t: 'int64', v: '1', d: -1 },
            { n: 'committedMetadata', t: 'string', v: '0+', nullable: '0+' },
          ],
        },
      ],
    },
  ]),
  response: schema([
    { n: 'throttleTimeMs', t: 'int32', v: '3+' },
    {
      n: 'topics',
      v: '0+',
      t: [
        { n: 'name', t: 'string', v: '0+' },
        {
          n: 'partitions',
          v: '0+',
          t: [
            { n: 'partitionIndex', t: 'int32', v: '0+' },
            { n: 'errorCode', t: 'int16', v: '0+' },
          ],
        },
      ],
    },
  ]),
};
