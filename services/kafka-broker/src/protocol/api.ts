/** What an API module exports: its key, the versions we implement and its two schemas. */
import type { Schema } from './schema.ts';

export interface ApiDef {
  readonly key: number;
  readonly name: string;
  /** Lowest and highest version we decode and encode (advertised in ApiVersions). */
  readonly min: number;
  readonly max: number;
  /** First flexible (KIP-482) version per Kafka's JSON spec. */
  readonly flexFrom: number;
  readonly request: Schema;
  readonly response: Schema;
}

export const isFlexible = (api: ApiDef, version: number): boolean => version >= api.flexFrom;
