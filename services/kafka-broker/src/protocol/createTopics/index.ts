/**
 * CreateTopics (key 19), versions 0–4. Flexible from 5.
 *
 * CreateTopics Request (Version: 0–4) => [topics] timeout_ms validate_only(1+)
 *   topics => name num_partitions replication_factor [assignments] [configs]
 *     name => STRING
 *     num_partitions => INT32               (-1: broker default)
 *     replication_factor => INT16           (-1: broker default)
 *     assignments => partition_index [broker_ids]
 *       partition_index => INT32
 *       broker_ids => INT32
 *     configs => name value
 *       name => STRING
 *       value => NULLABLE_STRING
 *   timeout_ms => INT32
 *   validate_only => BOOLEAN                (v1+)
 *
 * CreateTopics Response (Version: 0–4) => throttle_time_ms(2+) [topics]
 *   topics => name error_code error_message(1+)
 *     name => STRING
 *     error_code => INT16
 *     error_message => NULLABLE_STRING      (v1+)
 */
import { schema } from '../schema.ts';
import type { ApiDef } from '../api.ts';

export interface CreateTopicsRequest {
  topics: {
    name: string;
    numPartitions: number;
    replicationFactor: number;
    assignments: { partitionIndex: number; brokerIds: number[] }[];
    configs: { name: string; value: string | null }[];
  }[];
  timeoutMs: number;
  validateOnly: boolean;
}
export interface CreateTopicsResponse {
  throttleTimeMs: number;
  topics: { name: string; errorCode: number; errorMessage: string | null }[];
}

export const CreateTopics: ApiDef = {
  key: 19,
  name: 'CreateTopics',
  min: 0,
  max: 4,
  flexFrom: 5,
  request: schema([
    {
      n: 'topics',
      v: '0+',
      t: [
        { n: 'name', t: 'string', v: '0+' },
        { n: 'numPartitions', t: 'int32', v: '0+' },
        { n: 'replicationFactor', t: 'int16', v: '0+' },
        {
          n: 'assignments',
          v: '0+',
          t: [
            { n: 'partitionIndex', t: 'int32', v: '0+' },
            { n: 'brokerIds', t: '[]int32', v: '0+' },
          ],
        },
        {
          n: 'configs',
          v: '0+',
          t: [
            { n: 'name', t: 'string', v: '0+' },
            { n: 'value', t: 'string', v: '0+', nullable: '0+' },
          ],
        },
      ],
    },
    { n: 'timeoutMs', t: 'int32', v: '0+', d: 60000 },
    { n: 'validateOnly', t: 'bool', v: '1+' },
  ]),
  response: schema([
    { n: 'throttleTimeMs', t: 'int32', v: '2+' },
    {
      n: 'topics',
      v: '0+',
      t: [
        { n: 'name', t: 'string', v: '0+' },
        { n: 'errorCode', t: 'int16', v: '0+' },
        { n: 'errorMessage', t: 'string', v: '1+', nullable: '0+', d: null },
      ],
    },
  ]),
};
