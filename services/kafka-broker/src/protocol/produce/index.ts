/**
 * Produce (key 0), versions 3–7. Flexible from 9 (not implemented).
 *
 * Produce Request (Version: 3–7) => transactional_id acks timeout_ms [topic_data]
 *   transactional_id => NULLABLE_STRING
 *   acks => INT16
 *   timeout_ms => INT32
 *   topic_data => name [partition_data]
 *     name => STRING
 *     partition_data => index records
 *       index => INT32
 *       records => RECORDS
 *
 * Produce Response (Version: 3–7) => [responses] throttle_time_ms
 *   responses => name [partition_responses]
 *     name => STRING
 *     partition_responses => index error_code base_offset log_append_time_ms log_start_offset(5+)
 *       index => INT32
 *       error_code => INT16
 *       base_offset => INT64
 *       log_append_time_ms => INT64
 *       log_start_offset => INT64          (v5+)
 *   throttle_time_ms => INT32
 *
 * v4: KAFKA_STORAGE_ERROR possible; v5: log_start_offset; v6, v7: same wire format (throttling and
 * ZStandard semantics only).
 */
import { schema } from '../schema.ts';
import type { ApiDef } from '../api.ts';

export interface ProduceRequest {
  transactionalId: string | null;
  acks: number;
  timeoutMs: number;
  topicData: { name: string; partitionData: { index: number; records: Buffer | null }[] }[];
}

export interface ProducePartitionResponse {
  index: number;
  errorCode: number;
  baseOffset: number;
  logAppendTimeMs: number;
  logStartOffset: number;
}
export interface ProduceResponse {
  responses: { name: string; partitionResponses: ProducePartitionResponse[] }[];
  throttleTimeMs: number;
}

export const Produce: ApiDef = {
  key: 0,
  name: 'Produce',
  min: 3,
  max: 7,
  flexFrom: 9,
  request: schema([
    { n: 'transactionalId', t: 'string', v: '3+', nullable: '3+', d: null },
    { n: 'acks', t: 'int16', v: '0+' },
    { n: 'timeoutMs', t: 'int32', v: '0+' },
    {
      n: 'topicData',
      v: '0+',
      t: [
        { n: 'name', t: 'string', v: '0+' },
        {
          n: 'partitionData',
          v: '0+',
          t: [
            { n: 'index', t: 'int32', v: '0+' },
            { n: 'records', t: 'records', v: '0+', nullable: '0+' },
          ],
        },
      ],
    },
  ]),
  response: schema([
    {
      n: 'responses',
      v: '0+',
      t: [
        { n: 'name', t: 'string', v: '0+' },
        {
          n: 'partitionResponses',
          v: '0+',
          t: [
            { n: 'index', t: 'int32', v: '0+' },
            { n: 'errorCode', t: 'int16', v: '0+' },
            { n: 'baseOffset', t: 'int64', v: '0+' },
            { n: 'logAppendTimeMs', t: 'int64', v: '2+', d: -1 },
            { n: 'logStartOffset', t: 'int64', v: '5+', d: -1 },
          ],
        },
      ],
    },
    { n: 'throttleTimeMs', t: 'int32', v: '1+' },
  ]),
};
