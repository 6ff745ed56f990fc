import { describe, expect, it } from 'vitest';
import { DAY, HOUR, MINUTE, bucketsTouched, capPoints, planAggregate } from './plan.ts';

describe('services/storage/plan', () => {
  it('picks the smallest nice bucket within the limit and the tier that serves it', () => {
    const end = 100 * DAY;
    expect(planAggregate(end - HOUR, end, 500, true)).toEqual({ tier: 'raw', bucketMs: 10_000, resolution: '10s' });
    expect(planAggregate(end - 3 * DAY, end, 2000, true)).toEqual({ tier: '1m', bucketMs: 5 * MINUTE, resolution: '5m' });
    expect(planAggregate(end - 3 * DAY, end, 100, true)).toEqual({ tier: '1h', bucketMs: HOUR, resolution: '1h' });
    expect(planAggregate(end - 3 * DAY, end, 10, true)).toEqual({ tier: '1h', bucketMs: 12 * HOUR, resolution: '12h' });
    expect(planAggregate(end - 365 * DAY, end, 5, true).bucketMs % DAY).toBe(0);
  });

  it('never plans raw buckets when raw data has expired', () => {
    const end = 100 * DAY;
    expect(planAggregate(end - HOUR, end, 500, false)).toEqual({ tier: '1m', bucketMs: MINUTE, resolution: '1m' });
  });

  it('counts the partial buckets at both ends', () => {
    expect(bucketsTouched(30_000, 90_000, MINUTE)).toBe(2);
    expect(bucketsTouched(0, MINUTE, MINUTE)).toBe(1);
    const plan = planAggregate(30_000, 30_000 + 10 * MINUTE, 10, true);
    expect(bucketsTouched(30_000, 30_000 + 10 * MINUTE, plan.bucketMs)).toBeLessThanOrEqual(10);
  });

  it('capPoints merges neighbours keeping min and max', () => {
    const pts: { ts: number; value: number; min?: number; max?: number }[] = Array.from({ length: 10 }, (_, i) => ({ ts: i, value: i }));
    const capped = capPoints(pts, 3);
    expect(capped.length).toBeLessThanOrEqual(3);
    expect(capped[0]).toEqual({ ts: 0, value: 1.5, min: 0, max: 3 });
    expect(Math.max(...capped.map((p) => p.max!))).toBe(9);
  });
});
