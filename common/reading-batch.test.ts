import { describe, expect, it } from 'vitest';
import { ReadingRecord, type Reading } from './messages.ts';
import { ReadingBatch, ReadingDecoder, SeriesInterner } from './reading-batch.ts';

/** What the writer's fallback path yields: JSON.parse + zod, or undefined when either refuses. */
function slow(bytes: Buffer): Reading[] | undefined {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
  const res = ReadingRecord.safeParse(json);
  if (!res.success) return undefined;
  return Array.isArray(res.data) ? res.data : [res.data];
}

function fast(bytes: Buffer, decoder = new ReadingDecoder()): Reading[] | undefined {
  const batch = new ReadingBatch(4);
  const n = decoder.decode(bytes, batch);
  if (n < 0) {
    expect(batch.n).toBe(0);
    return undefined;
  }
  return batch.toReadings();
}

/** Deep equality that tells 0 from -0 and compares numbers exactly. */
function same(a: Reading[], b: Reading[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const ka = Object.keys(a[i]).sort();
    const kb = Object.keys(b[i]).sort();
    if (ka.join() !== kb.join()) return false;
    for (const k of ka) if (!Object.is((a[i] as Record<string, unknown>)[k], (b[i] as Record<string, unknown>)[k])) return false;
  }
  return true;
}

let state = 12345;
const rnd = (n: number) => ((state = (Math.imul(state, 1103515245) + 12345) & 0x7fffffff), state % n);
const pick = <T>(xs: T[]): T => xs[rnd(xs.length)];

const ID_CHARS = 'abcXYZ019_.:-';
function randomId(): string {
  const len = rnd(4) ? 1 + rnd(12) : pick([1, 64, 65]);
  return Array.from({ length: len }, () => ID_CHARS[rnd(ID_CHARS.length)]).join('');
}

function randomNumberText(): string {
  if (rnd(3)) return String(pick([rnd(1000), (rnd(2000000) - 1000000) / 1000, Math.random() * 200 - 100]));
  return pick([
    () => String(rnd(100000)),
    () => String((rnd(2000000) - 1000000) / 1000),
    () => String(Math.random() * 1e6 - 5e5),
    () => `${rnd(10)}.${'0'.repeat(rnd(25))}${rnd(1000)}`,
    () => '1234567890123456789012345.5',
    () => '0.1',
    () => '-0',
    () => '-0.0',
    () => '0',
    () => '1e5',
    () => '1E-7',
    () => '01',
    () => '1.',
    () => '.5',
    () => '-',
    () => String(2 ** 53),
    () => String(2 ** 53 + 2),
    () => '9'.repeat(400),
    () => '9007199254740993',
    () => '1.7976931348623157',
    () => `${rnd(10)}.${rnd(10)}${rnd(10)}${rnd(10)}${rnd(10)}${rnd(10)}${rnd(10)}${rnd(10)}${rnd(10)}${rnd(10)}${rnd(10)}${rnd(10)}${rnd(10)}${rnd(10)}${rnd(10)}${rnd(10)}${rnd(10)}`,
  ])();
}

function randomTimeText(): string {
  if (rnd(4)) return String(1_700_000_000_000 + rnd(1e6));
  return pick([() => String(1_700_000_000_000 + rnd(1e6)), () => '0', () => '-1', () => '1.5', () => '1700000000000.0', () => '1.7e12', () => '999999999999999', () => '9999999999999999', () => '00', () => '"1"'])();
}

function randomReadingText(): string {
  const fields: [string, string][] = [
    ['site', JSON.stringify(randomId())],
    ['line', JSON.stringify(randomId())],
    ['machine', JSON.stringify(randomId())],
    ['sensor', JSON.stringify(randomId())],
    ['ts', randomTimeText()],
    ['value', randomNumberText()],
    ['receivedAt', randomTimeText()],
  ];
  if (rnd(2)) fields.push(['unit', JSON.stringify(rnd(2) ? 'degC' : pick(['bar', '', 'u'.repeat(32), 'u'.repeat(33), 'm/s²', 'a"b', 'a\\b', '\n']))]);
  if (rnd(2)) fields.push(['quality', JSON.stringify(rnd(2) ? 'good' : pick(['uncertain', 'bad', 'ok', 'Good', '']))]);
  if (rnd(8) === 0) fields.push([pick(['extra', '__proto__', 'site', 'Site']), pick(['1', '"x"', 'null', '{}'])]);
  if (rnd(8) === 0) fields.splice(rnd(fields.length), 1);
  for (let i = fields.length - 1; i > 0; i--) {
    const j = rnd(i + 1);
    [fields[i], fields[j]] = [fields[j], fields[i]];
  }
  const ws = () => (rnd(8) ? '' : pick([' ', '\n', '\t ', '\r\n']));
  return `{${ws()}${fields.map(([k, v]) => `"${k}"${ws()}:${ws()}${v}`).join(`${ws()},${ws()}`)}${ws()}}`;
}

function randomRecord(): Buffer {
  const n = pick([0, 1, 1, 3, 10]);
  if (n === 0) return Buffer.from(pick(['[]', '{}', 'null', '5', '"x"', '[{}]', '[1]']));
  const objs = Array.from({ length: n }, randomReadingText);
  return Buffer.from(n === 1 && rnd(2) ? objs[0] : `[${objs.join(',')}]`);
}

function mutate(b: Buffer): Buffer {
  const bytes = [...b];
  const k = 1 + rnd(3);
  for (let i = 0; i < k; i++) {
    const at = rnd(bytes.length + 1);
    const op = rnd(4);
    const byte = pick([0x22, 0x2c, 0x7b, 0x7d, 0x5b, 0x5d, 0x3a, 0x5c, 0x20, 0x30, 0x39, 0x2e, 0x65, 0x2d, 0x41, 0xc3, 0x00, 0xff, rnd(256)]);
    if (op === 0) bytes.splice(at, 1);
    else if (op === 1) bytes.splice(at, 0, byte);
    else if (op === 2) bytes[Math.min(at, bytes.length - 1)] = byte;
    else bytes.splice(at, bytes.length);
  }
  return Buffer.from(bytes);
}

const valid: Reading = { site: 'plant', line: 'L1', machine: 'm1', sensor: 's0', ts: 1_700_000_000_000, value: 12.5, unit: 'degC', quality: 'good', receivedAt: 1_700_000_000_003 };

describe('services/storage/reading-batch', () => {
  it('decodes what the edge bridge produces, the same as JSON.parse + zod', () => {
    const rs: Reading[] = Array.from({ length: 10 }, (_, s) => ({ ...valid, sensor: `s${s}`, value: s * 1.1 - 3, quality: s % 2 ? undefined : 'bad' }));
    for (const r of rs) if (r.quality === undefined) delete r.quality;
    const bytes = Buffer.from(JSON.stringify(rs));
    expect(fast(bytes)).toEqual(slow(bytes));
    expect(fast(Buffer.from(JSON.stringify(valid)))).toEqual([valid]);
  });

  it('interns series: the same identifiers give the same entry, from bytes or from strings', () => {
    const decoder = new ReadingDecoder();
    const batch = new ReadingBatch(2);
    decoder.decode(Buffer.from(JSON.stringify([valid, { ...valid, sensor: 's1' }, valid])), batch);
    expect(batch.n).toBe(3);
    expect(batch.series[0]).toBe(batch.series[2]);
    expect(batch.series[0]).not.toBe(batch.series[1]);
    batch.pushReading(valid, decoder.interner);
    expect(batch.series[3]).toBe(batch.series[0]);
  });

  it('keeps the value text for verbatim line protocol', () => {
    const batch = new ReadingBatch();
    new ReadingDecoder().decode(Buffer.from('{"site":"a","line":"b","machine":"c","sensor":"d","ts":1,"value":-12.50,"receivedAt":2}'), batch);
    expect(Buffer.from(batch.sources[batch.valueSource[0] - 1].subarray(batch.valueOff[0], batch.valueOff[0] + batch.valueLen[0])).toString()).toBe('-12.50');
    expect(batch.value[0]).toBe(-12.5);
  });

  it('gives up (for zod to decide) on escapes, exponents, duplicate keys, non-ASCII and negative zero', () => {
    const base = '"site":"a","line":"b","machine":"c","sensor":"d","ts":1,"receivedAt":2';
    for (const extra of ['"value":1e3', '"value":-0', '"value":1,"unit":"\\u00b0C"', '"value":1,"unit":"°C"', '"value":1,"value":2', '"value":1,"quality":"good","quality":"bad"']) {
      expect(fast(Buffer.from(`{${base},${extra}}`)), extra).toBeUndefined();
    }
    expect(fast(Buffer.from(`{"site":"\\u0061","line":"b","machine":"c","sensor":"d","ts":1,"receivedAt":2,"value":1}`))).toBeUndefined();
  });

  it('random and mutated records: whatever the decoder accepts, JSON.parse + zod accept with the same readings', () => {
    const decoder = new ReadingDecoder(new SeriesInterner());
    let accepted = 0;
    let validCount = 0;
    for (let i = 0; i < 20_000; i++) {
      const original = randomRecord();
      const bytes = rnd(2) ? mutate(original) : original;
      const expected = slow(bytes);
      const got = fast(bytes, decoder);
      if (expected) validCount++;
      if (got === undefined) {
        if (expected && process.env.SHOW_DEFERRED) console.log(bytes.toString('latin1'));
        continue;
      }
      accepted++;
      expect(expected, bytes.toString('latin1')).toBeDefined();
      expect(same(got, expected!), `${bytes.toString('latin1')}\n${JSON.stringify(got)}\n${JSON.stringify(expected)}`).toBe(true);
    }
    // The fast path must actually be taken for ordinary records, not just be safe.
    expect(accepted).toBeGreaterThan(validCount * 0.5);
  });
});
