import { describe, expect, it } from 'vitest';
import { PlantModel } from './model.ts';
import type { Backfill } from '../../services/gateway/protocol.ts';
import { testAlert } from '../../services/gateway/testing.ts';

const empty = (over: Partial<Backfill> = {}): Backfill => ({ serverTime: 0, machines: [], latest: [], latestScores: [], alerts: [], alertHistory: [], series: [], scores: [], warnings: [], ...over });
const r = (ts: number, value: number) => ({ site: 'p', line: 'l', machine: 'm', sensor: 'temp', ts, value });
const score = (ts: number, likelihood: number, warmingUp = false) => ({ kind: 'machine' as const, site: 'p', line: 'l', machine: 'm', ts, rawScore: 1, likelihood, contributions: {}, modelVersion: 'v', warmingUp });

describe('dashboards > model', () => {
  it('keeps the newest value by event time whatever the arrival order', () => {
    const m = new PlantModel();
    m.applyLive({ t: 0, readings: [r(200, 2)] });
    m.applyLive({ t: 0, readings: [r(100, 1)] });
    expect(m.machines.get('p/l/m')!.sensors.get('temp')!.value).toBe(2);
  });

  it('colours by alerts, anomaly likelihood and staleness', () => {
    const m = new PlantModel();
    m.applyBackfill(empty({ latest: [r(1000, 1)] }), true);
    const ms = m.machines.get('p/l/m')!;
    expect(m.health(ms, 2000, 15_000)).toBe('ok');
    m.applyLive({ t: 0, scores: [score(1100, 0.75)] });
    expect(m.health(ms, 2000, 15_000)).toBe('warning');
    m.applyLive({ t: 0, scores: [score(1200, 0.95, true)] });
    expect(m.health(ms, 2000, 15_000)).toBe('ok'); // the newest score is still warming up: not trusted
    expect(m.worstScore(ms).warmingUp).toBe(true);
    m.applyLive({ t: 0, scores: [score(1300, 0.95)] });
    expect(m.health(ms, 2000, 15_000)).toBe('critical');
    m.applyLive({ t: 0, scores: [score(1400, 0.1)] });
    expect(m.health(ms, 20_000, 15_000)).toBe('stale');
    const a = testAlert({ site: 'p', line: 'l', machine: 'm', updatedAt: 1500 });
    m.applyLive({ t: 0, alerts: [a] });
    expect(m.health(ms, 20_000, 15_000)).toBe('critical'); // a firing critical alert wins even when stale
    m.applyLive({ t: 0, alerts: [{ ...a, status: 'resolved', updatedAt: 1400 }] });
    expect(m.alerts.size).toBe(1); // older state change ignored
    m.applyLive({ t: 0, alerts: [{ ...a, status: 'resolved', updatedAt: 1600 }] });
    expect(m.alerts.size).toBe(0);
  });
});
