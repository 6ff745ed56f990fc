/**
 * The embedded store with DuckDB in its own worker thread (the default for the embedded store).
 *
 * Why: DuckDB's appender runs synchronously on the calling thread (~0.9 µs per reading for
 * fill + flush). In the writer's thread it queues behind decoding, so the writer reached only
 * 40-60% of the raw append rate. Here the main thread decodes and batches while the worker appends
 * the previous batch: the two overlap on two cores.
 *
 * The worker runs an ordinary EmbeddedStore (embedded-worker-thread.ts), so every guarantee,
 * query and the cardinality guard are that class's; this is a proxy with the same interface.
 * Readings batches cross as columns (typed arrays copied once and transferred, series sent once
 * by id, units as a per-batch table), not as objects; other calls are structured-cloned. A write
 * resolves when the worker's EmbeddedStore resolved it, i.e. after DuckDB committed, so offsets are
 * still committed only for stored data. Logs come back through this side's logger, the guard's
 * metrics through collectors on this side's registry. A worker that dies fails its pending calls
 * as retriable (STORAGE_UNAVAILABLE) and is started again by the next call.
 */
import { Worker } from 'node:worker_threads';
import type { Alert, MachineScore, Reading, SensorScore } from '../../common/messages.ts';
import { relayWorkerLine, type Logger } from '../../common/logger.ts';
import { prom } from '../../common/metrics.ts';
import type { BatchWriteResult, MachineScorePoint, StorageBackend, StoreOptions } from './backend.ts';
import { getOrCreate } from './cardinality.ts';
import { StorageUnavailableError } from './errors.ts';
import { validateSeriesQuery } from './plan.ts';
import { ReadingBatch, SeriesInterner } from '../../common/reading-batch.ts';
import type { LatestValue, MachineInfo, ScoreSeriesPoint, Series, SeriesQuery, WriteResult } from './store.ts';
import { deserializeStoreError, type ColumnBatch, type FromStoreWorker, type StoreWorkerInit, type ToStoreWorker } from './embedded-worker-protocol.ts';

const BOOTSTRAP = new URL('../../common/ts-worker-bootstrap.mjs', import.meta.url);
const ENTRY = new URL('./embedded-worker-thread.ts', import.meta.url);
/** Series ids handed to the worker before numbering starts afresh (bounds its map). */
const MAX_SERIES_IDS = 1 << 20;
/** Worker metrics forwarded to this side's registry (the cardinality guard's). */
const FORWARDED_METRICS: { name: string; help: string; type: 'counter' | 'gauge'; labelNames: string[] }[] = [
  { name: 'plantwatch_storage_series_refused_total', help: 'Points refused by the cardinality guard (new series beyond a limit)', type: 'counter', labelNames: ['measurement', 'limit'] },
  { name: 'plantwatch_storage_series', help: 'Series known to the cardinality guard', type: 'gauge', labelNames: [] },
];

type Pending = { resolve(v: unknown): void; reject(e: Error): void };
type WorkerMetric = { name: string; values: { value: number; labels: Record<string, string | number> }[] };

export class WorkerEmbeddedStore implements StorageBackend {
  readonly kind = 'embedded' as const;
  private readonly logger: Logger;
  /** The worker, set once its store is open. */
  private worker: Worker | undefined;
  /** Starting (and after a crash re-opening) the worker, shared by concurrent callers. */
  private opening: Promise<Worker> | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextCall = 1;
  private initialized = false;
  private closed = false;
  /** SeriesEntry cache token: an entry whose cacheOwner is this has its worker id in cacheValue. */
  private seriesToken: object = {};
  private nextSeriesId = 1;
  private resetSeries = false;
  private readonly interner = new SeriesInterner();
  private metricsSnapshot: Promise<WorkerMetric[]> | undefined;

  constructor(private readonly opts: StoreOptions) {
    this.logger = opts.logger.child({ store: 'embedded', thread: 'worker' });
    if (opts.metrics) this.forwardMetrics(opts.metrics);
  }

  private forwardMetrics(registry: prom.Registry): void {
    const snapshot = () => (this.metricsSnapshot ??= this.workerMetrics().finally(() => setTimeout(() => (this.metricsSnapshot = undefined), 100).unref()));
    for (const def of FORWARDED_METRICS) {
      getOrCreate(registry, def.name, () => {
        const fill = async (metric: { reset(): void; inc(labels: Record<string, string | number>, v: number): void }) => {
          const m = (await snapshot()).find((x) => x.name === def.name);
          if (!m) return;
          metric.reset();
          for (const v of m.values) metric.inc(v.labels, v.value);
        };
        const base = { name: def.name, help: def.help, labelNames: def.labelNames, registers: [registry] };
        return def.type === 'counter'
          ? new prom.Counter({ ...base, collect: async function (this: prom.Counter) { await fill(this); } })
          : new prom.Gauge({ ...base, collect: async function (this: prom.Gauge) { await fill(this); } });
      });
    }
  }

  private async workerMetrics(): Promise<WorkerMetric[]> {
    if (!this.worker || this.closed) return [];
    return ((await this.call('metrics', []).catch(() => [])) as WorkerMetric[]) ?? [];
  }

  // ---------------------------------------------------------------- the worker

  private spawn(): Promise<Worker> {
    return new Promise<Worker>((resolve, reject) => {
      const { logger: _l, metrics: _m, now, ...options } = this.opts;
      const init: StoreWorkerInit = { options, logLevel: (this.logger.level as StoreWorkerInit['logLevel']) ?? 'info', hasClock: now !== undefined };
      const worker = new Worker(BOOTSTRAP, { workerData: { entry: ENTRY.href, init }, name: 'plantwatch-storage-embedded' });
      worker.unref();
      let ready = false;
      worker.on('message', (m: FromStoreWorker) => {
        if (m.type === 'ready') {
          ready = true;
          // Ids the previous worker knew mean nothing to this one.
          this.seriesToken = {};
          this.nextSeriesId = 1;
          this.resetSeries = false;
          resolve(worker);
        } else if (m.type === 'log') this.relog(m.line);
        else if (m.type === 'result') this.settle(m.id, m.result, m.error && deserializeStoreError(m.error));
      });
      const gone = (why: string) => {
        if (this.worker === worker) this.worker = undefined;
        const err = new StorageUnavailableError(`embedded store worker ${why}`);
        if (!ready) reject(err);
        for (const [id, p] of this.pending) {
          this.pending.delete(id);
          p.reject(err);
        }
        if (!this.closed) this.logger.error({ err }, 'embedded store worker stopped; pending writes are retried and the worker is started again');
      };
      worker.on('error', (err) => gone(`failed: ${err.message}`));
      worker.on('exit', (code) => gone(`exited (${code})`));
    });
  }

  /** The running worker; after a crash, a new one with the store opened again (once, for all callers). */
  private async ready(): Promise<Worker> {
    if (this.closed) throw new StorageUnavailableError('embedded store is closed');
    if (this.worker) return this.worker;
    this.opening ??= (async () => {
      const w = await this.spawn();
      try {
        if (this.initialized) await this.send(w, 'init', []);
      } catch (err) {
        await w.terminate();
        throw err;
      }
      this.worker = w;
      return w;
    })().finally(() => {
      this.opening = undefined;
    });
    return this.opening;
  }

  private relog(line: string): void {
    relayWorkerLine(this.logger, line);
  }


  private settle(id: number, result: unknown, error: Error | undefined): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    if (this.pending.size === 0) this.worker?.unref();
    if (error) p.reject(error);
    else p.resolve(result);
  }

  private send(worker: Worker, op: string, args: unknown[], batch?: ColumnBatch, transfer?: ArrayBuffer[]): Promise<unknown> {
    const id = this.nextCall++;
    return new Promise((resolve, reject) => {
      // Referenced while calls are pending, so the process waits for their answers.
      if (this.pending.size === 0) worker.ref();
      this.pending.set(id, { resolve, reject });
      const m: ToStoreWorker = { type: 'call', id, op, args, batch, now: this.opts.now?.() };
      worker.postMessage(m, transfer ?? []);
    });
  }

  private async call(op: string, args: unknown[]): Promise<unknown> {
    return this.send(await this.ready(), op, args);
  }

  // ---------------------------------------------------------------- the store interface

  async init(): Promise<void> {
    await this.call('init', []);
    this.initialized = true;
  }

  async writeReadings(readings: Reading[]): Promise<WriteResult> {
    const res = await this.writeReadingBatch(ReadingBatch.fromReadings(readings, this.interner));
    return { written: res.written, rejected: res.rejected.map((r) => ({ code: r.code, reason: r.reason, item: readings[r.index] })) };
  }

  async writeReadingBatch(batch: ReadingBatch): Promise<BatchWriteResult> {
    const worker = await this.ready();
    const n = batch.n;
    if (this.nextSeriesId > MAX_SERIES_IDS) {
      this.seriesToken = {};
      this.nextSeriesId = 1;
      this.resetSeries = true;
    }
    const token = this.seriesToken;
    const ids = new Int32Array(n);
    const unitIdx = new Uint16Array(n);
    const units: string[] = [];
    const unitIndex = new Map<string, number>();
    const newSeries: ColumnBatch['newSeries'] = [];
    let lastUnit: string | undefined;
    let lastUnitIdx = 0;
    for (let i = 0; i < n; i++) {
      const e = batch.series[i];
      if (e.cacheOwner === token) ids[i] = e.cacheValue as number;
      else {
        const id = this.nextSeriesId++;
        e.cacheOwner = token;
        e.cacheValue = id;
        newSeries.push([id, e.site, e.line, e.machine, e.sensor]);
        ids[i] = id;
      }
      const u = batch.unit[i];
      if (u === undefined) continue;
      if (u !== lastUnit) {
        let k = unitIndex.get(u);
        if (k === undefined) {
          units.push(u);
          unitIndex.set(u, (k = units.length));
        }
        lastUnit = u;
        lastUnitIdx = k;
      }
      unitIdx[i] = lastUnitIdx;
    }
    const cols: ColumnBatch = {
      n,
      ts: batch.ts.slice(0, n).buffer,
      value: batch.value.slice(0, n).buffer,
      receivedAt: batch.receivedAt.slice(0, n).buffer,
      quality: batch.quality.slice(0, n).buffer,
      series: ids.buffer,
      unitIdx: unitIdx.buffer,
      units,
      newSeries,
      resetSeries: this.resetSeries,
    };
    this.resetSeries = false;
    try {
      return (await this.send(worker, 'writeReadingBatch', [], cols, [cols.ts, cols.value, cols.receivedAt, cols.quality, cols.series, cols.unitIdx])) as BatchWriteResult;
    } catch (err) {
      // The worker may not have registered the new ids: define every series again next time.
      if (newSeries.length > 0) this.seriesToken = {};
      throw err;
    }
  }

  async writeScores(scores: (SensorScore | MachineScore)[]): Promise<WriteResult> {
    return (await this.call('writeScores', [scores])) as WriteResult;
  }

  async writeAlerts(alerts: Alert[]): Promise<WriteResult> {
    return (await this.call('writeAlerts', [alerts])) as WriteResult;
  }

  async querySeries(q: SeriesQuery): Promise<Series[]> {
    validateSeriesQuery(q);
    return (await this.call('querySeries', [q])) as Series[];
  }

  async queryScores(q: SeriesQuery): Promise<{ sensor: string; resolution: string; points: ScoreSeriesPoint[] }[]> {
    validateSeriesQuery(q);
    return (await this.call('queryScores', [q])) as { sensor: string; resolution: string; points: ScoreSeriesPoint[] }[];
  }

  async queryMachineScores(q: Omit<SeriesQuery, 'sensor'>): Promise<{ site: string; line: string; machine: string; resolution: string; points: MachineScorePoint[] }[]> {
    validateSeriesQuery(q);
    return (await this.call('queryMachineScores', [q])) as { site: string; line: string; machine: string; resolution: string; points: MachineScorePoint[] }[];
  }

  async queryAlerts(q: { machine?: string; from: number; to: number; limit: number }): Promise<Alert[]> {
    return (await this.call('queryAlerts', [q])) as Alert[];
  }

  async latest(filter: { site?: string; line?: string; machine?: string }): Promise<LatestValue[]> {
    return (await this.call('latest', [filter])) as LatestValue[];
  }

  async machines(): Promise<MachineInfo[]> {
    return (await this.call('machines', [])) as MachineInfo[];
  }

  async flushRollups(): Promise<void> {
    await this.call('flushRollups', []);
  }

  async enforceRetention(): Promise<void> {
    await this.call('enforceRetention', []);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    const worker = this.worker ?? (await this.opening?.catch(() => undefined));
    if (worker) {
      await this.send(worker, 'close', []).catch((err) => this.logger.warn({ err }, 'embedded store close in the worker failed'));
    }
    this.closed = true;
    await worker?.terminate();
    this.worker = undefined;
  }
}
