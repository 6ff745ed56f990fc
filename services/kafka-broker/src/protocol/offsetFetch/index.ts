/**
 * OffsetFetch (key 9), versions 1–5. Flexible from 6.
 *
 * OffsetFetch Request (Version: 1–5) => group_id [topics]
 *   group_id => STRING
 *   topics => name [partition_indexes]      (NULLABLE ARRAY from v2: null = all committed)
 *     name => STRING
 *     partition_indexes => INT32
 *
 * OffsetFetch Response (Version: 1–5) => throttle_time_ms(3+) [topics] error_code(2+)
 *   topics => name [partitions]
 *     name => STRING
 *     partitions => partition_index committed_offset committed_leader_epoch(5+) metadata error_code
 *       partition_index => INT32
 *       committed_offset => INT64           (-1 when nothing is committed)
 *       committed_leader_epoch => INT32     (v5+)
 *       metadata => NULLABLE_STRING
 *       error_code => INT16
 *   error_code => INT16                     (v2+)
 */
import { schema } from '../schema.ts';
import type { ApiDef } from '../api.ts';

export interface OffsetFetchRequest {
  groupId: string;
  topics: { name: string; partitionIndexes: number[] }[] | null;
}
export interface OffsetFetchResponse {
  throttleTimeMs: number;
  topics: { name: string; partitions: { partitionIndex: number; committedOffset: number; committedLeaderEpoch: number; metadata: string | null; errorCode: number }[] }[];
  errorCode: number;
}

export const OffsetFetch: ApiDef = {
  key: 9,
  name: 'OffsetFetch',
  min: 1,
  max: 5,
  flexFrom: 6,
  request: schema([
    { n: 'groupId', t: 'string', v: '0-7' },
    {
      n: 'topics',
      v: '0-7',
      nullable: '2-7',
      t: [
        { n: 'name', t: 'string', v: '0-7' },
        { n: 'partitionIndexes', t: '[]int32', v: '0-7' },
      ],
    },
  ]),
  response: schema([
    { n: 'throttleTimeMs', t: 'int32', v: '3+' },
    {
      n: 'topics',
      v: '0-7',
      t: [
        { n: 'name', t: 'string', v: '0-7' },
        {
          n: 'partitions',
          v: '0-7',
          t: [
            { n: 'partitionIndex', t: 'int32', v: '0-7' },
            { n: 'committedOffset', t: 'int64', v: '0-7' },
            { n: 'committedLeaderEpoch', t: 'int32', v: '5-7', d: -1 },
            { n: 'metadata', t: 'string', v: '0-7', nullable: '0-7' },
            { n: 'errorCode', t: 'int16', v: '0-7' },
          ],
        },
      ],
    },
    { n: 'errorCode', t: 'int16', v: '2-7' },
  ]),
};
