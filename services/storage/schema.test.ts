import { describe, expect, it } from 'vitest';
import { alertLine, escapeTag, machineScoreLine, readingLine, sensorScoreLine, stringField } from './schema.ts';
import { parseSeriesTags, mergeRuns } from './influx-store.ts';

describe('services/storage/schema (line protocol)', () => {
  it('writes readings with sorted identifier tags, value fields and ms event time', () => {
    expect(readingLine({ site: 'p1', line: 'l.1', machine: 'm:2', sensor: 'temp_1', ts: 1700000000123, value: 5, unit: 'degC', quality: 'good', receivedAt: 1700000000200 })).toBe(
      'readings,line=l.1,machine=m:2,sensor=temp_1,site=p1 value=5,unit="degC",quality="good",received_at=1700000000200i 1700000000123',
    );
    expect(readingLine({ site: 'p', line: 'l', machine: 'm', sensor: 's', ts: 1, value: -1.5e-7, receivedAt: 2 })).toBe('readings,line=l,machine=m,sensor=s,site=p value=-1.5e-7,received_at=2i 1');
  });

  it('escapes free text in fields and tags', () => {
    expect(stringField('say "hi" \\ bye')).toBe('"say \\"hi\\" \\\\ bye"');
    expect(escapeTag('a b,c=d')).toBe('a\\ b\\,c\\=d');
    const line = alertLine({ fingerprint: 'fp 1', rule: 'temp high', severity: 'critical', status: 'firing', site: 'p', line: 'l', machine: 'm', labels: { a: 'b' }, summary: 'too "hot"', value: null, startsAt: 1, endsAt: null, acknowledgedBy: null, acknowledgedAt: null, silencedUntil: null, updatedAt: 5 });
    expect(line).toBe('alerts,fingerprint=fp\\ 1,line=l,machine=m,rule=temp\\ high,severity=critical,site=p status="firing",summary="too \\"hot\\"",labels="{\\"a\\":\\"b\\"}",starts_at=1i,updated_at=5i 5');
  });

  it('writes sensor and machine scores', () => {
    expect(sensorScoreLine({ kind: 'sensor', site: 'p', line: 'l', machine: 'm', sensor: 's', ts: 9, value: 1, predicted: 2, lower: 0, upper: 3, rawScore: 0.5, likelihood: 0.25, modelVersion: 'v1', warmingUp: true, forecast: { horizonMs: 60000, value: 4, lower: 3, upper: 5 }, timeToLimitMs: null })).toBe(
      'scores,line=l,machine=m,sensor=s,site=p value=1,predicted=2,lower=0,upper=3,raw_score=0.5,likelihood=0.25,model_version="v1",warming_up=true,forecast_horizon_ms=60000i,forecast_value=4,forecast_lower=3,forecast_upper=5 9',
    );
    expect(machineScoreLine({ kind: 'machine', site: 'p', line: 'l', machine: 'm', ts: 9, rawScore: 1, likelihood: 0.5, contributions: { s: 1 }, modelVersion: 'v', warmingUp: false })).toBe(
      'machine_scores,line=l,machine=m,site=p raw_score=1,likelihood=0.5,contributions="{\\"s\\":1}",model_version="v",warming_up=false 9',
    );
  });

  it('parses series keys from SHOW SERIES and merges dirty runs', () => {
    expect(parseSeriesTags('readings,line=l,machine=m\\ 1,sensor=s,site=p')).toEqual({ line: 'l', machine: 'm 1', sensor: 's', site: 'p' });
    expect(mergeRuns([0, 10, 20, 50], 10)).toEqual([
      [0, 30],
      [50, 60],
    ]);
  });
});
