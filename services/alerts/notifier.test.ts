import { describe, expect, it } from 'vitest';
import type { Score } from '../../common/messages.ts';
import { ManualClock } from './clock.ts';
import { GroupingConfig } from './config.schema.ts';
import { AlertEngine } from './engine.ts';
import { Notifier, type GroupNotification, type GroupState } from './notifier.ts';
import { Rule, type RuleInput } from './rules.ts';

const RULES: RuleInput[] = [
  { id: 'anom', type: 'likelihood', threshold: 0.9 },
  { id: 'offline', type: 'deadman', per: 'machine', afterMs: 10_000, severity: 'critical' },
];
const WITH_INTAKE: RuleInput[] = [...RULES, { id: 'intake', type: 'deadman', per: 'intake', afterMs: 10_000, severity: 'critical' }];

function setup(grouping: Partial<GroupingConfig> = {}, inhibit = true, rules: RuleInput[] = RULES) {
  const clock = new ManualClock();
  const sent: GroupNotification[] = [];
  const states: GroupState[] = [];
  let notifier: Notifier;
  const engine = new AlertEngine({
    configRules: rules.map((r) => Rule.parse(r)),
    clock,
    resolvedRetentionMs: 3_600_000,
    persist: () => 0,
    onChange: (a) => notifier.onAlertChange(a, engine.isIntakeRule(a.rule) ? 'all' : engine.isOfflineRule(a.rule) ? 'machine' : null),
  });
  notifier = new Notifier({
    grouping: GroupingConfig.parse({ groupWaitMs: 30_000, groupIntervalMs: 300_000, repeatIntervalMs: 3_600_000, ...grouping }),
    clock,
    lookup: (fp) => engine.get(fp),
    isInhibited: (a) =>
      inhibit && !engine.isIntakeRule(a.rule) && (engine.intakeSilent() || (!engine.isOfflineRule(a.rule) && engine.machineOffline(a.site, a.line, a.machine, a.fingerprint))),
    commit: (state, n) => {
      states.push(state);
      if (n) sent.push(n);
    },
  });
  return { clock, engine, notifier, sent, states };
}

function score(machine: string, sensor: string, likelihood: number, ts = 1000): Score {
  return { kind: 'sensor', site: 's', line: 'l', machine, sensor, ts, value: 1, predicted: 1, lower: 0, upper: 2, rawScore: 1, likelihood, modelVersion: 'v', warmingUp: false };
}

describe('services > alerts > notifier', () => {
  it('a storm of 1,000 anomalies on one machine becomes one grouped notification', () => {
    const { clock, engine, sent } = setup();
    for (let i = 0; i < 1000; i++) engine.ingestScore(score('m1', `sensor-${i}`, 0.99));
    clock.advance(29_999);
    expect(sent).toHaveLength(0);
    clock.advance(1);
    expect(sent).toHaveLength(1);
    expect(sent[0].alerts).toHaveLength(1000);
    expect(sent[0].groupKey).toBe('site=s,line=l,machine=m1');
    // More scores of the same firing alerts: no news, nothing sent until the repeat interval.
    for (let i = 0; i < 1000; i++) engine.ingestScore(score('m1', `sensor-${i}`, 0.995, 2000));
    clock.advance(3_599_999);
    expect(sent).toHaveLength(1);
  });

  it('separate machines are separate groups', () => {
    const { clock, engine, sent } = setup();
    engine.ingestScore(score('m1', 'a', 0.99));
    engine.ingestScore(score('m2', 'a', 0.99));
    clock.advance(30_000);
    expect(sent.map((n) => n.groupKey).sort()).toEqual(['site=s,line=l,machine=m1', 'site=s,line=l,machine=m2']);
  });

  it('changes wait for the group interval; resolved alerts are notified once and leave the group', () => {
    const { clock, engine, sent, notifier } = setup();
    engine.ingestScore(score('m1', 'a', 0.99, 1000));
    clock.advance(30_000);
    expect(sent).toHaveLength(1);
    engine.ingestScore(score('m1', 'a', 0.1, 2000));
    clock.advance(299_999);
    expect(sent).toHaveLength(1);
    clock.advance(1);
    expect(sent).toHaveLength(2);
    expect(sent[1].status).toBe('resolved');
    expect(sent[1].alerts.map((r) => r.alert.status)).toEqual(['resolved']);
    clock.advance(10 * 3_600_000);
    expect(sent).toHaveLength(2);
    expect(notifier.groupCount()).toBe(0);
  });

  it('an alert that fires and resolves inside group_wait is not notified at all', () => {
    const { clock, engine, sent } = setup();
    engine.ingestScore(score('m1', 'a', 0.99, 1000));
    engine.ingestScore(score('m1', 'a', 0.1, 2000));
    clock.advance(60_000);
    expect(sent).toHaveLength(0);
  });

  it('repeats unacknowledged firing alerts after the repeat interval, not acknowledged ones', () => {
    const { clock, engine, sent } = setup();
    engine.ingestScore(score('m1', 'a', 0.99));
    clock.advance(30_000);
    clock.advance(3_600_000);
    expect(sent).toHaveLength(2);
    engine.acknowledge(sent[0].alerts[0].alert.fingerprint, 'op');
    clock.advance(3 * 3_600_000);
    expect(sent).toHaveLength(2);
  });

  it('silenced alerts are left out until the silence ends', () => {
    const { clock, engine, sent } = setup();
    engine.ingestScore(score('m1', 'a', 0.99));
    const fp = engine.list()[0].fingerprint;
    engine.silence(fp, clock.now() + 120_000, 'op');
    clock.advance(60_000);
    expect(sent).toHaveLength(0);
    clock.advance(60_001);
    expect(sent).toHaveLength(1);
    expect(sent[0].alerts[0].alert.fingerprint).toBe(fp);
  });

  it('inhibits the machine\'s other alerts while it is offline', () => {
    const { clock, engine, sent } = setup({ groupWaitMs: 1000 });
    engine.ingestReading({ site: 's', line: 'l', machine: 'm1', sensor: 'a', ts: 1, value: 1, receivedAt: 1 });
    clock.advance(10_000);
    engine.tick(); // machine offline fires
    engine.ingestScore(score('m1', 'b', 0.99)); // a child alert while offline
    clock.advance(1000);
    expect(sent).toHaveLength(1);
    expect(sent[0].alerts.map((r) => r.alert.rule)).toEqual(['offline']);
  });

  it('when nothing arrives from anywhere, one intake notification replaces one per machine', () => {
    const { clock, engine, sent } = setup({ groupWaitMs: 1000 }, true, WITH_INTAKE);
    for (let m = 0; m < 20; m++) engine.ingestReading({ site: 's', line: 'l', machine: `m${m}`, sensor: 'a', ts: 1, value: 1, receivedAt: 1 });
    clock.advance(10_000);
    engine.tick(); // 20 machines offline + intake silent, in the same tick
    clock.advance(1000);
    expect(sent).toHaveLength(1);
    expect(sent[0].alerts.map((r) => r.alert.rule)).toEqual(['intake']);
    // Data flows again from 19 machines: m7 really is offline, and now it is notified.
    for (let m = 0; m < 20; m++) if (m !== 7) engine.ingestReading({ site: 's', line: 'l', machine: `m${m}`, sensor: 'a', ts: 2, value: 1, receivedAt: 2 });
    clock.advance(300_000);
    const later = sent.slice(1);
    expect(later.map((n) => n.groupKey).sort()).toEqual(['site=_all,line=_all,machine=_all', 'site=s,line=l,machine=m7']);
    expect(later.find((n) => n.groupKey.endsWith('m7'))!.alerts.map((r) => [r.alert.rule, r.alert.status])).toEqual([['offline', 'firing']]);
    expect(later.find((n) => n.groupKey.endsWith('_all'))!.status).toBe('resolved');
  });

  it('without inhibition the child alert is notified with the offline alert', () => {
    const { clock, engine, sent } = setup({ groupWaitMs: 1000 }, false);
    engine.ingestReading({ site: 's', line: 'l', machine: 'm1', sensor: 'a', ts: 1, value: 1, receivedAt: 1 });
    clock.advance(10_000);
    engine.tick();
    engine.ingestScore(score('m1', 'b', 0.99));
    clock.advance(1000);
    expect(sent[0].alerts.map((r) => r.alert.rule).sort()).toEqual(['anom', 'offline']);
  });

  it('a notification that could not be committed (journal write failed) is retried, not lost', () => {
    const clock = new ManualClock();
    const sent: GroupNotification[] = [];
    const errors: string[] = [];
    let failures = 2;
    let notifier: Notifier;
    const engine = new AlertEngine({
      configRules: RULES.map((r) => Rule.parse(r)),
      clock,
      resolvedRetentionMs: 3_600_000,
      persist: () => 0,
      onChange: (a) => notifier.onAlertChange(a),
    });
    notifier = new Notifier({
      grouping: GroupingConfig.parse({ groupWaitMs: 1000, groupIntervalMs: 10_000 }),
      clock,
      lookup: (fp) => engine.get(fp),
      isInhibited: () => false,
      commit: (_state, n) => {
        if (failures-- > 0) throw new Error('ENOSPC: no space left on device');
        if (n) sent.push(n);
      },
      onError: (err) => errors.push((err as Error).message),
    });
    engine.ingestScore(score('m1', 'a', 0.99, 1000));
    clock.advance(1000); // fails
    clock.advance(5000); // fails again
    expect(sent).toHaveLength(0);
    clock.advance(5000);
    expect(sent.map((n) => n.status)).toEqual(['firing']);
    expect(errors).toHaveLength(2);
    failures = 1;
    engine.ingestScore(score('m1', 'a', 0.1, 2000));
    clock.advance(10_000); // the resolved flush fails once…
    clock.advance(5000); // …and is retried with the resolved alert still in the group
    expect(sent.map((n) => n.status)).toEqual(['firing', 'resolved']);
  });

  it('after a restart, a resolution that was not yet notified is still notified', () => {
    const a = setup();
    a.engine.ingestScore(score('m1', 'a', 0.99, 1000));
    a.clock.advance(30_000);
    a.engine.ingestScore(score('m1', 'a', 0.1, 2000)); // resolved, waiting for group_interval
    a.notifier.close();
    // "Restart": a new notifier with the engine's records and the persisted group state.
    const b = setup();
    b.clock.advance(a.clock.now() - b.clock.now());
    b.engine.restore(a.engine.snapshot(), []);
    b.notifier.restore(a.states, [], b.engine.all());
    b.clock.advance(300_000);
    expect(b.sent).toHaveLength(1);
    expect(b.sent[0].status).toBe('resolved');
  });
});
