import { describe, expect, it } from 'vitest';
import { Coalescer, type LiveItem } from './coalescer.ts';

const item = (key: string, ts: number, kind: 'r' | 's' | 'a' = 'r'): LiveItem => ({ kind, key, mk: 'p/l/m', ts, data: ts });

describe('services > gateway > coalescer', () => {
  it('sends the first value of a quiet series on the next flush', () => {
    const c = new Coalescer(() => 250);
    expect(c.offer(item('a', 1), 0)).toBe('queued');
    expect(c.drain(0).map((i) => i.ts)).toEqual([1]);
  });

  it('keeps only the newest value within the interval and releases it when the interval has passed', () => {
    const c = new Coalescer(() => 250);
    c.offer(item('a', 1), 0);
    c.drain(0);
    expect(c.offer(item('a', 2), 10)).toBe('queued');
    expect(c.offer(item('a', 3), 20)).toBe('replaced');
    expect(c.drain(100)).toEqual([]);
    expect(c.drain(249)).toEqual([]);
    expect(c.drain(250).map((i) => i.ts)).toEqual([3]);
    expect(c.pendingCount).toBe(0);
  });

  it('never emits a value older than one queued or sent', () => {
    const c = new Coalescer(() => 0);
    c.offer(item('a', 10), 0);
    expect(c.offer(item('a', 5), 0)).toBe('late');
    expect(c.offer(item('a', 10), 0)).toBe('late');
    expect(c.drain(0).map((i) => i.ts)).toEqual([10]);
    expect(c.offer(item('a', 9), 1)).toBe('late');
    expect(c.drain(1)).toEqual([]);
    expect(c.emittedTs('r', 'a')).toBe(10);
  });

  it('limits each series separately and kinds separately', () => {
    const c = new Coalescer((k) => (k === 'a' ? 0 : 1000));
    for (let t = 0; t < 10; t++) {
      c.offer(item('x', t), t);
      c.offer(item('y', t), t);
      c.offer(item('x', t, 'a'), t);
    }
    const first = c.drain(10);
    expect(first.map((i) => `${i.kind}${i.key}${i.ts}`).sort()).toEqual(['ax9', 'rx9', 'ry9']);
    c.offer(item('x', 20, 'a'), 20);
    c.offer(item('x', 20), 20);
    expect(c.drain(21).map((i) => `${i.kind}${i.key}${i.ts}`)).toEqual(['ax20']);
  });

  it('bounds the number of series it tracks', () => {
    const c = new Coalescer(() => 0, 100);
    for (let i = 0; i < 1000; i++) {
      c.offer(item(`s${i}`, 1), 0);
      c.drain(0);
    }
    expect(c.size).toBeLessThanOrEqual(100);
  });
});
