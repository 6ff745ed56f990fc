/**
 * The worker side of WorkerEmbeddedStore (embedded-worker.ts): owns the DuckDB file through an
 * ordinary EmbeddedStore and answers the main thread's calls. Readings batches arrive as columns
 * (transferred ArrayBuffers) plus the definitions of series it has not seen yet; logs go back as
 * pino lines, metrics on request.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { workerThreadLogger } from '../../common/logger.ts';
import { prom } from '../../common/metrics.ts';
import { DEFAULT_STORE_OPTIONS, type StorageBackend } from './backend.ts';
import { EmbeddedStore } from './embedded-store.ts';
import { ReadingBatch, SeriesEntry } from '../../common/reading-batch.ts';
import { serializeStoreError, type ColumnBatch, type FromStoreWorker, type StoreWorkerInit, type ToStoreWorker } from './embedded-worker-protocol.ts';

const init = workerData.init as StoreWorkerInit;
const port = parentPort!;
const send = (m: FromStoreWorker, transfer?: ArrayBuffer[]) => port.postMessage(m, transfer ?? []);

const logger = workerThreadLogger(init.logLevel, (line) => send({ type: 'log', line }));
const registry = new prom.Registry();
/** The main thread's clock when it has one (tests move it), else ours. */
let clock: number | undefined;
const store = new EmbeddedStore({ ...DEFAULT_STORE_OPTIONS, ...init.options, logger, metrics: registry, now: init.hasClock ? () => clock ?? Date.now() : undefined });
/** Series by the main thread's id for them (ids are dense, so an array). */
let series: SeriesEntry[] = [];

function toBatch(c: ColumnBatch): ReadingBatch {
  if (c.resetSeries) series = [];
  for (const [id, site, line, machine, sensor] of c.newSeries) series[id] = new SeriesEntry(id, site, line, machine, sensor);
  const b = new ReadingBatch(1);
  b.n = c.n;
  b.ts = new Float64Array(c.ts);
  b.value = new Float64Array(c.value);
  b.receivedAt = new Float64Array(c.receivedAt);
  b.quality = new Uint8Array(c.quality);
  const ids = new Int32Array(c.series);
  const units = new Uint16Array(c.unitIdx);
  const s: SeriesEntry[] = new Array(c.n);
  const u: (string | undefined)[] = new Array(c.n);
  for (let i = 0; i < c.n; i++) {
    const e = series[ids[i]];
    if (e === undefined) throw new Error(`series ${ids[i]} was never defined`);
    s[i] = e;
    u[i] = units[i] === 0 ? undefined : c.units[units[i] - 1];
  }
  b.series = s;
  b.unit = u;
  return b;
}

async function run(m: Extract<ToStoreWorker, { type: 'call' }>): Promise<unknown> {
  if (m.op === 'writeReadingBatch') return store.writeReadingBatch(toBatch(m.batch!));
  if (m.op === 'metrics') return registry.getMetricsAsJSON();
  const fn = (store as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>)[m.op];
  if (typeof fn !== 'function') throw new Error(`unknown store operation ${m.op}`);
  return fn.apply(store as StorageBackend, m.args);
}

port.on('message', (m: ToStoreWorker) => {
  if (m.type !== 'call') return;
  if (m.now !== undefined) clock = m.now;
  run(m).then(
    (result) => send({ type: 'result', id: m.id, result }),
    (err: unknown) => send({ type: 'result', id: m.id, error: serializeStoreError(err) }),
  );
});
send({ type: 'ready' });
