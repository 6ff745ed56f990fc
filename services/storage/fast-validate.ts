/**
 * A fast path in front of zod for the hot topic: records whose every reading this check accepts
 * are exactly what `ReadingRecord` (common/messages.ts) accepts, so zod is skipped for them; anything
 * this check does not accept goes through zod, which stays the authority and writes the error
 * message. The check is deliberately stricter-or-equal: when unsure, it says no.
 * Measured: zod alone cost ~1.3 µs per reading, about as much as JSON.parse.
 */
import type { Reading } from '../../common/messages.ts';

const IDENTIFIER = /^[A-Za-z0-9_.:-]{1,64}$/;
const KEYS = new Set(['site', 'line', 'machine', 'sensor', 'ts', 'value', 'unit', 'quality', 'receivedAt']);

function isEpochMs(v: unknown): boolean {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

export function isValidReadingFast(x: unknown): x is Reading {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return false;
  for (const k in x) if (!KEYS.has(k)) return false;
  const r = x as Record<string, unknown>;
  return (
    typeof r.site === 'string' &&
    IDENTIFIER.test(r.site) &&
    typeof r.line === 'string' &&
    IDENTIFIER.test(r.line) &&
    typeof r.machine === 'string' &&
    IDENTIFIER.test(r.machine) &&
    typeof r.sensor === 'string' &&
    IDENTIFIER.test(r.sensor) &&
    isEpochMs(r.ts) &&
    typeof r.value === 'number' &&
    Number.isFinite(r.value) &&
    (r.unit === undefined || (typeof r.unit === 'string' && r.unit.length <= 32)) &&
    (r.quality === undefined || r.quality === 'good' || r.quality === 'uncertain' || r.quality === 'bad') &&
    isEpochMs(r.receivedAt)
  );
}

/** A `plantwatch.readings` record value (one reading or a non-empty array) when every reading passes. */
export function readingsFast(json: unknown): Reading[] | undefined {
  if (Array.isArray(json)) {
    if (json.length === 0) return undefined;
    for (const r of json) if (!isValidReadingFast(r)) return undefined;
    return json as Reading[];
  }
  return isValidReadingFast(json) ? [json] : undefined;
}
