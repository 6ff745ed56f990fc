import { describe, expect, it } from 'vitest';
import { dispatchRecord, type LiveSink } from './live-source.ts';
import { TOPICS } from '../../common/topics.ts';
import { reading } from './testing.ts';

function sink() {
  const got = { readings: [] as unknown[], scores: [] as unknown[], alerts: [] as unknown[], invalid: [] as string[] };
  const s: LiveSink = {
    readings: (b) => got.readings.push(...b),
    scores: (b) => got.scores.push(...b),
    alerts: (b) => got.alerts.push(...b),
    invalid: (_t, reason) => got.invalid.push(reason),
  };
  return { s, got };
}

describe('services > gateway > live-source', () => {
  it('keeps the valid elements of a record and reports each bad one', () => {
    const { s, got } = sink();
    const good = reading('m1', 'temp', 1000, 1);
    dispatchRecord(TOPICS.readings, Buffer.from(JSON.stringify([good, { ...good, value: 'hot' }, { ...good, ts: 1001 }])), s);
    expect(got.readings).toHaveLength(2);
    expect(got.invalid).toEqual(['[1] value: Invalid input: expected number, received string']);
  });

  it('reports non-JSON, empty and unknown-shape records without throwing', () => {
    const { s, got } = sink();
    dispatchRecord(TOPICS.readings, Buffer.from('{'), s);
    dispatchRecord(TOPICS.readings, null, s);
    dispatchRecord(TOPICS.scores, Buffer.from('[]'), s);
    dispatchRecord(TOPICS.alerts, Buffer.from('{"fingerprint":"x"}'), s);
    expect(got.invalid).toHaveLength(4);
    expect(got.invalid[0]).toBe('record value is not JSON');
    expect(got.readings.length + got.scores.length + got.alerts.length).toBe(0);
  });
});
