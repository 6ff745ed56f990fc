/**
 * `npm run nab`: feeds every NAB corpus file through the detector with ONE configuration (the
 * defaults of DetectorConfig, or a JSON file given with --config), uses each reading's likelihood
 * as the NAB anomaly score and prints the normalised scores of the three profiles, a per-category
 * breakdown and the run time.
 *
 * Each file is an independent stream on a fresh detector, fed in event-time order in chunks of
 * `--chunk` readings (what a Kafka batch would deliver); no labels are read until scoring.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import type { Reading } from '../../../common/messages.ts';
import { createDetector, DetectorConfig, type EvidenceTrace } from '../detector/index.ts';
import { backendName, initTf } from '../tf.ts';
import { defaultCorpusDir, loadCorpus, loadProfiles, loadReference, PROFILE_NAMES, type NabFile } from './corpus.ts';
import { byCategory, scoreCorpus } from './scorer.ts';

/** `onEvidence` (analysis only) receives each row's evidence ratios (see EvidenceTrace). */
export async function detectFile(file: NabFile, config: DetectorConfig, chunk: number, onEvidence?: (row: number, ratios: Float64Array) => void): Promise<Float64Array> {
  const traced: Float64Array[] = [];
  const trace: EvidenceTrace | undefined = onEvidence ? (_key, _n, ev) => traced.push(Float64Array.from(ev)) : undefined;
  const det = await createDetector(config, { trace });
  const scores = new Float64Array(file.values.length);
  const [category, base] = file.name.split('/');
  const machine = base.replace(/\.csv$/, '').replace(/[^A-Za-z0-9_.:-]/g, '_').slice(0, 64);
  try {
    for (let s = 0; s < file.values.length; s += chunk) {
      const batch: Reading[] = [];
      for (let i = s; i < Math.min(file.values.length, s + chunk); i++) {
        batch.push({ site: 'nab', line: category, machine, sensor: 'value', ts: file.timestamps[i], value: file.values[i], receivedAt: file.timestamps[i] });
      }
      traced.length = 0;
      const out = await det.scoreBatch(batch);
      const rejected = new Set(out.rejected.map((r) => r.reading));
      let k = 0;
      for (let j = 0; j < batch.length; j++) {
        if (rejected.has(batch[j])) continue; // a rejected row keeps score 0
        if (onEvidence) onEvidence(s + j, traced[k]);
        scores[s + j] = out.sensor[k++].likelihood;
      }
    }
  } finally {
    det.dispose();
  }
  return scores;
}

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      corpus: { type: 'string' },
      config: { type: 'string' },
      chunk: { type: 'string', default: '64' },
      filter: { type: 'string' },
      out: { type: 'string' },
      csv: { type: 'string' },
    },
  });
  const dir = args.corpus ?? defaultCorpusDir();
  const config = DetectorConfig.parse(args.config ? JSON.parse(readFileSync(args.config, 'utf8')) : {});
  const chunk = Number(args.chunk);
  await initTf();
  let files = loadCorpus(dir);
  if (args.filter) files = files.filter((f) => f.name.includes(args.filter!));
  const profiles = loadProfiles(dir);
  const t0 = performance.now();
  const scored: Array<{ name: string; windows: Array<[number, number]>; scores: Float64Array }> = [];
  let rows = 0;
  for (const f of files) {
    const t = performance.now();
    const scores = await detectFile(f, config, chunk);
    rows += f.values.length;
    scored.push({ name: f.name, windows: f.windows, scores });
    if (process.env.NAB_VERBOSE) console.error(`${f.name}: ${f.values.length} rows, ${((performance.now() - t) / 1000).toFixed(1)} s`);
    if (args.out) {
      const p = join(args.out, f.name);
      mkdirSync(dirname(p), { recursive: true });
      writeFileSync(p, 'timestamp,value,anomaly_score\n' + f.values.map((v, i) => `${new Date(f.timestamps[i]).toISOString()},${v},${scores[i]}`).join('\n') + '\n');
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  console.log(`NAB corpus: ${files.length} files, ${rows} rows, ${scored.reduce((s, f) => s + f.windows.length, 0)} windows; detector ${config.modelVersion} (tfjs ${backendName}), chunk ${chunk}`);
  console.log(`detector run time: ${seconds.toFixed(1)} s (${Math.round(rows / seconds)} rows/s)\n`);
  const results = PROFILE_NAMES.map((p) => ({ p, r: scoreCorpus(scored, profiles[p]) }));
  // Baselines scored by the same scorer in the same run: published detectors' outputs (when the
  // full corpus is run and their outputs are available).
  const baselines: Array<{ name: string; scores: Record<string, number> }> = [];
  if (!args.filter) {
    for (const det of ['numenta', 'windowedGaussian']) {
      try {
        const ref = loadReference(dir, det, files);
        const sf = files.map((f, i) => ({ name: f.name, windows: f.windows, scores: ref[i].scores }));
        baselines.push({ name: `${det} (published outputs)`, scores: Object.fromEntries(PROFILE_NAMES.map((p) => [p, scoreCorpus(sf, profiles[p]).score])) });
      } catch {
        // reference outputs not vendored here: no baseline row
      }
    }
  }
  console.log('| detector | ' + PROFILE_NAMES.join(' | ') + ' | TP / FP / FN (standard) |');
  console.log('|---|---|---|---|---|');
  const count = (r: (typeof results)[number]['r'], k: 'tp' | 'fp' | 'fn') => r.files.reduce((s, f) => s + f[k], 0);
  const std = results[0].r;
  console.log(`| plantwatch ${config.modelVersion} | ${results.map(({ r }) => r.score.toFixed(2)).join(' | ')} | ${count(std, 'tp')} / ${count(std, 'fp')} / ${count(std, 'fn')} |`);
  for (const b of baselines) console.log(`| ${b.name} | ${PROFILE_NAMES.map((p) => b.scores[p].toFixed(2)).join(' | ')} | |`);
  console.log('\n| profile | score | threshold | TP | FP | FN |');
  console.log('|---|---|---|---|---|---|');
  for (const { p, r } of results) console.log(`| ${p} | ${r.score.toFixed(2)} | ${r.threshold.toPrecision(6)} | ${count(r, 'tp')} | ${count(r, 'fp')} | ${count(r, 'fn')} |`);
  if (args.csv) {
    const rows = [['detector', ...PROFILE_NAMES, 'seconds'].join(',')];
    rows.push([`plantwatch-${config.modelVersion}`, ...results.map(({ r }) => r.score.toFixed(4)), seconds.toFixed(1)].join(','));
    for (const b of baselines) rows.push([b.name.split(' ')[0], ...PROFILE_NAMES.map((p) => b.scores[p].toFixed(4)), ''].join(','));
    mkdirSync(dirname(args.csv), { recursive: true });
    writeFileSync(args.csv, rows.join('\n') + '\n');
  }
  console.log('\n| category | files | windows | ' + PROFILE_NAMES.join(' | ') + ' |');
  console.log('|---|---|---|' + PROFILE_NAMES.map(() => '---').join('|') + '|');
  const cats = results.map(({ p, r }) => byCategory(r, profiles[p]));
  cats[0].forEach((c, i) => {
    const cells = cats.map((cs) => (cs[i].score === null ? `raw ${cs[i].raw.toFixed(2)}` : cs[i].score!.toFixed(2)));
    console.log(`| ${c.category} | ${c.files} | ${c.windows} | ${cells.join(' | ')} |`);
  });
  if (process.env.NAB_VERBOSE) {
    console.log('\n| file (standard) | windows | TP | FP | raw |');
    for (const f of results[0].r.files) console.log(`| ${f.name} | ${f.windows} | ${f.tp} | ${f.fp} | ${f.raw.toFixed(2)} |`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
