/**
 * Raw detector cost, one implementation beside another in the same run: CPU µs per reading, GC time
 * per million readings, heap per stream (and, with --objects, heap objects per stream), for batches of
 * `--batch` readings over S streams (machines of 10 sensors), each stream warmed past a full window.
 *
 *   npx tsx services/anomaly/detector/bench-raw.ts [--streams 10000,100000] [--before DIR/index.ts]
 *        [--paths columns,batch] [--warm 24] [--rounds 8] [--min-readings 800000] [--batch 2048] [--objects 10000]
 *
 * Measured: `--rounds` rounds of every stream, more if that is under `--min-readings` readings.
 *
 * Each (implementation, path, streams) runs in its own process (own heap, --expose-gc), in
 * alternating order. `--before` is another copy of this folder's index.ts (e.g. from a `git worktree`
 * of an older commit) scored through `scoreBatch`; this folder's detector runs through `scoreColumns`
 * (the service's path: one reused column batch, interned series), `shared` (the same, with another
 * owner of the series entries' cache slot, like the service's score encoder) and/or `scoreBatch`
 * (Reading objects, built outside the timed calls). The machine is shared: compare ratios, run it twice.
 */
import { spawn } from 'node:child_process';
import { PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { getHeapSnapshot } from 'node:v8';
import { fileURLToPath } from 'node:url';
import type { Reading } from '../../../common/messages.ts';
import { ReadingBatch, SeriesInterner } from '../../../common/reading-batch.ts';

const { values: args } = parseArgs({
  options: {
    role: { type: 'string', default: 'main' },
    streams: { type: 'string', default: '10000,100000' },
    before: { type: 'string' },
    paths: { type: 'string', default: 'columns' },
    warm: { type: 'string', default: '24' },
    rounds: { type: 'string', default: '8' },
    'min-readings': { type: 'string', default: '800000' },
    batch: { type: 'string', default: '2048' },
    objects: { type: 'string', default: '0' },
    // child only
    impl: { type: 'string' },
    path: { type: 'string' },
    n: { type: 'string' },
  },
});

const SENSORS = 10;
const HERE = fileURLToPath(new URL('./index.ts', import.meta.url));

interface Result {
  cpuUsPerReading: number;
  gcMsPerM: number;
  heapBytesPerStream: number;
  bufferBytesPerStream: number;
  stateBytesPerStream: number;
  /** One full (mark-compact) collection with the state in the heap: what every major GC costs. */
  fullGcMs: number;
  /** One full snapshot() (capture + complete: the state as JSON-ready objects). */
  snapshotMs: number;
  objectsPerStream: number | null;
  readings: number;
}

/** Heap objects right now (the node count in a heap snapshot's header). */
async function heapObjects(): Promise<number> {
  const s = getHeapSnapshot();
  let head = '';
  for await (const chunk of s) {
    head += chunk.toString();
    const m = /"node_count":(\d+)/.exec(head);
    if (m) {
      s.destroy();
      return Number(m[1]);
    }
    if (head.length > 1 << 16) break;
  }
  s.destroy();
  throw new Error('no node_count in the heap snapshot header');
}

async function child(): Promise<void> {
  const impl = args.impl!;
  const path = args.path!;
  const S = Number(args.n);
  const batch = Number(args.batch);
  const gc = (globalThis as { gc?: () => void }).gc!;
  const countObjects = Number(args.objects) === S;
  const mod = (await import(impl)) as typeof import('./index.ts');
  // The shared model trains at its mature rate from the start (as after MATURE_READINGS in
  // bench/anomaly.ts): otherwise young-model training steps, the same in every implementation, hide the rest.
  const det = await mod.createDetector(mod.DetectorConfig.parse({ model: { trainEvery: 8000 } }));
  const interner = new SeriesInterner();
  const entries = Array.from({ length: S }, (_, s) => interner.lookup("site", `line${Math.floor(s / SENSORS) % 7}`, `m${Math.floor(s / SENSORS)}`, `s${s % SENSORS}`));
  gc();
  const heap0 = process.memoryUsage();
  const objects0 = countObjects ? await heapObjects() : 0;
  const input = new ReadingBatch(batch);
  let seed = 12345;
  const noise = () => ((seed = (seed * 16807) % 2147483647) / 2147483647 - 0.5);
  // Readings of round r for streams [from, to): one round = every stream once, in machine order.
  const t0 = 1_700_000_000_000;
  const fill = (flat: number): { count: number } => {
    input.clear();
    const end = Math.min(flat + batch, totalReadings);
    for (let k = flat; k < end; k++) {
      const r = Math.floor(k / S);
      const s = k % S;
      const i = input.n++;
      input.series[i] = entries[s];
      input.ts[i] = t0 + r * 1000;
      input.value[i] = 50 + (s % 13) + 5 * Math.sin(r / (20 + (s % 17))) + noise();
      input.receivedAt[i] = input.ts[i];
      input.quality[i] = 0;
    }
    return { count: end - flat };
  };
  const warm = Number(args.warm);
  const rounds = Number(args.rounds);
  const totalReadings = (warm + rounds) * S;
  /** `shared`: another owner (the service's score encoder) takes the entries' cache slot after every call. */
  const encoder = {};
  const score = async (): Promise<void> => {
    if (path !== 'batch') {
      await det.scoreColumns(input);
      if (path === 'shared') for (let i = 0; i < input.n; i++) Object.assign(input.series[i], { cacheOwner: encoder, cacheValue: i });
      return;
    }
    const readings: Reading[] = input.toReadings();
    await det.scoreBatch(readings);
  };
  let flat = 0;
  for (; flat < warm * S; flat += batch) {
    fill(flat);
    if (flat + batch > warm * S) input.truncate(warm * S - flat);
    await score();
  }
  flat = warm * S;
  gc();
  // GC entries arrive asynchronously: keep those that started inside the measured span.
  const gcs: { start: number; duration: number }[] = [];
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcs.push({ start: e.startTime, duration: e.duration });
  });
  obs.observe({ entryTypes: ['gc'] });
  const from = performance.now();
  let cpuUs = 0;
  let measured = 0;
  for (; flat < totalReadings; flat += batch) {
    const { count } = fill(flat);
    // Reading objects (scoreBatch) are built outside the timed call, like a decoder would.
    const readings = path === 'batch' ? input.toReadings() : undefined;
    const c0 = process.cpuUsage();
    if (readings) await det.scoreBatch(readings);
    else await det.scoreColumns(input);
    const c = process.cpuUsage(c0);
    if (path === 'shared') for (let i = 0; i < input.n; i++) Object.assign(input.series[i], { cacheOwner: encoder, cacheValue: i });
    cpuUs += c.user + c.system;
    measured += count;
  }
  const to = performance.now();
  await new Promise((r) => setTimeout(r, 200));
  obs.disconnect();
  let gcMs = 0;
  for (const g of gcs) if (g.start >= from && g.start <= to) gcMs += g.duration;
  input.clear();
  gc();
  const g0 = performance.now();
  gc();
  const fullGcMs = performance.now() - g0;
  const heap1 = process.memoryUsage();
  const objects1 = countObjects ? await heapObjects() : 0;
  const s0 = performance.now();
  const snap = await det.snapshot();
  const snapshotMs = performance.now() - s0;
  if (snap.streams.length !== S) throw new Error(`snapshot has ${snap.streams.length} streams, expected ${S}`);
  const res: Result = {
    cpuUsPerReading: cpuUs / measured,
    gcMsPerM: (gcMs / measured) * 1e6,
    heapBytesPerStream: (heap1.heapUsed - heap0.heapUsed) / S,
    bufferBytesPerStream: (heap1.arrayBuffers - heap0.arrayBuffers) / S,
    stateBytesPerStream: det.stateBytes() / det.streamCount(),
    objectsPerStream: countObjects ? (objects1 - objects0) / S : null,
    fullGcMs,
    snapshotMs,
    readings: measured,
  };
  process.stdout.write(`RESULT ${JSON.stringify(res)}\n`);
  det.dispose();
}

function runChild(impl: string, path: string, n: number): Promise<Result> {
  const rounds = Math.max(Number(args.rounds), Math.ceil(Number(args['min-readings']) / n));
  return new Promise((resolve, reject) => {
    const argv = ['--expose-gc', '--max-old-space-size=6144', '--import', 'tsx', fileURLToPath(import.meta.url), '--role', 'child', '--impl', impl, '--path', path, '--n', String(n), '--warm', args.warm!, '--rounds', String(rounds), '--batch', args.batch!, '--objects', args.objects!];
    const p = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    p.on('error', reject);
    p.on('exit', (code) => {
      const m = /RESULT (.*)/.exec(out);
      if (code !== 0 || !m) reject(new Error(`child ${impl} ${path} ${n} exited ${code}: ${out.slice(-500)}`));
      else resolve(JSON.parse(m[1]) as Result);
    });
  });
}

async function main(): Promise<void> {
  const counts = args.streams!.split(',').map(Number);
  const variants: { name: string; impl: string; path: string }[] = [];
  if (args.before) variants.push({ name: 'before: scoreBatch', impl: args.before, path: 'batch' });
  const names: Record<string, string> = { columns: 'scoreColumns', shared: 'scoreColumns, cache slot owned by another', batch: 'scoreBatch' };
  for (const p of args.paths!.split(',')) variants.push({ name: `this: ${names[p]}`, impl: HERE, path: p });
  console.log(`raw detector, batches of ${args.batch}, ${args.warm} warm-up rounds then ≥ ${args.rounds} measured rounds of every stream (≥ ${args['min-readings']} readings); ratios against the first row of each stream count`);
  console.log('| streams | detector | CPU µs/reading | ratio | GC ms per 1M readings | ratio | JS heap bytes/stream | ratio | ArrayBuffer bytes/stream (incl. tfjs wasm growth) | heap objects/stream | stateBytes()/stream | one full GC ms | ratio | snapshot() s | ratio |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const n of counts) {
    const results: Result[] = [];
    for (const v of variants) results.push(await runChild(v.impl, v.path, n));
    const base = results[0];
    const r2 = (x: number, y: number) => (y > 0 ? (x / y).toFixed(2) : '–');
    results.forEach((r, i) => {
      console.log(
        `| ${n} | ${variants[i].name} | ${r.cpuUsPerReading.toFixed(2)} | ${r2(r.cpuUsPerReading, base.cpuUsPerReading)} | ${r.gcMsPerM.toFixed(0)} | ${r2(r.gcMsPerM, base.gcMsPerM)} | ${r.heapBytesPerStream.toFixed(0)} | ${r2(r.heapBytesPerStream, base.heapBytesPerStream)} | ${r.bufferBytesPerStream.toFixed(0)} | ${r.objectsPerStream === null ? '–' : r.objectsPerStream.toFixed(1)} | ${r.stateBytesPerStream.toFixed(0)} | ${r.fullGcMs.toFixed(0)} | ${r2(r.fullGcMs, base.fullGcMs)} | ${(r.snapshotMs / 1000).toFixed(1)} | ${r2(r.snapshotMs, base.snapshotMs)} |`,
      );
    });
  }
}

if (args.role === 'child') await child();
else await main();
