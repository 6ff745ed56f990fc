import { describe, expect, it } from 'vitest';
import { defaultCorpusDir, loadCorpus, loadProfiles, loadReference } from './corpus.ts';
import { probationaryLength, scaledSigmoid, scoreCorpus, sweepScores } from './scorer.ts';

const dir = defaultCorpusDir();
const files = loadCorpus(dir);
const profiles = loadProfiles(dir);

function corpusScore(scores: Array<{ name: string; scores: ArrayLike<number> }>, profile: keyof typeof profiles): number {
  return scoreCorpus(
    files.map((f, i) => ({ name: f.name, windows: f.windows, scores: scores[i].scores })),
    profiles[profile],
  ).score;
}

describe('services > anomaly > nab > scorer', () => {
  it('loads the whole corpus: 58 files, 116 windows', () => {
    expect(files).toHaveLength(58);
    expect(files.reduce((s, f) => s + f.windows.length, 0)).toBe(116);
  });

  it('reproduces the published numenta (HTM) scores', () => {
    const ref = loadReference(dir, 'numenta', files);
    expect(corpusScore(ref, 'standard')).toBeCloseTo(70.1, 1);
    const lowFp = corpusScore(ref, 'reward_low_FP_rate');
    expect(lowFp).toBeGreaterThanOrEqual(63.1);
    expect(lowFp).toBeLessThanOrEqual(63.25);
    expect(corpusScore(ref, 'reward_low_FN_rate')).toBeCloseTo(74.32, 1);
  });

  it('reproduces the published windowedGaussian scores', () => {
    const ref = loadReference(dir, 'windowedGaussian', files);
    expect(corpusScore(ref, 'standard')).toBeCloseTo(39.65, 1);
    expect(corpusScore(ref, 'reward_low_FP_rate')).toBeCloseTo(20.87, 1);
    expect(corpusScore(ref, 'reward_low_FN_rate')).toBeCloseTo(47.41, 1);
  });

  it('scores the null detector 0 and a perfect detector 100', () => {
    const nul = files.map((f) => ({ name: f.name, scores: new Float64Array(f.values.length) }));
    const perfect = files.map((f) => {
      const s = new Float64Array(f.values.length);
      for (const [a] of f.windows) s[a] = 1;
      return { name: f.name, scores: s };
    });
    for (const p of ['standard', 'reward_low_FP_rate', 'reward_low_FN_rate'] as const) {
      expect(corpusScore(nul, p)).toBe(0);
      expect(corpusScore(perfect, p)).toBeCloseTo(100, 6);
    }
  });

  it('applies the sigmoid sweep: early in a window ≈ tpWeight, far after a window ≈ -fpWeight', () => {
    expect(scaledSigmoid(4)).toBe(-1);
    expect(scaledSigmoid(0)).toBe(0);
    const p = profiles.standard;
    const { sweep, windowOf } = sweepScores(400, [[100, 199]], p);
    expect(sweep[50]).toBe(-p.fpWeight); // before the first window
    expect(sweep[100]).toBeCloseTo(p.tpWeight, 12); // left edge
    expect(sweep[199]).toBeGreaterThan(0);
    expect(sweep[199]).toBeLessThan(0.1); // right edge
    expect(windowOf[150]).toBe(0);
    expect(sweep[200]).toBeLessThan(0);
    expect(sweep[200]).toBeGreaterThan(-0.01); // just after: cheap
    expect(sweep[399]).toBeCloseTo(-p.fpWeight, 3); // far after: full cost
    expect(probationaryLength(4032)).toBe(604);
    expect(probationaryLength(22695)).toBe(750);
  });
});
