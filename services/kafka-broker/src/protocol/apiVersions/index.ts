/**
 * ApiVersions (key 18), versions 0–3. Flexible from 3.
 *
 * ApiVersions Request (Version: 0–2) => (empty)
 * ApiVersions Request (Version: 3) => client_software_name client_software_version TAG_BUFFER
 *   client_software_name => COMPACT_STRING
 *   client_software_version => COMPACT_STRING
 *
 * ApiVersions Response (Version: 0–3) => error_code [api_keys] throttle_time_ms(1+) TAG_BUFFER(3)
 *   error_code => INT16
 *   api_keys => api_key min_version max_version TAG_BUFFER(3)
 *     api_key => INT16
 *     min_version => INT16
 *     max_version => INT16
 *   throttle_time_ms => INT32
 *
 * The response header is always v0 (no tag buffer), even for v3, so that a client that sent a
 * version we do not know can still read the error and the version table (KIP-511).
 */
import { schema } from '../schema.ts';
import type { ApiDef } from '../api.ts';

export interface ApiVersionsRequest {
  clientSoftwareName: string;
  clientSoftwareVersion: string;
}
export interface ApiVersionsResponse {
  errorCode: number;
  apiKeys: { apiKey: number; minVersion: number; maxVersion: number }[];
  throttleTimeMs: number;
}

export const ApiVersions: ApiDef = {
  key: 18,
  name: 'ApiVersions',
  min: 0,
  max: 3,
  flexFrom: 3,
  request: schema([
    { n: 'clientSoftwareName', t: 'string', v: '3+' },
    { n: 'clientSoftwareVersion', t: 'string', v: '3+' },
  ]),
  response: schema([
    { n: 'errorCode', t: 'int16', v: '0+' },
    {
      n: 'apiKeys',
      v: '0+',
      t: [
        { n: 'apiKey', t: 'int16', v: '0+' },
        { n: 'minVersion', t: 'int16', v: '0+' },
        { n: 'maxVersion', t: 'int16', v: '0+' },
      ],
    },
    { n: 'throttleTimeMs', t: 'int32', v: '1+' },
  ]),
};
