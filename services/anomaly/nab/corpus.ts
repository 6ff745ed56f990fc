/** Loads the NAB corpus (data, labels, profiles) from a folder laid out like `../shared/nab/`. */
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import type { CostProfile } from './scorer.ts';

export interface NabFile {
  /** `<category>/<file>.csv` */
  name: string;
  timestamps: number[];
  values: number[];
  /** Inclusive row-index windows. */
  windows: Array<[number, number]>;
}

export const PROFILE_NAMES = ['standard', 'reward_low_FP_rate', 'reward_low_FN_rate'] as const;
export type ProfileName = (typeof PROFILE_NAMES)[number];

/** NAB timestamps (`2014-07-01 00:00:00[.ffffff]`) are naive; read them as UTC. */
export function parseNabTime(s: string): number {
  const t = Date.parse(s.trim().replace(' ', 'T').replace(/(\.\d{3})\d*$/, '$1') + 'Z');
  if (!Number.isFinite(t)) throw new Error(`bad NAB timestamp: ${s}`);
  return t;
}

/** Default corpus location: vendored copy in bench/nab, else the shared one. */
export function defaultCorpusDir(): string {
  const candidates = [new URL('../../../bench/nab/', import.meta.url).pathname, '/work/shared/nab/'];
  for (const c of candidates) if (existsSync(join(c, 'labels', 'combined_windows.json'))) return c;
  throw new Error(`NAB corpus not found in ${candidates.join(' or ')}`);
}

export function readCsvColumns(path: string, column: string): { timestamps: number[]; col: number[] } {
  const lines = readFileSync(path, 'utf8').split(/\r?\n/).filter((l) => l.length > 0);
  const header = lines[0].split(',');
  const ci = header.indexOf(column);
  if (ci < 0) throw new Error(`${path}: no column ${column}`);
  const timestamps: number[] = [];
  const col: number[] = [];
  for (let i = 1; i < lines.length; i++) {
    const parts = lines[i].split(',');
    timestamps.push(parseNabTime(parts[0]));
    col.push(Number(parts[ci]));
  }
  return { timestamps, col };
}

/** Converts timestamp windows to inclusive row-index windows. */
export function windowRows(timestamps: number[], windows: Array<[string, string]>): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const [a, b] of windows) {
    const ta = parseNabTime(a);
    const tb = parseNabTime(b);
    let s = -1;
    let e = -1;
    for (let i = 0; i < timestamps.length; i++) {
      if (s < 0 && timestamps[i] >= ta) s = i;
      if (timestamps[i] <= tb) e = i;
    }
    if (s >= 0 && e >= s) out.push([s, e]);
  }
  return out;
}

export function loadCorpus(dir: string): NabFile[] {
  const labels = JSON.parse(readFileSync(join(dir, 'labels', 'combined_windows.json'), 'utf8')) as Record<string, Array<[string, string]>>;
  const files: NabFile[] = [];
  for (const category of readdirSync(join(dir, 'data')).sort()) {
    for (const file of readdirSync(join(dir, 'data', category)).sort()) {
      if (!file.endsWith('.csv')) continue;
      const name = `${category}/${file}`;
      const { timestamps, col } = readCsvColumns(join(dir, 'data', category, file), 'value');
      files.push({ name, timestamps, values: col, windows: windowRows(timestamps, labels[name] ?? []) });
    }
  }
  return files;
}

export function loadProfiles(dir: string): Record<ProfileName, CostProfile> {
  const raw = JSON.parse(readFileSync(join(dir, 'profiles.json'), 'utf8')) as Record<string, { CostMatrix: CostProfile }>;
  const out = {} as Record<ProfileName, CostProfile>;
  for (const p of PROFILE_NAMES) out[p] = raw[p].CostMatrix;
  return out;
}

/** Reads a published detector's results (`<detector>/<category>/<file>.csv` with `anomaly_score`). */
export function loadReferenceScores(resultsDir: string, files: NabFile[]): Array<{ name: string; scores: number[] }> {
  return files.map((f) => ({ name: f.name, scores: readCsvColumns(join(resultsDir, f.name), 'anomaly_score').col }));
}

/**
 * Reads a published detector's scores from the vendored form `reference-scores/<detector>.json.gz`
 * (`{ "<category>/<file>.csv": [score per row] }`), falling back to the original per-file CSVs in
 * `reference-results/<detector>/`.
 */
export function loadReference(dir: string, detector: string, files: NabFile[]): Array<{ name: string; scores: number[] }> {
  const gz = join(dir, 'reference-scores', `${detector}.json.gz`);
  if (existsSync(gz)) {
    const all = JSON.parse(gunzipSync(readFileSync(gz)).toString('utf8')) as Record<string, number[]>;
    return files.map((f) => {
      const scores = all[f.name];
      if (!scores || scores.length !== f.values.length) throw new Error(`${gz}: no or misaligned scores for ${f.name}`);
      return { name: f.name, scores };
    });
  }
  return loadReferenceScores(join(dir, 'reference-results', detector), files);
}
