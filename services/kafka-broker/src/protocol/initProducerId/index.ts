/**
 * InitProducerId (key 22), versions 0–1. Flexible from 2.
 *
 * InitProducerId Request (Version: 0–1) => transactional_id transaction_timeout_ms
 *   transactional_id => NULLABLE_STRING     (null: idempotent producer without transactions)
 *   transaction_timeout_ms => INT32
 *
 * InitProducerId Response (Version: 0–1) => throttle_time_ms error_code producer_id producer_epoch
 *   throttle_time_ms => INT32
 *   error_code => INT16
 *   producer_id => INT64
 *   producer_epoch => INT16
 */
import { schema } from '../schema.ts';
import type { ApiDef } from '../api.ts';

export interface InitProducerIdRequest {
  transactionalId: string | null;
  transactionTimeoutMs: number;
}
export interface InitProducerIdResponse {
  throttleTimeMs: number;
  errorCode: number;
  producerId: number;
  producerEpoch: number;
}

export const InitProducerId: ApiDef = {
  key: 22,
  name: 'InitProducerId',
  min: 0,
  max: 1,
  flexFrom: 2,
  request: schema([
    { n: 'transactionalId', t: 'string', v: '0+', nullable: '0+' },
    { n: 'transactionTimeoutMs', t: 'int32', v: '0+' },
  ]),
  response: schema([
    { n: 'throttleTimeMs', t: 'int32', v: '0+' },
    { n: 'errorCode', t: 'int16', v: '0+' },
    { n: 'producerId', t: 'int64', v: '0+', d: -1 },
    { n: 'producerEpoch', t: 'int16', v: '0+' },
  ]),
};
