import { describe, expect, it } from 'vitest';
import { DeadLetter, Reading, ScoreRecord } from '../../common/messages.ts';
import { ReadingBatch, ReadingDecoder } from '../../common/reading-batch.ts';
import { decodeMessages, encodeScores, isPlainValidReading, type DecodedBatch, type InputMessage } from './records.ts';
import { FakeDetector, reading } from './test-support/fake-detector.ts';

const msg = (offset: number, value: string | null): InputMessage => ({
  offset: String(offset),
  timestamp: '1700000000000',
  key: Buffer.from('s1/l1/m1'),
  value: value === null ? null : Buffer.from(value),
});

describe('services > anomaly > records', () => {
  it('decodes single readings and arrays, and dead-letters what is not a reading with its source', () => {
    const out: DecodedBatch = { batch: new ReadingBatch(2), deadLetters: [] };
    const a = reading({ value: 1 });
    const b = reading({ value: 2, ts: a.ts + 1 });
    // Key order and spacing the byte decoder does not take (the JSON.parse path) are accepted too.
    const c = { value: 3, ts: a.ts + 2, sensor: 'temp', machine: 'm1', line: 'l1', site: 's1', receivedAt: 5, unit: 'dég' };
    const cText = ` ${JSON.stringify(c, null, 1).replace('dég', '\\u0064\\u00e9g')}`;
    decodeMessages(
      'plantwatch.readings',
      3,
      [
        msg(10, JSON.stringify(a)),
        msg(11, JSON.stringify([a, b])),
        msg(12, '{oops'),
        msg(13, JSON.stringify({ ...a, value: 'x' })),
        msg(14, null),
        msg(15, '[]'),
        msg(16, cText),
      ],
      42,
      out,
      new ReadingDecoder(),
    );
    expect(out.batch.toReadings().map((r) => r.value)).toEqual([1, 1, 2, 3]);
    expect(cText).toContain('\\u00e9');
    expect(out.batch.readingAt(3)).toEqual(c);
    expect(out.batch.readingAt(1)).toEqual(a);
    expect(out.deadLetters.map((d) => [d.code, d.source.offset])).toEqual([
      ['PAYLOAD_NOT_JSON', '12'],
      ['READING_INVALID', '13'],
      ['PAYLOAD_EMPTY', '14'],
      ['READING_INVALID', '15'],
    ]);
    for (const d of out.deadLetters) expect(DeadLetter.safeParse(d).success).toBe(true);
    const invalid = out.deadLetters[1];
    expect(invalid.reason).toMatch(/value/);
    expect(Buffer.from(invalid.rawBase64, 'base64').toString()).toContain('"value":"x"');
    expect(invalid).toMatchObject({ component: 'anomaly', receivedAt: 42, source: { topic: 'plantwatch.readings', partition: 3 } });
  });

  it('the fast reading check never accepts what the Reading schema rejects, and accepts ordinary readings', () => {
    const base = reading({ unit: 'degC', quality: 'good' });
    const variants: unknown[] = [base, reading(), { ...base, quality: undefined }];
    const bad: Record<string, unknown[]> = {
      site: ['', 'a/b', 'x'.repeat(65), 3, null, 'é'],
      ts: [-1, 1.5, '1', Number.MAX_SAFE_INTEGER + 2, null],
      receivedAt: [-5, 0.1, undefined],
      value: [Infinity, NaN, '3', null],
      unit: ['u'.repeat(33), 5],
      quality: ['great', 1],
      extra: [1],
    };
    for (const [key, values] of Object.entries(bad)) for (const v of values) variants.push({ ...base, [key]: v });
    variants.push(null, [], 'x', 5, { ...base, __proto__: null }, JSON.parse('{"__proto__":1,"site":"a"}'));
    for (const v of variants) {
      if (isPlainValidReading(v)) expect(Reading.safeParse(v).success, JSON.stringify(v)).toBe(true);
    }
    expect(isPlainValidReading(base)).toBe(true);
    expect(isPlainValidReading(reading())).toBe(true);
    // base, reading(), quality: undefined, and the null-prototype copy of base.
    expect(variants.filter((v) => isPlainValidReading(v))).toHaveLength(4);
  });

  it('groups scores into one valid record per machine, split at maxPerRecord', async () => {
    const det = new FakeDetector();
    const rs = [
      ...Array.from({ length: 5 }, (_, i) => reading({ machine: 'm1', ts: 1000 + i })),
      ...Array.from({ length: 2 }, (_, i) => reading({ machine: 'm2', ts: 1000 + i })),
    ];
    const out = await det.scoreBatch(rs);
    const msgs = encodeScores(out.sensor, out.machine, 4, { 'x-tag': 'v' });
    expect(msgs.map((m) => m.key)).toEqual(['s1/l1/m1', 's1/l1/m1', 's1/l1/m2']);
    const decoded = msgs.map((m) => ScoreRecord.parse(JSON.parse(m.value)));
    expect(decoded.map((d) => (Array.isArray(d) ? d.length : 1))).toEqual([4, 2, 3]);
    for (const [i, m] of msgs.entries()) {
      expect(m.headers).toEqual({ 'x-tag': 'v' });
      for (const s of [decoded[i]].flat()) expect(`${s.site}/${s.line}/${s.machine}`).toBe(m.key);
    }
  });
});
