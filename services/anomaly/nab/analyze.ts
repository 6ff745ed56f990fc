/**
 * `tsx services/anomaly/nab/analyze.ts [--config FILE.json] [--set key.path=value ...]`: where the NAB
 * points are lost. Runs the corpus like `run.ts`, then at the standard profile's optimal threshold
 * prints, per window, when (and by which evidence kind) it was first detected, and per file, what the
 * false positives cost and which evidence kind raised them. Development tool: labels are read only
 * after the detector has run.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DetectorConfig, EVIDENCE_KINDS } from '../detector/index.ts';
import { initTf } from '../tf.ts';
import { defaultCorpusDir, loadCorpus, loadProfiles, PROFILE_NAMES } from './corpus.ts';
import { detectFile } from './run.ts';
import { probationaryLength, scoreCorpus, sweepScores } from './scorer.ts';

/** `a.b=1` → sets obj.a.b = 1 (numbers, booleans and JSON parsed). */
export function applySet(obj: Record<string, unknown>, assignment: string): void {
  const eq = assignment.indexOf('=');
  const path = assignment.slice(0, eq).split('.');
  const raw = assignment.slice(eq + 1);
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    value = raw;
  }
  let o = obj;
  for (const k of path.slice(0, -1)) o = (o[k] ??= {}) as Record<string, unknown>;
  o[path.at(-1)!] = value;
}

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      config: { type: 'string' },
      set: { type: 'string', multiple: true },
      filter: { type: 'string' },
      quiet: { type: 'boolean' },
      fp: { type: 'boolean' },
      dump: { type: 'string' },
      chunk: { type: 'string', default: '64' },
    },
  });
  const raw = args.config ? JSON.parse(readFileSync(args.config, 'utf8')) : {};
  for (const s of args.set ?? []) applySet(raw, s);
  const config = DetectorConfig.parse(raw);
  await initTf();
  const dir = defaultCorpusDir();
  let files = loadCorpus(dir);
  if (args.filter) files = files.filter((f) => f.name.includes(args.filter!));
  const profiles = loadProfiles(dir);
  const K = EVIDENCE_KINDS.length;
  const scored: Array<{ name: string; windows: Array<[number, number]>; scores: Float64Array }> = [];
  const kinds: Float64Array[] = [];
  const t0 = Date.now();
  for (const f of files) {
    const kl = new Float64Array(f.values.length * K);
    const scores = await detectFile(f, config, Number(args.chunk), (row, ev) => kl.set(ev, row * K));
    scored.push({ name: f.name, windows: f.windows, scores });
    kinds.push(kl);
  }
  const secs = (Date.now() - t0) / 1000;
  if (args.dump) {
    // Per-row evidence ratios of every file, for offline experiments with how they are combined.
    const meta = files.map((f, i) => ({ name: f.name, windows: f.windows, rows: f.values.length, offset: 0, kinds: K, i }));
    let off = 0;
    for (const m of meta) (m.offset = off), (off += m.rows * K);
    const all = new Float32Array(off);
    meta.forEach((m) => all.set(kinds[m.i], m.offset));
    writeFileSync(args.dump + '.json', JSON.stringify({ kinds: EVIDENCE_KINDS, files: meta }));
    writeFileSync(args.dump + '.f32', Buffer.from(all.buffer));
  }
  const results = PROFILE_NAMES.map((p) => scoreCorpus(scored, profiles[p]));
  const std = results[0];
  const thr = std.threshold;
  const sum = (k: 'tp' | 'fp' | 'fn') => std.files.reduce((s, f) => s + f[k], 0);
  console.log(`${results.map((r) => r.score.toFixed(2)).join(' / ')}  thr ${thr.toPrecision(6)}  TP ${sum('tp')} FP ${sum('fp')} FN ${sum('fn')}  (${secs.toFixed(1)} s)`);
  if (args.quiet) return;
  const kindOf = (fi: number, i: number): string => {
    const kl = kinds[fi];
    let best = -1;
    let bv = -1;
    for (let k = 0; k < K; k++) if (kl[i * K + k] > bv) (bv = kl[i * K + k]), (best = k);
    return bv > 0 ? EVIDENCE_KINDS[best] : 'none';
  };
  let tpSum = 0;
  const fpByKind: Record<string, { n: number; cost: number }> = {};
  const tpByKind: Record<string, number> = {};
  let clustered = 0;
  let clusteredCost = 0;
  const fileRows: Array<{ name: string; fpCost: number; fp: number; tp: number; windows: number; line: string }> = [];
  const p = profiles.standard;
  for (let fi = 0; fi < scored.length; fi++) {
    const f = scored[fi];
    const n = f.scores.length;
    const { sweep, windowOf } = sweepScores(n, f.windows, p);
    const start = probationaryLength(n);
    const firstHit = new Array<number>(f.windows.length).fill(-1);
    const maxIn = new Array<number>(f.windows.length).fill(0);
    let fpCost = 0;
    let fp = 0;
    let lastDet = -1e9;
    const fpNotes: string[] = [];
    for (let i = start; i < n; i++) {
      const w = windowOf[i];
      if (w >= 0) maxIn[w] = Math.max(maxIn[w], f.scores[i]);
      if (!(f.scores[i] >= thr)) continue;
      if (w >= 0) {
        if (firstHit[w] < 0) firstHit[w] = i;
      } else {
        fp++;
        fpCost += sweep[i];
        const k = kindOf(fi, i);
        fpByKind[k] ??= { n: 0, cost: 0 };
        fpByKind[k].n++;
        fpByKind[k].cost += sweep[i];
        if (i - lastDet <= 20) {
          clustered++;
          clusteredCost += sweep[i];
        }
        if (args.fp) fpNotes.push(`${i}:${k}:${sweep[i].toFixed(3)}`);
      }
      lastDet = i;
    }
    const parts: string[] = [];
    f.windows.forEach(([a, b], w) => {
      if (firstHit[w] >= 0) {
        const s = sweep[firstHit[w]];
        tpSum += s;
        const k = kindOf(fi, firstHit[w]);
        tpByKind[k] = (tpByKind[k] ?? 0) + 1;
        parts.push(`w${w}[${a}-${b}] hit@${((firstHit[w] - a) / (b - a + 1)).toFixed(2)} ${k} ${s.toFixed(2)}`);
      } else parts.push(`w${w}[${a}-${b}] MISS max ${maxIn[w].toFixed(6)}${a < start ? ' (in probation)' : ''}`);
    });
    fileRows.push({ name: f.name, fpCost, fp, tp: firstHit.filter((x) => x >= 0).length, windows: f.windows.length, line: parts.join('; ') + (fpNotes.length ? `\n      FP ${fpNotes.join(' ')}` : '') });
  }
  for (const r of fileRows) console.log(`${r.name.padEnd(58)} FP ${String(r.fp).padStart(3)} cost ${r.fpCost.toFixed(2).padStart(6)} | ${r.line}`);
  const fpCostTotal = fileRows.reduce((s, r) => s + r.fpCost, 0);
  console.log(`\nTP sweep sum ${tpSum.toFixed(2)} over ${sum('tp')} hits (mean ${(tpSum / sum('tp')).toFixed(3)}), FN ${sum('fn')}, FP cost ${fpCostTotal.toFixed(2)} (${sum('fp')} FPs; ${clustered} within 20 rows of the previous detection, cost ${clusteredCost.toFixed(2)})`);
  console.log('first detections by kind:', JSON.stringify(tpByKind));
  console.log('FPs by kind:', JSON.stringify(Object.fromEntries(Object.entries(fpByKind).map(([k, v]) => [k, `${v.n} / ${v.cost.toFixed(2)}`]))));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
