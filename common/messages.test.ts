import { describe, expect, it } from 'vitest';
import { Reading, ReadingRecord, Score, describeZodError } from './messages.ts';
import { machineKey, parseMachineKey } from './topics.ts';

const good = { site: 's1', line: 'l1', machine: 'pump-1', sensor: 'temp', ts: 1_700_000_000_000, value: 21.5, receivedAt: 1_700_000_000_010 };

describe('common > messages', () => {
  it('accepts a valid reading and an array of readings', () => {
    expect(Reading.parse(good)).toEqual(good);
    expect(ReadingRecord.parse([good, { ...good, ts: good.ts + 1 }])).toHaveLength(2);
  });

  it('names the bad field when a reading is invalid', () => {
    const bad = Reading.safeParse({ ...good, value: Number.NaN, sensor: 'a/b' });
    expect(bad.success).toBe(false);
    const text = describeZodError(bad.error!);
    expect(text).toContain('value');
    expect(text).toContain('sensor');
  });

  it('refuses unknown fields (a typo never passes silently)', () => {
    expect(Reading.safeParse({ ...good, valeu: 1 }).success).toBe(false);
  });

  it('tells sensor and machine scores apart by kind', () => {
    const s = Score.parse({
      kind: 'machine', site: 's1', line: 'l1', machine: 'm', ts: 1, rawScore: 2, likelihood: 0.5, contributions: { temp: 1 }, modelVersion: 'v1', warmingUp: false,
    });
    expect(s.kind).toBe('machine');
    expect(Score.safeParse({ ...s, likelihood: 1.5 }).success).toBe(false);
  });

  it('round-trips the machine record key', () => {
    expect(parseMachineKey(machineKey(good))).toEqual({ site: 's1', line: 'l1', machine: 'pump-1' });
    expect(parseMachineKey('a/b')).toBeNull();
  });
});
