/**
 * Heartbeat (key 12), versions 0–3. Flexible from 4.
 *
 * Heartbeat Request (Version: 0–3) => group_id generation_id member_id group_instance_id(3+)
 *   group_id => STRING
 *   generation_id => INT32
 *   member_id => STRING
 *   group_instance_id => NULLABLE_STRING    (v3+)
 *
 * Heartbeat Response (Version: 0–3) => throttle_time_ms(1+) error_code
 *   (REBALANCE_IN_PROGRESS tells a member to rejoin)
 */
import { schema } from '../schema.ts';
import type { ApiDef } from '../api.ts';

export interface HeartbeatRequest {
  groupId: string;
  generationId: number;
  memberId: string;
  groupInstanceId: string | null;
}
export interface HeartbeatResponse {
  throttleTimeMs: number;
  errorCode: number;
}

export const Heartbeat: ApiDef = {
  key: 12,
  name: 'Heartbeat',
  min: 0,
  max: 3,
  flexFrom: 4,
  request: schema([
    { n: 'groupId', t: 'string', v: '0+' },
    { n: 'generationId', t: 'int32', v: '0+' },
    { n: 'memberId', t: 'string', v: '0+' },
    { n: 'groupInstanceId', t: 'string', v: '3+', nullable: '3+', d: null },
  ]),
  response: schema([
    { n: 'throttleTimeMs', t: 'int32', v: '1+' },
    { n: 'errorCode', t: 'int16', v: '0+' },
  ]),
};
