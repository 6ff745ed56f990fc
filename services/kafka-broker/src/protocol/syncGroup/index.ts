/**
 * SyncGroup (key 14), versions 0–3. Flexible from 4.
 *
 * SyncGroup Request (Version: 0–3) => group_id generation_id member_id group_instance_id(3+) [assignments]
 *   group_id => STRING
 *   generation_id => INT32
 *   member_id => STRING
 *   group_instance_id => NULLABLE_STRING    (v3+)
 *   assignments => member_id assignment     (only the leader sends them)
 *     member_id => STRING
 *     assignment => BYTES
 *
 * SyncGroup Response (Version: 0–3) => throttle_time_ms(1+) error_code assignment
 *   assignment => BYTES
 */
import { schema } from '../schema.ts';
import type { ApiDef } from '../api.ts';

export interface SyncGroupRequest {
  groupId: string;
  generationId: number;
  memberId: string;
  groupInstanceId: string | null;
  assignments: { memberId: string; assignment: Buffer }[];
}
export interface SyncGroupResponse {
  throttleTimeMs: number;
  errorCode: number;
  assignment: Buffer;
}

export const SyncGroup: ApiDef = {
  key: 14,
  name: 'SyncGroup',
  min: 0,
  max: 3,
  flexFrom: 4,
  request: schema([
    { n: 'groupId', t: 'string', v: '0+' },
    { n: 'generationId', t: 'int32', v: '0+' },
    { n: 'memberId', t: 'string', v: '0+' },
    { n: 'groupInstanceId', t: 'string', v: '3+', nullable: '3+', d: null },
    {
      n: 'assignments',
      v: '0+',
      t: [
        { n: 'memberId', t: 'string', v: '0+' },
        { n: 'assignment', t: 'bytes', v: '0+' },
      ],
    },
  ]),
  response: schema([
    { n: 'throttleTimeMs', t: 'int32', v: '1+' },
    { n: 'errorCode', t: 'int16', v: '0+' },
    { n: 'assignment', t: 'bytes', v: '0+', d: Buffer.alloc(0) },
  ]),
};
