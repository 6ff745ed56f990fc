/**
 * DescribeGroups (key 15), versions 0–2. Flexible from 5.
 *
 * DescribeGroups Request (Version: 0–2) => [groups]
 *   groups => STRING
 *
 * DescribeGroups Response (Version: 0–2) => throttle_time_ms(1+) [groups]
 *   groups => error_code group_id group_state protocol_type protocol_data [members]
 *     error_code => INT16
 *     group_id => STRING
 *     group_state => STRING                 (Empty, PreparingRebalance, CompletingRebalance, Stable, Dead)
 *     protocol_type => STRING
 *     protocol_data => STRING               (the chosen protocol name)
 *     members => member_id client_id client_host member_metadata member_assignment
 *       member_id => STRING
 *       client_id => STRING
 *       client_host => STRING
 *       member_metadata => BYTES
 *       member_assignment => BYTES
 */
import { schema } from '../schema.ts';
import type { ApiDef } from '../api.ts';

export interface DescribeGroupsRequest {
  groups: string[];
}
export interface DescribedGroup {
  errorCode: number;
  groupId: string;
  groupState: string;
  protocolType: string;
  protocolData: string;
  members: { memberId: string; clientId: string; clientHost: string; memberMetadata: Buffer; memberAssignment: Buffer }[];
}
export interface DescribeGroupsResponse {
  throttleTimeMs: number;
  groups: DescribedGroup[];
}

export const DescribeGroups: ApiDef = {
  key: 15,
  name: 'DescribeGroups',
  min: 0,
  max: 2,
  flexFrom: 5,
  request: schema([{ n: 'groups', t: '[]string', v: '0+' }]),
  response: schema([
    { n: 'throttleTimeMs', t: 'int32', v: '1+' },
    {
      n: 'groups',
      v: '0+',
      t: [
        { n: 'errorCode', t: 'int16', v: '0+' },
        { n: 'groupId', t: 'string', v: '0+' },
        { n: 'groupState', t: 'string', v: '0+' },
        { n: 'protocolType', t: 'string', v: '0+' },
        { n: 'protocolData', t: 'string', v: '0+' },
        {
          n: 'members',
          v: '0+',
          t: [
            { n: 'memberId', t: 'string', v: '0+' },
            { n: 'clientId', t: 'string', v: '0+' },
            { n: 'clientHost', t: 'string', v: '0+' },
            { n: 'memberMetadata', t: 'bytes', v: '0+' },
            { n: 'memberAssignment', t: 'bytes', v: '0+' },
          ],
        },
      ],
    },
  ]),
};
