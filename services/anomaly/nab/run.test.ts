import { describe, expect, it } from 'vitest';
import { DetectorConfig } from '../detector/index.ts';
import { detectFile } from './run.ts';
import { scoreCorpus } from './scorer.ts';
import { loadProfiles, defaultCorpusDir } from './corpus.ts';

describe('services > anomaly > nab > run', () => {
  it('scores every row of a file in [0, 1], highest around an injected level shift', async () => {
    const n = 3000;
    const timestamps = Array.from({ length: n }, (_, i) => Date.UTC(2024, 0, 1) + i * 300_000);
    const values = timestamps.map((_, i) => 10 + Math.sin(i / 20) + (i >= 2400 ? 6 : 0) + 0.1 * Math.cos(i * 7.3));
    const file = { name: 'synthetic/level_shift.csv', timestamps, values, windows: [[2300, 2500]] as Array<[number, number]> };
    const scores = await detectFile(file, DetectorConfig.parse({}), 64);
    expect(scores).toHaveLength(n);
    for (const s of scores) expect(s >= 0 && s <= 1).toBe(true);
    let top = 0;
    for (let i = 500; i < n; i++) if (scores[i] > scores[top]) top = i;
    expect(top).toBeGreaterThanOrEqual(2400);
    expect(top).toBeLessThanOrEqual(2402);
    // and the scorer credits it as an early-enough true positive with no false positive
    const r = scoreCorpus([{ name: file.name, windows: file.windows, scores }], loadProfiles(defaultCorpusDir()).standard);
    expect(r.files[0].tp).toBe(1);
    expect(r.files[0].fp).toBe(0);
    expect(r.score).toBeGreaterThan(80);
  });
});
