import { describe, expect, it } from 'vitest';
import type { Alert, Reading, Score } from '../../common/messages.ts';
import { ManualClock } from './clock.ts';
import { AlertEngine } from './engine.ts';
import type { JournalOp } from './journal.ts';
import { Rule, fingerprintOf, type RuleInput } from './rules.ts';

function setup(rules: RuleInput[]) {
  const clock = new ManualClock();
  const changes: Alert[] = [];
  const ops: JournalOp[] = [];
  const engine = new AlertEngine({
    configRules: rules.map((r) => Rule.parse(r)),
    clock,
    resolvedRetentionMs: 3_600_000,
    persist: (op) => ops.push(op),
    onChange: (a) => changes.push(a),
  });
  return { clock, engine, changes, ops };
}

const at = { site: 's1', line: 'l1', machine: 'm1' };
function reading(sensor: string, ts: number, value: number): Reading {
  return { ...at, sensor, ts, value, receivedAt: ts };
}
function sensorScore(sensor: string, ts: number, likelihood: number, warmingUp = false): Score {
  return { kind: 'sensor', ...at, sensor, ts, value: 1, predicted: 1, lower: 0, upper: 2, rawScore: likelihood * 10, likelihood, modelVersion: 'v1', warmingUp };
}

describe('services > alerts > engine', () => {
  it('likelihood rule: pending, then firing after the duration in event time, then resolved', () => {
    const { engine, changes } = setup([{ id: 'anom', type: 'likelihood', threshold: 0.9, forMs: 30_000 }]);
    const t0 = 1_000_000;
    engine.ingestScore(sensorScore('temp', t0, 0.95));
    expect(changes.map((c) => c.status)).toEqual(['pending']);
    engine.ingestScore(sensorScore('temp', t0 + 29_000, 0.97));
    expect(changes).toHaveLength(1);
    engine.ingestScore(sensorScore('temp', t0 + 30_000, 0.93));
    expect(changes.map((c) => c.status)).toEqual(['pending', 'firing']);
    expect(changes[1].startsAt).toBe(t0);
    // Repeated high scores are not new state changes.
    engine.ingestScore(sensorScore('temp', t0 + 31_000, 0.99));
    expect(changes).toHaveLength(2);
    engine.ingestScore(sensorScore('temp', t0 + 40_000, 0.2));
    expect(changes.map((c) => c.status)).toEqual(['pending', 'firing', 'resolved']);
    expect(changes[2].endsAt).toBe(t0 + 40_000);
    expect(changes[2].fingerprint).toBe(fingerprintOf('anom', { ...at, sensor: 'temp' }));
  });

  it('a pending alert that clears before the duration never fires', () => {
    const { engine, changes } = setup([{ id: 'anom', type: 'likelihood', threshold: 0.9, forMs: 30_000 }]);
    engine.ingestScore(sensorScore('temp', 1000, 0.95));
    engine.ingestScore(sensorScore('temp', 5000, 0.1));
    expect(changes.map((c) => c.status)).toEqual(['pending', 'resolved']);
  });

  it('ignores warming-up scores, out-of-order data and targets outside the scope', () => {
    const { engine, changes } = setup([{ id: 'anom', type: 'likelihood', threshold: 0.9, scope: { sensor: 'temp|vib*' } }]);
    engine.ingestScore(sensorScore('temp', 1000, 0.99, true));
    engine.ingestScore(sensorScore('pressure', 1000, 0.99));
    expect(changes).toHaveLength(0);
    engine.ingestScore(sensorScore('vib-x', 2000, 0.99));
    expect(changes.map((c) => [c.sensor, c.status])).toEqual([['vib-x', 'firing']]);
    engine.ingestScore(sensorScore('vib-x', 1500, 0.1)); // older than what was seen: ignored
    expect(changes).toHaveLength(1);
  });

  it('machine scores make machine-level alerts (no sensor)', () => {
    const { engine, changes } = setup([{ id: 'anom', type: 'likelihood', threshold: 0.9, source: 'machine' }]);
    engine.ingestScore(sensorScore('temp', 1000, 0.99));
    engine.ingestScore({ kind: 'machine', ...at, ts: 1000, rawScore: 9, likelihood: 0.95, contributions: { temp: 1 }, modelVersion: 'v1', warmingUp: false });
    expect(changes).toHaveLength(1);
    expect(changes[0].sensor).toBeUndefined();
    expect(changes[0].labels).toMatchObject({ alertname: 'anom', machine: 'm1', severity: 'warning' });
  });

  it('threshold rule with hysteresis: fires above the limit, resolves only below limit - hysteresis', () => {
    const { engine, changes } = setup([{ id: 'hot', type: 'threshold', above: 80, hysteresis: 5, severity: 'critical', scope: { sensor: 'temp' } }]);
    engine.ingestReading(reading('temp', 1000, 79));
    expect(changes).toHaveLength(0);
    engine.ingestReading(reading('temp', 2000, 81));
    expect(changes.map((c) => c.status)).toEqual(['firing']);
    engine.ingestReading(reading('temp', 3000, 78)); // inside the band: still firing
    engine.ingestReading(reading('temp', 4000, 81));
    expect(changes).toHaveLength(1);
    engine.ingestReading(reading('temp', 5000, 74.5));
    expect(changes.map((c) => c.status)).toEqual(['firing', 'resolved']);
    expect(changes[0].severity).toBe('critical');
    expect(changes[0].summary).toContain('81');
  });

  it('threshold rule with a duration and a lower limit', () => {
    const { engine, changes } = setup([{ id: 'lowp', type: 'threshold', below: 2, forMs: 10_000 }]);
    engine.ingestReading(reading('p', 0, 1));
    engine.ingestReading(reading('p', 9_999, 1.5));
    expect(changes.map((c) => c.status)).toEqual(['pending']);
    engine.ingestReading(reading('p', 10_000, 1.5));
    expect(changes.map((c) => c.status)).toEqual(['pending', 'firing']);
  });

  it('rate-of-change rule compares against the oldest reading in the window', () => {
    const { engine, changes } = setup([{ id: 'jump', type: 'rate', maxPerSecond: 5, windowMs: 10_000, direction: 'rising' }]);
    engine.ingestReading(reading('t', 0, 10));
    engine.ingestReading(reading('t', 5_000, 30)); // +4/s
    expect(changes).toHaveLength(0);
    engine.ingestReading(reading('t', 6_000, 45)); // +35 over 6 s ≈ 5.8/s
    expect(changes.map((c) => c.status)).toEqual(['firing']);
    expect(changes[0].value).toBeCloseTo(35 / 6, 3);
    engine.ingestReading(reading('t', 20_000, 46)); // window moved on: slow again
    expect(changes.map((c) => c.status)).toEqual(['firing', 'resolved']);
  });

  it('deadman: fires on the wall clock after silence and resolves when data returns', () => {
    const { engine, clock, changes } = setup([{ id: 'silent', type: 'deadman', per: 'sensor', afterMs: 60_000 }]);
    engine.ingestReading(reading('temp', 1, 1));
    engine.ingestReading(reading('rpm', 1, 1));
    clock.advance(30_000);
    engine.ingestReading(reading('rpm', 2, 1));
    clock.advance(29_999);
    engine.tick();
    expect(changes).toHaveLength(0);
    clock.advance(1);
    engine.tick();
    expect(changes.map((c) => [c.sensor, c.status])).toEqual([['temp', 'firing']]);
    engine.tick();
    expect(changes).toHaveLength(1);
    engine.ingestReading(reading('temp', 3, 1));
    expect(changes.map((c) => [c.sensor, c.status])).toEqual([
      ['temp', 'firing'],
      ['temp', 'resolved'],
    ]);
  });

  it('forgets a target silent for forgetTargetsAfterMs and resolves its deadman alert', () => {
    const clock = new ManualClock();
    const changes: Alert[] = [];
    const engine = new AlertEngine({
      configRules: [Rule.parse({ id: 'silent', type: 'deadman', per: 'sensor', afterMs: 1000 })],
      clock,
      resolvedRetentionMs: 3_600_000,
      forgetTargetsAfterMs: 10_000,
      persist: () => 0,
      onChange: (a) => changes.push(a),
    });
    engine.ingestReading(reading('old', 1, 1));
    clock.advance(1000);
    engine.tick();
    clock.advance(9000);
    engine.tick();
    expect(changes.map((c) => c.status)).toEqual(['firing', 'resolved']);
    expect(changes[1].summary).toContain('forgotten');
    clock.advance(60_000);
    engine.tick();
    expect(changes).toHaveLength(2); // no longer watched
    engine.ingestReading(reading('old', 2, 1)); // it comes back: watched again
    clock.advance(1000);
    engine.tick();
    expect(changes.map((c) => c.status)).toEqual(['firing', 'resolved', 'firing']);
  });

  it('intake deadman: fires once when nothing arrives from anywhere, resolves on the next reading', () => {
    const { engine, clock, changes } = setup([{ id: 'intake', type: 'deadman', per: 'intake', afterMs: 5000, severity: 'critical' }]);
    clock.advance(60_000);
    engine.tick();
    expect(changes).toHaveLength(0); // nothing was ever seen: nothing to miss yet
    engine.ingestReading(reading('a', 1, 1));
    engine.ingestReading({ ...reading('b', 1, 1), machine: 'm2' });
    clock.advance(4999);
    engine.tick();
    expect(changes).toHaveLength(0);
    clock.advance(1);
    engine.tick();
    engine.tick();
    expect(changes.map((c) => [c.site, c.machine, c.sensor, c.status])).toEqual([['_all', '_all', undefined, 'firing']]);
    expect(engine.intakeSilent()).toBe(true);
    expect(changes[0].summary).toContain('No readings from anywhere');
    engine.ingestReading({ ...reading('b', 2, 1), machine: 'm2' });
    expect(changes.map((c) => c.status)).toEqual(['firing', 'resolved']);
    expect(engine.intakeSilent()).toBe(false);
  });

  it('machine deadman marks the machine offline', () => {
    const { engine, clock } = setup([{ id: 'offline', type: 'deadman', per: 'machine', afterMs: 1000 }]);
    engine.ingestReading(reading('temp', 1, 1));
    expect(engine.machineOffline('s1', 'l1', 'm1')).toBe(false);
    clock.advance(1000);
    engine.tick();
    expect(engine.machineOffline('s1', 'l1', 'm1')).toBe(true);
    expect(engine.isOfflineRule('offline')).toBe(true);
  });

  it('acknowledge and silence change the alert and keep its status', () => {
    const { engine, clock, changes } = setup([{ id: 'anom', type: 'likelihood', threshold: 0.9 }]);
    engine.ingestScore(sensorScore('temp', 1000, 0.99));
    const fp = changes[0].fingerprint;
    const acked = engine.acknowledge(fp, 'ana', 'looking at it');
    expect(acked).toMatchObject({ status: 'firing', acknowledgedBy: 'ana', acknowledgedAt: clock.now() });
    expect(engine.get(fp)?.ackComment).toBe('looking at it');
    const silenced = engine.silence(fp, clock.now() + 60_000, 'ana');
    expect(silenced?.silencedUntil).toBe(clock.now() + 60_000);
    expect(engine.acknowledge('nope', 'x')).toBeNull();
    expect(changes).toHaveLength(3);
  });

  it('changing or deleting a rule resolves its open alerts', () => {
    const { engine, changes } = setup([{ id: 'anom', type: 'likelihood', threshold: 0.9 }]);
    engine.ingestScore(sensorScore('temp', 1000, 0.99));
    engine.upsertRule(Rule.parse({ id: 'anom', type: 'likelihood', threshold: 0.999 }));
    expect(changes.map((c) => c.status)).toEqual(['firing', 'resolved']);
    expect(engine.rule('anom')).toMatchObject({ threshold: 0.999 });
    engine.ingestScore(sensorScore('temp', 2000, 0.9995));
    expect(engine.deleteRule('anom')).toBe(true);
    expect(changes.map((c) => c.status)).toEqual(['firing', 'resolved', 'firing', 'resolved']);
    expect(engine.rules()).toHaveLength(0);
    expect(engine.deleteRule('anom')).toBe(false);
  });

  it('restores alerts, rule overrides and known targets from its snapshot and journal', () => {
    const a = setup([{ id: 'anom', type: 'likelihood', threshold: 0.9 }, { id: 'dead', type: 'deadman', per: 'sensor', afterMs: 10_000 }]);
    a.engine.ingestScore(sensorScore('temp', 1000, 0.99));
    a.engine.ingestReading(reading('temp', 1000, 1));
    a.engine.upsertRule(Rule.parse({ id: 'extra', type: 'threshold', above: 5 }));
    const b = setup([{ id: 'anom', type: 'likelihood', threshold: 0.9 }, { id: 'dead', type: 'deadman', per: 'sensor', afterMs: 10_000 }]);
    b.engine.restore(undefined, a.ops.map((op) => ({ op })));
    expect(b.engine.list().map((x) => x.rule)).toEqual(['anom']);
    expect(b.engine.rule('extra')).toBeDefined();
    // The restored sensor is watched again, with a fresh grace period.
    b.clock.advance(10_000);
    b.engine.tick();
    expect(b.changes.map((c) => [c.rule, c.status])).toEqual([['dead', 'firing']]);
  });
});
