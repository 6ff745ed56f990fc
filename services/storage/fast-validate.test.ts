import { describe, expect, it } from 'vitest';
import { Reading, ReadingRecord } from '../../common/messages.ts';
import { isValidReadingFast, readingsFast } from './fast-validate.ts';

const good = { site: 'p1', line: 'l.1', machine: 'm:2', sensor: 's_3-x', ts: 1700000000000, value: 1.5, unit: 'degC', quality: 'good', receivedAt: 1700000000001 };

const variants: [string, unknown][] = [
  ['minimal', { site: 'a', line: 'b', machine: 'c', sensor: 'd', ts: 0, value: 0, receivedAt: 0 }],
  ['extra key', { ...good, extra: 1 }],
  ['__proto__ key', JSON.parse('{"site":"a","line":"b","machine":"c","sensor":"d","ts":1,"value":1,"receivedAt":1,"__proto__":{"x":1}}')],
  ['space in id', { ...good, site: 'a b' }],
  ['empty id', { ...good, sensor: '' }],
  ['64-char id', { ...good, sensor: 'x'.repeat(64) }],
  ['65-char id', { ...good, sensor: 'x'.repeat(65) }],
  ['unicode id', { ...good, machine: 'préss' }],
  ['negative ts', { ...good, ts: -1 }],
  ['fractional ts', { ...good, ts: 1.5 }],
  ['huge ts', { ...good, ts: 2 ** 60 }],
  ['string ts', { ...good, ts: '1700000000000' }],
  ['string value', { ...good, value: '1' }],
  ['null value', { ...good, value: null }],
  ['unit 32', { ...good, unit: 'u'.repeat(32) }],
  ['unit 33', { ...good, unit: 'u'.repeat(33) }],
  ['unit null', { ...good, unit: null }],
  ['quality other', { ...good, quality: 'ok' }],
  ['quality uncertain', { ...good, quality: 'uncertain' }],
  ['missing receivedAt', { ...good, receivedAt: undefined }],
  ['array', [good]],
  ['null', null],
  ['number', 5],
];

describe('services/storage/fast-validate', () => {
  it.each(variants)('agrees with the zod schema or defers to it: %s', (_, input) => {
    if (isValidReadingFast(input)) expect(Reading.safeParse(input).success).toBe(true);
  });

  it('accepts the common shapes so the fast path is actually taken', () => {
    expect(isValidReadingFast(good)).toBe(true);
    expect(readingsFast([good, { ...good, sensor: 'y' }])).toHaveLength(2);
    expect(readingsFast(good)).toEqual([good]);
    expect(readingsFast([])).toBeUndefined();
    expect(readingsFast([good, { ...good, ts: -1 }])).toBeUndefined();
  });

  it('random mutations never pass the fast check while failing zod', () => {
    const values: unknown[] = [0, -1, 1.5, 2 ** 53, NaN, '', 'x', 'a b', 'é', null, true, [], {}, 'x'.repeat(40), 'good'];
    const keys = [...Object.keys(good), 'other'];
    let state = 42;
    const rnd = (n: number) => ((state = (state * 1103515245 + 12345) & 0x7fffffff), state % n);
    for (let i = 0; i < 5000; i++) {
      const input: Record<string, unknown> = { ...good };
      for (let k = 0; k < 1 + rnd(2); k++) {
        const key = keys[rnd(keys.length)];
        if (rnd(5) === 0) delete input[key];
        else input[key] = values[rnd(values.length)];
      }
      if (isValidReadingFast(input)) expect(ReadingRecord.safeParse(input).success, JSON.stringify(input)).toBe(true);
    }
  });
});
