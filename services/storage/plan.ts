/**
 * Picking the resolution of a series query, shared by both stores so they answer alike.
 *
 * Rule: raw points when the range is still inside raw retention and no series has more than
 * `maxPoints` raw points in it; otherwise the smallest "nice" bucket that keeps every series within
 * `maxPoints`, read from the coarsest stored tier that divides it (raw < 1 min, the 1 min rollup
 * below 1 h, the 1 h rollup from 1 h up) and grouped on the fly when the bucket is wider than the tier.
 */
import type { SeriesQuery } from './store.ts';
import { queryInvalid } from './errors.ts';

export const MINUTE = 60_000;
export const HOUR = 3_600_000;
export const DAY = 86_400_000;

export type Tier = 'raw' | '1m' | '1h';

export interface AggregatePlan {
  tier: Tier;
  /** Bucket width of the answer; equal to the tier's own width when no regrouping is needed. */
  bucketMs: number;
  /** 'raw' is never produced here; e.g. '10s', '1m', '5m', '1h', '1d'. */
  resolution: string;
}

const NICE_BUCKETS: number[] = [
  1_000, 2_000, 5_000, 10_000, 15_000, 30_000,
  MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE,
  HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR,
  DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY,
];

export function bucketName(ms: number): string {
  if (ms % DAY === 0) return `${ms / DAY}d`;
  if (ms % HOUR === 0) return `${ms / HOUR}h`;
  if (ms % MINUTE === 0) return `${ms / MINUTE}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

export function validateSeriesQuery(q: SeriesQuery): void {
  if (!Number.isFinite(q.from) || !Number.isFinite(q.to) || q.from >= q.to) throw queryInvalid(`query range must satisfy from < to (got ${q.from}..${q.to})`);
  if (!Number.isInteger(q.maxPoints) || q.maxPoints < 1) throw queryInvalid(`maxPoints must be a positive integer (got ${q.maxPoints})`);
  if (!q.machine) throw queryInvalid('machine is required');
}

/**
 * Buckets aligned to the epoch: [from, to) touches at most floor((to-1)/b) - floor(from/b) + 1 of them.
 */
export function bucketsTouched(from: number, to: number, bucketMs: number): number {
  return Math.floor((to - 1) / bucketMs) - Math.floor(from / bucketMs) + 1;
}

/** The aggregate plan for a range that is too dense (or too old) for raw points. */
export function planAggregate(from: number, to: number, maxPoints: number, rawAvailable: boolean): AggregatePlan {
  let bucketMs = NICE_BUCKETS.find((b) => (rawAvailable || b >= MINUTE) && bucketsTouched(from, to, b) <= maxPoints);
  if (bucketMs === undefined) {
    // Beyond the nice list (years at a tiny maxPoints): whole days, still within the limit.
    const days = Math.max(1, Math.ceil((to - from) / DAY / Math.max(1, maxPoints - 1)));
    bucketMs = days * DAY;
    while (bucketsTouched(from, to, bucketMs) > maxPoints) bucketMs += DAY;
  }
  const tier: Tier = bucketMs < MINUTE ? 'raw' : bucketMs < HOUR ? '1m' : '1h';
  return { tier, bucketMs, resolution: bucketName(bucketMs) };
}

/** Last line of defence: merges neighbours so a series never exceeds maxPoints (e.g. maxPoints = 1). */
export function capPoints<P extends { ts: number; value: number; min?: number; max?: number }>(points: P[], maxPoints: number): P[] {
  if (points.length <= maxPoints) return points;
  const per = Math.ceil(points.length / maxPoints);
  const out: P[] = [];
  for (let i = 0; i < points.length; i += per) {
    const group = points.slice(i, i + per);
    const value = group.reduce((s, p) => s + p.value, 0) / group.length;
    const min = Math.min(...group.map((p) => p.min ?? p.value));
    const max = Math.max(...group.map((p) => p.max ?? p.value));
    out.push({ ...group[0], value, min, max });
  }
  return out;
}
