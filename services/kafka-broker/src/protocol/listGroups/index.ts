/**
 * ListGroups (key 16), versions 0–2. Flexible from 3.
 *
 * ListGroups Request (Version: 0–2) => (empty)
 *
 * ListGroups Response (Version: 0–2) => throttle_time_ms(1+) error_code [groups]
 *   groups => group_id protocol_type
 *     group_id => STRING
 *     protocol_type => STRING
 */
import { schema } from '../schema.ts';
import type { ApiDef } from '../api.ts';

export interface ListGroupsResponse {
  throttleTimeMs: number;
  errorCode: number;
  groups: { groupId: string; protocolType: string }[];
}

export const ListGroups: ApiDef = {
  key: 16,
  name: 'ListGroups',
  min: 0,
  max: 2,
  flexFrom: 3,
  request: schema([]),
  response: schema([
    { n: 'throttleTimeMs', t: 'int32', v: '1+' },
    { n: 'errorCode', t: 'int16', v: '0+' },
    {
      n: 'groups',
      v: '0+',
      t: [
        { n: 'groupId', t: 'string', v: '0+' },
        { n: 'protocolType', t: 'string', v: '0+' },
      ],
    },
  ]),
};
