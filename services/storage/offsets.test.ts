import { describe, expect, it } from 'vitest';
import { OffsetTracker } from './offsets.ts';

describe('services/storage/offsets', () => {
  it('commits only over a finished prefix, whatever order messages finish in', () => {
    const t = new OffsetTracker();
    const a = t.track('r', 0, '10', 2);
    const b = t.track('r', 0, '11', 1);
    const c = t.track('r', 0, '12', 1);
    expect(t.done(c)).toBe(false);
    expect(t.done(b)).toBe(false);
    expect(t.takeCommittable()).toEqual([]);
    expect(t.done(a)).toBe(false); // one of two points
    expect(t.done(a)).toBe(true);
    expect(t.takeCommittable()).toEqual([{ topic: 'r', partition: 0, offset: '13' }]);
    expect(t.takeCommittable()).toEqual([]);
    expect(t.pendingMessages).toBe(0);
  });

  it('keeps partitions independent and re-offers offsets after a failed commit', () => {
    const t = new OffsetTracker();
    const p0 = t.track('r', 0, '5', 1);
    t.track('r', 1, '7', 1);
    t.done(p0);
    const offered = t.takeCommittable();
    expect(offered).toEqual([{ topic: 'r', partition: 0, offset: '6' }]);
    t.restore(offered);
    expect(t.takeCommittable()).toEqual([{ topic: 'r', partition: 0, offset: '6' }]);
  });

  it('a message without points is finished at once; offsets beyond 2^53 stay exact', () => {
    const t = new OffsetTracker();
    t.track('r', 0, '9007199254740993', 0);
    expect(t.takeCommittable()).toEqual([{ topic: 'r', partition: 0, offset: '9007199254740994' }]);
  });

  it('forgets a revoked partition', () => {
    const t = new OffsetTracker();
    const m = t.track('r', 3, '1', 1);
    t.drop('r', 3);
    expect(t.done(m)).toBe(false);
    expect(t.takeCommittable()).toEqual([]);
  });

  it('a token from before a revocation cannot finish anything after the partition comes back', () => {
    const t = new OffsetTracker();
    const old = t.track('r', 3, '1', 1);
    t.drop('r', 3);
    const first = t.track('r', 3, '1', 1);
    const second = t.track('r', 3, '2', 1);
    t.done(old);
    t.done(second);
    expect(t.takeCommittable()).toEqual([]);
    t.done(first);
    expect(t.takeCommittable()).toEqual([{ topic: 'r', partition: 3, offset: '3' }]);
  });

  it('retain() keeps assigned partitions and drops the rest', () => {
    const t = new OffsetTracker();
    const keep = t.track('r', 0, '1', 1);
    t.track('r', 1, '1', 1);
    t.track('s', 0, '1', 1);
    expect(t.retain([{ topic: 'r', partition: 0 }])).toEqual([
      { topic: 'r', partition: 1 },
      { topic: 's', partition: 0 },
    ]);
    t.done(keep);
    expect(t.takeCommittable()).toEqual([{ topic: 'r', partition: 0, offset: '2' }]);
  });

  it('a redelivery from an earlier offset restarts the partition: old in-flight entries cannot block it', () => {
    const t = new OffsetTracker();
    t.track('r', 0, '5', 1);
    const stale = t.track('r', 0, '6', 1);
    // Rebalance: redelivered from the committed offset 5.
    const again5 = t.track('r', 0, '5', 1);
    const again6 = t.track('r', 0, '6', 1);
    t.done(stale);
    expect(t.takeCommittable()).toEqual([]);
    t.done(again5);
    t.done(again6);
    expect(t.takeCommittable()).toEqual([{ topic: 'r', partition: 0, offset: '7' }]);
  });
});
