/**
 * JoinGroup (key 11), versions 0–5. Flexible from 6.
 *
 * JoinGroup Request (Version: 0–5) => group_id session_timeout_ms rebalance_timeout_ms(1+) member_id
 *     group_instance_id(5+) protocol_type [protocols]
 *   group_id => STRING
 *   session_timeout_ms => INT32
 *   rebalance_timeout_ms => INT32           (v1+; v0 uses the session timeout)
 *   member_id => STRING                     (empty on first join; v4+ answers MEMBER_ID_REQUIRED)
 *   group_instance_id => NULLABLE_STRING    (v5+)
 *   protocol_type => STRING
 *   protocols => name metadata
 *     name => STRING
 *     metadata => BYTES
 *
 * JoinGroup Response (Version: 0–5) => throttle_time_ms(2+) error_code generation_id protocol_name
 *     leader member_id [members]
 *   members => member_id group_instance_id(5+) metadata   (only the leader gets the list)
 */
import { schema } from '../schema.ts';
import type { ApiDef } from '../api.ts';

export interface JoinGroupRequest {
  groupId: string;
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  memberId: string;
  groupInstanceId: string | null;
  protocolType: string;
  protocols: { name: string; metadata: Buffer }[];
}
export interface JoinGroupResponse {
  throttleTimeMs: number;
  errorCode: number;
  generationId: number;
  protocolName: string | null;
  leader: string;
  memberId: string;
  members: { memberId: string; groupInstanceId: string | null; metadata: Buffer }[];
}

export const JoinGroup: ApiDef = {
  key: 11,
  name: 'JoinGroup',
  min: 0,
  max: 5,
  flexFrom: 6,
  request: schema([
    { n: 'groupId', t: 'string', v: '0+' },
    { n: 'sessionTimeoutMs', t: 'int32', v: '0+' },
    { n: 'rebalanceTimeoutMs', t: 'int32', v: '1+', d: -1 },
    { n: 'memberId', t: 'string', v: '0+' },
    { n: 'groupInstanceId', t: 'string', v: '5+', nullable: '5+', d: null },
    { n: 'protocolType', t: 'string', v: '0+' },
    {
      n: 'protocols',
      v: '0+',
      t: [
        { n: 'name', t: 'string', v: '0+' },
        { n: 'metadata', t: 'bytes', v: '0+' },
      ],
    },
  ]),
  response: schema([
    { n: 'throttleTimeMs', t: 'int32', v: '2+' },
    { n: 'errorCode', t: 'int16', v: '0+' },
    { n: 'generationId', t: 'int32', v: '0+', d: -1 },
    { n: 'protocolName', t: 'string', v: '0+', nullable: '7+' },
    { n: 'leader', t: 'string', v: '0+' },
    { n: 'memberId', t: 'string', v: '0+' },
    {
      n: 'members',
      v: '0+',
      t: [
        { n: 'memberId', t: 'string', v: '0+' },
        { n: 'groupInstanceId', t: 'string', v: '5+', nullable: '5+', d: null },
        { n: 'metadata', t: 'bytes', v: '0+' },
      ],
    },
  ]),
};
