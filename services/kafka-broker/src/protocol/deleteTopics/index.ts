/**
 * DeleteTopics (key 20), versions 0–3. Flexible from 4.
 *
 * DeleteTopics Request (Version: 0–3) => [topic_names] timeout_ms
 *   topic_names => STRING
 *   timeout_ms => INT32
 *
 * DeleteTopics Response (Version: 0–3) => throttle_time_ms(1+) [responses]
 *   responses => name error_code
 *     name => STRING
 *     error_code => INT16
 */
import { schema } from '../schema.ts';
import type { ApiDef } from '../api.ts';

export interface DeleteTopicsRequest {
  topicNames: string[];
  timeoutMs: number;
}
export interface DeleteTopicsResponse {
  throttleTimeMs: number;
  responses: { name: string; errorCode: number }[];
}

export const DeleteTopics: ApiDef = {
  key: 20,
  name: 'DeleteTopics',
  min: 0,
  max: 3,
  flexFrom: 4,
  request: schema([
    { n: 'topicNames', t: '[]string', v: '0-5' },
    { n: 'timeoutMs', t: 'int32', v: '0+' },
  ]),
  response: schema([
    { n: 'throttleTimeMs', t: 'int32', v: '1+' },
    {
      n: 'responses',
      v: '0+',
      t: [
        { n: 'name', t: 'string', v: '0+' },
        { n: 'errorCode', t: 'int16', v: '0+' },
      ],
    },
  ]),
};
