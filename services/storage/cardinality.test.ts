import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logger.ts';
import { createRegistry } from '../../common/metrics.ts';
import { CardinalityGuard } from './cardinality.ts';

describe('services/storage/cardinality', () => {
  it('refuses new series beyond the limits with a metric per point and one log line per series', async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'warn', destination: new Writable({ write: (chunk, _e, cb) => (lines.push(String(chunk)), cb()) }) });
    const metrics = createRegistry('storage');
    const guard = new CardinalityGuard({ maxSeriesPerMachine: 2, maxSeries: 3 }, logger, metrics);
    const m1 = { site: 's', line: 'l', machine: 'm1' };
    guard.preload('readings,a', 's/l/m1');
    expect(guard.admit('readings', 'readings,b', m1)).toBe(true);
    expect(guard.admit('readings', 'readings,c', m1)).toBe(false);
    expect(guard.admit('readings', 'readings,c', m1)).toBe(false);
    expect(guard.admit('readings', 'readings,a', m1)).toBe(true);
    expect(guard.admit('scores', 'scores,x', { ...m1, machine: 'm2' })).toBe(true);
    expect(guard.admit('scores', 'scores,y', { ...m1, machine: 'm2' })).toBe(false);
    await new Promise((r) => setTimeout(r, 50));
    const warnings = lines.map((l) => JSON.parse(l)).filter((l) => l.code === 'STORAGE_CARDINALITY_LIMIT');
    expect(warnings.map((w) => [w.series, w.limit])).toEqual([
      ['readings,c', 'machine'],
      ['scores,y', 'total'],
    ]);
    const text = await metrics.getSingleMetricAsString('plantwatch_storage_series_refused_total');
    expect(text).toMatch(/measurement="readings",limit="machine"[^}]*\} 2/);
    expect(text).toMatch(/measurement="scores",limit="total"[^}]*\} 1/);
    expect(guard.size).toBe(3);
  });
});
