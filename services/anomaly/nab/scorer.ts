/**
 * NAB v1.x scorer (Numenta Anomaly Benchmark), written from the rules in the corpus README:
 * windows → per-row sweep scores (scaled sigmoid), one threshold for the whole corpus chosen to
 * maximise the pooled score, then normalisation between the null detector and a perfect one.
 */

export interface CostProfile {
  tpWeight: number;
  fnWeight: number;
  fpWeight: number;
  tnWeight: number;
}

export interface ScoredFile {
  /** `<category>/<file>.csv` */
  name: string;
  /** Anomaly score per row, in time order. */
  scores: ArrayLike<number>;
  /** Anomaly windows as inclusive row-index ranges [start, end], in time order. */
  windows: Array<[number, number]>;
}

/** NAB's scaled sigmoid: 2/(1+e^(5x)) - 1 for x ≤ 3, else -1. */
export function scaledSigmoid(x: number): number {
  return x > 3 ? -1 : 2 / (1 + Math.exp(5 * x)) - 1;
}

export function probationaryLength(rows: number): number {
  return Math.min(Math.floor(0.15 * rows), 750);
}

/**
 * Sweep score of every row as if it were a detection, and the window each row belongs to (-1 when
 * outside every window).
 */
export function sweepScores(rows: number, windows: Array<[number, number]>, p: CostProfile): { sweep: Float64Array; windowOf: Int32Array } {
  const sweep = new Float64Array(rows);
  const windowOf = new Int32Array(rows).fill(-1);
  const maxTp = scaledSigmoid(-1);
  let w = 0;
  let prevRight = -1;
  let prevWidth = 0;
  for (let i = 0; i < rows; i++) {
    while (w < windows.length && windows[w][1] < i) {
      prevRight = windows[w][1];
      prevWidth = windows[w][1] - windows[w][0] + 1;
      w++;
    }
    if (w < windows.length && i >= windows[w][0]) {
      const [, b] = windows[w];
      const width = b - windows[w][0] + 1;
      const pos = -(b - i + 1) / width;
      sweep[i] = (scaledSigmoid(pos) * p.tpWeight) / maxTp;
      windowOf[i] = w;
    } else if (prevRight < 0) {
      sweep[i] = -1 * p.fpWeight;
    } else {
      sweep[i] = scaledSigmoid(Math.abs(prevRight - i) / (prevWidth - 1)) * p.fpWeight;
    }
  }
  return { sweep, windowOf };
}

export interface FileResult {
  name: string;
  raw: number;
  windows: number;
  tp: number;
  fp: number;
  fn: number;
}

export interface CorpusResult {
  threshold: number;
  raw: number;
  nullRaw: number;
  perfectRaw: number;
  /** 100 (raw - null) / (perfect - null) */
  score: number;
  files: FileResult[];
}

interface Row {
  score: number;
  sweep: number;
  /** Global window id (file-local ids offset), -1 outside windows. */
  window: number;
}

/** Scores a whole corpus under one profile, NAB style. */
export function scoreCorpus(files: ScoredFile[], profile: CostProfile): CorpusResult {
  const rows: Row[] = [];
  const perFile: Array<{ name: string; sweep: Float64Array; windowOf: Int32Array; scores: ArrayLike<number>; start: number; windowBase: number; windows: number }> = [];
  let windowBase = 0;
  for (const f of files) {
    const n = f.scores.length;
    const { sweep, windowOf } = sweepScores(n, f.windows, profile);
    const start = probationaryLength(n);
    for (let i = start; i < n; i++) {
      rows.push({ score: f.scores[i], sweep: sweep[i], window: windowOf[i] >= 0 ? windowBase + windowOf[i] : -1 });
    }
    perFile.push({ name: f.name, sweep, windowOf, scores: f.scores, start, windowBase, windows: f.windows.length });
    windowBase += f.windows.length;
  }
  const totalWindows = windowBase;
  // Walk thresholds from "nothing detected" (above 1) down through every distinct score.
  rows.sort((a, b) => b.score - a.score);
  const best = new Float64Array(totalWindows).fill(-profile.fnWeight);
  let total = -profile.fnWeight * totalWindows;
  let bestTotal = total;
  let bestThreshold = 1.1;
  let i = 0;
  while (i < rows.length) {
    const t = rows[i].score;
    while (i < rows.length && rows[i].score === t) {
      const r = rows[i];
      if (r.window < 0) total += r.sweep;
      else if (r.sweep > best[r.window]) {
        total += r.sweep - best[r.window];
        best[r.window] = r.sweep;
      }
      i++;
    }
    if (total > bestTotal) {
      bestTotal = total;
      bestThreshold = t;
    }
  }
  const fileResults = perFile.map((f) => scoreFileAt(f, bestThreshold, profile));
  const raw = fileResults.reduce((s, f) => s + f.raw, 0);
  const nullRaw = -profile.fnWeight * totalWindows;
  const perfectRaw = profile.tpWeight * totalWindows;
  return { threshold: bestThreshold, raw, nullRaw, perfectRaw, score: normalise(raw, nullRaw, perfectRaw), files: fileResults };
}

export function normalise(raw: number, nullRaw: number, perfectRaw: number): number {
  return perfectRaw === nullRaw ? 0 : (100 * (raw - nullRaw)) / (perfectRaw - nullRaw);
}

function scoreFileAt(
  f: { name: string; sweep: Float64Array; windowOf: Int32Array; scores: ArrayLike<number>; start: number; windows: number },
  threshold: number,
  profile: CostProfile,
): FileResult {
  const best = new Float64Array(f.windows).fill(-profile.fnWeight);
  const hit = new Uint8Array(f.windows);
  let fpSum = 0;
  let fp = 0;
  for (let i = f.start; i < f.scores.length; i++) {
    if (!(f.scores[i] >= threshold)) continue;
    const w = f.windowOf[i];
    if (w < 0) {
      fpSum += f.sweep[i];
      fp++;
    } else {
      hit[w] = 1;
      if (f.sweep[i] > best[w]) best[w] = f.sweep[i];
    }
  }
  let raw = fpSum;
  for (const b of best) raw += b;
  const tp = hit.reduce((s, h) => s + h, 0);
  return { name: f.name, raw, windows: f.windows, tp, fp, fn: f.windows - tp };
}

/** Per-category normalised scores (category = the folder part of the file name). */
export function byCategory(result: CorpusResult, profile: CostProfile): Array<{ category: string; files: number; windows: number; raw: number; score: number | null }> {
  const cats = new Map<string, { files: number; windows: number; raw: number }>();
  for (const f of result.files) {
    const c = f.name.split('/')[0];
    const e = cats.get(c) ?? { files: 0, windows: 0, raw: 0 };
    e.files++;
    e.windows += f.windows;
    e.raw += f.raw;
    cats.set(c, e);
  }
  return [...cats.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([category, e]) => ({
      category,
      ...e,
      // A category without windows has no perfect score to normalise against: only its raw cost is shown.
      score: e.windows > 0 ? normalise(e.raw, -profile.fnWeight * e.windows, profile.tpWeight * e.windows) : null,
    }));
}
