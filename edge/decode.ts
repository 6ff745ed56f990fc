/**
 * Plain payload decoders: a JSON reading `{"ts","value","unit?","quality?"}`, a JSON array of them
 * (batched), or a bare number (stamped on arrival). Every reading is validated with the shared
 * `Reading` schema; each bad one becomes a rejection with a stable code, the good ones of the same
 * payload go on unaffected.
 */
import { Reading, describeZodError } from '../common/messages.ts';

/** Dead-letter codes of the edge bridge: stable, documented in README.md (a test checks), never reused. */
export const REJECT_CODES = [
  'PAYLOAD_OVERSIZE',
  'PAYLOAD_EMPTY',
  'PAYLOAD_NOT_DECODABLE',
  'READING_INVALID',
  'TIMESTAMP_OUT_OF_RANGE',
  'BATCH_TOO_LARGE',
  'SPARKPLUG_NOT_DECODABLE',
  'SPARKPLUG_BEFORE_BIRTH',
  'SPARKPLUG_UNKNOWN_ALIAS',
  'DECODER_FAILED',
] as const;
export type RejectCode = (typeof REJECT_CODES)[number];

export interface Reject {
  code: RejectCode;
  reason: string;
  /** The bytes this rejection is about (the whole payload, or one array element re-serialised). */
  raw: Buffer;
  /** Position in a batched array. */
  index?: number;
}

export interface Decoded {
  readings: Reading[];
  rejects: Reject[];
}

export interface DecodeOptions {
  receivedAt: number;
  maxPastMs: number;
  maxFutureMs: number;
  maxBatchReadings: number;
}

export interface ReadingIdentity {
  site: string;
  line: string;
  machine: string;
  sensor: string;
}

const BARE_NUMBER = /^\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*$/;
const NON_FINITE = /^\s*[-+]?(?:NaN|Infinity|inf)\s*$/i;
const READING_KEYS = new Set(['ts', 'value', 'unit', 'quality']);

export function decodePlain(payload: Buffer, id: ReadingIdentity, decoder: 'auto' | 'json' | 'number', opts: DecodeOptions): Decoded {
  const out: Decoded = { readings: [], rejects: [] };
  if (payload.length === 0) {
    out.rejects.push({ code: 'PAYLOAD_EMPTY', reason: 'empty payload', raw: payload });
    return out;
  }
  const text = payload.toString('utf8');
  if (decoder !== 'json' && BARE_NUMBER.test(text)) {
    addReading(out, id, opts.receivedAt, Number(text), undefined, undefined, () => payload, undefined, opts);
    return out;
  }
  if (decoder === 'number') {
    const reason = NON_FINITE.test(text) ? 'value: must be a finite number' : 'payload is not a number';
    out.rejects.push({ code: NON_FINITE.test(text) ? 'READING_INVALID' : 'PAYLOAD_NOT_DECODABLE', reason, raw: payload });
    return out;
  }
  if (NON_FINITE.test(text)) {
    out.rejects.push({ code: 'READING_INVALID', reason: 'value: must be a finite number', raw: payload });
    return out;
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    out.rejects.push({ code: 'PAYLOAD_NOT_DECODABLE', reason: `not JSON or a number: ${(err as Error).message.slice(0, 120)}`, raw: payload });
    return out;
  }
  if (Array.isArray(doc)) {
    if (doc.length === 0) {
      out.rejects.push({ code: 'PAYLOAD_EMPTY', reason: 'empty JSON array', raw: payload });
      return out;
    }
    if (doc.length > opts.maxBatchReadings) {
      out.rejects.push({ code: 'BATCH_TOO_LARGE', reason: `array of ${doc.length} readings exceeds maxBatchReadings ${opts.maxBatchReadings}`, raw: payload });
      return out;
    }
    for (let i = 0; i < doc.length; i++) decodeElement(out, id, doc[i], i, payload, opts);
    return out;
  }
  decodeElement(out, id, doc, undefined, payload, opts);
  return out;
}

/** The bytes a rejection of `el` carries; only computed when something is rejected. */
function elementBytes(el: unknown, index: number | undefined, payload: Buffer): () => Buffer {
  return () => (index === undefined ? payload : Buffer.from(JSON.stringify(el) ?? 'null'));
}

function decodeElement(out: Decoded, id: ReadingIdentity, el: unknown, index: number | undefined, payload: Buffer, opts: DecodeOptions): void {
  if (typeof el === 'number') {
    addReading(out, id, opts.receivedAt, el, undefined, undefined, elementBytes(el, index, payload), index, opts);
    return;
  }
  if (el === null || typeof el !== 'object' || Array.isArray(el)) {
    const what = el === null ? 'null' : Array.isArray(el) ? 'an array' : typeof el;
    out.rejects.push({ code: 'READING_INVALID', reason: `${index === undefined ? '' : `[${index}] `}expected a reading object or a number, got ${what}`, raw: elementBytes(el, index, payload)(), index });
    return;
  }
  const o = el as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!READING_KEYS.has(k)) {
      out.rejects.push({ code: 'READING_INVALID', reason: `${k}: unknown key (expected ts, value, unit, quality)`, raw: elementBytes(el, index, payload)(), index });
      return;
    }
  }
  if (o.ts === undefined || o.value === undefined) {
    out.rejects.push({ code: 'READING_INVALID', reason: `${o.ts === undefined ? 'ts' : 'value'}: required`, raw: elementBytes(el, index, payload)(), index });
    return;
  }
  let ts: unknown = o.ts;
  if (typeof ts === 'string') {
    const parsed = Date.parse(ts);
    if (Number.isNaN(parsed)) {
      out.rejects.push({ code: 'READING_INVALID', reason: `ts: "${ts.slice(0, 40)}" is not an ISO-8601 time or epoch milliseconds`, raw: elementBytes(el, index, payload)(), index });
      return;
    }
    ts = parsed;
  }
  addReading(out, id, ts, o.value, o.unit, o.quality, elementBytes(el, index, payload), index, opts);
}

function addReading(
  out: Decoded,
  id: ReadingIdentity,
  ts: unknown,
  value: unknown,
  unit: unknown,
  quality: unknown,
  raw: () => Buffer,
  index: number | undefined,
  opts: DecodeOptions,
): void {
  const candidate: Record<string, unknown> = { site: id.site, line: id.line, machine: id.machine, sensor: id.sensor, ts, value, receivedAt: opts.receivedAt };
  if (unit !== undefined) candidate.unit = unit;
  if (quality !== undefined) candidate.quality = quality;
  let r: Reading;
  if (isValidReading(candidate)) {
    r = candidate as Reading;
  } else {
    // The slow path explains what is wrong (and is the authority: the fast check only accepts).
    const res = Reading.safeParse(candidate);
    if (!res.success) {
      out.rejects.push({ code: 'READING_INVALID', reason: describeZodError(res.error), raw: raw(), index });
      return;
    }
    r = res.data;
  }
  const skew = checkTime(r.ts, opts);
  if (skew) {
    out.rejects.push({ code: 'TIMESTAMP_OUT_OF_RANGE', reason: skew, raw: raw(), index });
    return;
  }
  out.readings.push(r);
}

const IDENTIFIER = /^[A-Za-z0-9_.:-]{1,64}$/;
const QUALITIES = new Set(['good', 'uncertain', 'bad']);
const READING_FIELDS = new Set(['site', 'line', 'machine', 'sensor', 'ts', 'value', 'unit', 'quality', 'receivedAt']);

/**
 * Hot-path check equivalent to `Reading.safeParse(c).success` (zod costs ~4% of the relay's CPU).
 * It may only say "valid" when the schema would; a test compares both on fuzzed inputs.
 */
export function isValidReading(c: Record<string, unknown>): boolean {
  for (const k in c) if (!READING_FIELDS.has(k)) return false;
  const { site, line, machine, sensor, ts, value, unit, quality, receivedAt } = c;
  return (
    typeof site === 'string' && IDENTIFIER.test(site) &&
    typeof line === 'string' && IDENTIFIER.test(line) &&
    typeof machine === 'string' && IDENTIFIER.test(machine) &&
    typeof sensor === 'string' && IDENTIFIER.test(sensor) &&
    typeof ts === 'number' && Number.isSafeInteger(ts) && ts >= 0 &&
    typeof value === 'number' && Number.isFinite(value) &&
    typeof receivedAt === 'number' && Number.isSafeInteger(receivedAt) && receivedAt >= 0 &&
    (unit === undefined || (typeof unit === 'string' && unit.length <= 32)) &&
    (quality === undefined || (typeof quality === 'string' && QUALITIES.has(quality)))
  );
}

/** Returns why `ts` is absurd relative to arrival, or null. */
export function checkTime(ts: number, opts: Pick<DecodeOptions, 'receivedAt' | 'maxPastMs' | 'maxFutureMs'>): string | null {
  if (ts < opts.receivedAt - opts.maxPastMs) return `ts: ${new Date(ts).toISOString()} is more than ${opts.maxPastMs} ms before arrival`;
  if (ts > opts.receivedAt + opts.maxFutureMs) return `ts: ${Number.isFinite(ts) && ts < 8.64e15 ? new Date(ts).toISOString() : ts} is more than ${opts.maxFutureMs} ms after arrival`;
  return null;
}
