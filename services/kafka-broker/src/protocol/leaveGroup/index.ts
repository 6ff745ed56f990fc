/**
 * LeaveGroup (key 13), versions 0–3. Flexible from 4.
 *
 * LeaveGroup Request (Version: 0–2) => group_id member_id
 * LeaveGroup Request (Version: 3) => group_id [members]
 *   members => member_id group_instance_id
 *     member_id => STRING
 *     group_instance_id => NULLABLE_STRING
 *
 * LeaveGroup Response (Version: 0–2) => throttle_time_ms(1+) error_code
 * LeaveGroup Response (Version: 3) => throttle_time_ms error_code [members]
 *   members => member_id group_instance_id error_code
 */
import { schema } from '../schema.ts';
import type { ApiDef } from '../api.ts';

export interface LeaveGroupRequest {
  groupId: string;
  memberId: string;
  members: { memberId: string; groupInstanceId: string | null }[];
}
export interface LeaveGroupResponse {
  throttleTimeMs: number;
  errorCode: number;
  members: { memberId: string; groupInstanceId: string | null; errorCode: number }[];
}

export const LeaveGroup: ApiDef = {
  key: 13,
  name: 'LeaveGroup',
  min: 0,
  max: 3,
  flexFrom: 4,
  request: schema([
    { n: 'groupId', t: 'string', v: '0+' },
    { n: 'memberId', t: 'string', v: '0-2' },
    {
      n: 'members',
      v: '3+',
      t: [
        { n: 'memberId', t: 'string', v: '3+' },
        { n: 'groupInstanceId', t: 'string', v: '3+', nullable: '3+', d: null },
      ],
    },
  ]),
  response: schema([
    { n: 'throttleTimeMs', t: 'int32', v: '1+' },
    { n: 'errorCode', t: 'int16', v: '0+' },
    {
      n: 'members',
      v: '3+',
      t: [
        { n: 'memberId', t: 'string', v: '3+' },
        { n: 'groupInstanceId', t: 'string', v: '3+', nullable: '3+' },
        { n: 'errorCode', t: 'int16', v: '3+' },
      ],
    },
  ]),
};
