/**
 * ListOffsets (key 2), versions 1–3. Flexible from 6.
 *
 * ListOffsets Request (Version: 1–3) => replica_id isolation_level(2+) [topics]
 *   replica_id => INT32
 *   isolation_level => INT8                (v2+)
 *   topics => name [partitions]
 *     name => STRING
 *     partitions => partition_index timestamp
 *       partition_index => INT32
 *       timestamp => INT64                 (-1 latest, -2 earliest)
 *
 * ListOffsets Response (Version: 1–3) => throttle_time_ms(2+) [topics]
 *   topics => name [partitions]
 *     name => STRING
 *     partitions => partition_index error_code timestamp offset
 *       partition_index => INT32
 *       error_code => INT16
 *       timestamp => INT64
 *       offset => INT64
 */
import { schema } from '../schema.ts';
import type { ApiDef } from '../api.ts';

export interface ListOffsetsRequest {
  replicaId: number;
  isolationLevel: number;
  topics: { name: string; partitions: { partitionIndex: number; timestamp: number }[] }[];
}
export interface ListOffsetsResponse {
  throttleTimeMs: number;
  topics: { name: string; partitions: { partitionIndex: number; errorCode: number; timestamp: number; offset: number }[] }[];
}

export const ListOffsets: ApiDef = {
  key: 2,
  name: 'ListOffsets',
  min: 1,
  max: 3,
  flexFrom: 6,
  request: schema([
    { n: 'replicaId', t: 'int32', v: '0+' },
    { n: 'isolationLevel', t: 'int8', v: '2+' },
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
            { n: 'timestamp', t: 'int64', v: '0+' },
          ],
        },
      ],
    },
  ]),
  response: schema([
    { n: 'throttleTimeMs', t: 'int32', v: '2+' },
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
            { n: 'timestamp', t: 'int64', v: '1+', d: -1 },
            { n: 'offset', t: 'int64', v: '1+', d: -1 },
          ],
        },
      ],
    },
  ]),
};
