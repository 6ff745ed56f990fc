/**
 * FindCoordinator (key 10), versions 0–2. Flexible from 3.
 *
 * FindCoordinator Request (Version: 0–2) => key key_type(1+)
 *   key => STRING
 *   key_type => INT8                        (v1+: 0 group, 1 transaction)
 *
 * FindCoordinator Response (Version: 0–2) => throttle_time_ms(1+) error_code error_message(1+) node_id host port
 *   throttle_time_ms => INT32
 *   error_code => INT16
 *   error_message => NULLABLE_STRING
 *   node_id => INT32
 *   host => STRING
 *   port => INT32
 */
import { schema } from '../schema.ts';
import type { ApiDef } from '../api.ts';

export interface FindCoordinatorRequest {
  key: string;
  keyType: number;
}
export interface FindCoordinatorResponse {
  throttleTimeMs: number;
  errorCode: number;
  errorMessage: string | null;
  nodeId: number;
  host: string;
  port: number;
}

export const FindCoordinator: ApiDef = {
  key: 10,
  name: 'FindCoordinator',
  min: 0,
  max: 2,
  flexFrom: 3,
  request: schema([
    { n: 'key', t: 'string', v: '0-3' },
    { n: 'keyType', t: 'int8', v: '1+' },
  ]),
  response: schema([
    { n: 'throttleTimeMs', t: 'int32', v: '1+' },
    { n: 'errorCode', t: 'int16', v: '0-3' },
    { n: 'errorMessage', t: 'string', v: '1-3', nullable: '1-3', d: null },
    { n: 'nodeId', t: 'int32', v: '0-3' },
    { n: 'host', t: 'string', v: '0-3' },
    { n: 'port', t: 'int32', v: '0-3' },
  ]),
};
