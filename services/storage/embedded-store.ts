/**
 * The embedded TimeSeriesStore (no InfluxDB configured): one DuckDB file under
 * `<dataDir>/storage/`, with the same guarantees as the InfluxDB store.
 *
 * - Writes go through DuckDB's appender (the fastest way in; readings as whole data chunks, see
 *   duckdb-chunk.ts); a write resolves after the appender flushed, i.e. committed to the WAL, so
 *   acknowledged data survives a crash of the process.
 * - Idempotency without a primary-key check on the hot path: a key check made appends ~2-3x slower
 *   here. Point identity is (series id, event time); every read de-duplicates by it (last write wins,
 *   via a per-batch sequence number), and retention runs a compaction that deletes the older copies.
 *   So a replay never shows up twice in any answer.
 * - `latest` is a small table updated per batch only when the event time is newer or equal.
 * - Rollups (1m from raw, 1h from 1m; mean/min/max/count/sum) are recomputed for the minutes that
 *   received data: on a timer, and before any query that reads them, so answers are always exact.
 * - Retention deletes raw and rollup rows past their age on a timer.
 * - The cardinality guard's series live in a `series` table, so the limits survive restarts.
 */
import { DuckDBInstance, type DuckDBAppender, type DuckDBConnection } from '@duckdb/node-api';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Alert, AlertStatus, MachineScore, Reading, SensorScore, Severity } from '../../common/messages.ts';
import type { Logger } from '../../common/logger.ts';
import type { LatestValue, MachineInfo, ScoreSeriesPoint, Series, SeriesPoint, SeriesQuery, WriteResult } from './store.ts';
import type { BatchWriteResult, MachineScorePoint, StorageBackend, StoreOptions } from './backend.ts';
import { QUALITIES, ReadingBatch, SeriesInterner, type SeriesEntry } from '../../common/reading-batch.ts';
import { CardinalityGuard } from './cardinality.ts';
import { STORAGE_ERRORS, StorageUnavailableError } from './errors.ts';
import { DAY, HOUR, MINUTE, capPoints, planAggregate, validateSeriesQuery } from './plan.ts';
import { MEASUREMENTS, SensorMap, alertSeriesKey, machineKeyOf, machineSeriesKey, sensorSeriesKey } from './schema.ts';
import { groupMachines, mergeRuns, sortSeries } from './influx-store.ts';
import { CHUNKS_SUPPORTED, CHUNK_ROWS, ChunkBuilder, type ColumnKind } from './duckdb-chunk.ts';

/** Column kinds of the `readings` table, in table order (see DDL). */
const READING_COLUMNS: ColumnKind[] = ['integer', 'bigint', 'double', 'varchar', 'varchar', 'bigint', 'bigint'];

const LATEST_UPSERT = `ON CONFLICT (sid) DO UPDATE SET ts = excluded.ts, value = excluded.value, unit = excluded.unit, quality = excluded.quality, seq = excluded.seq WHERE excluded.ts >= latest.ts`;
const LATEST_FLUSH_MS = 1_000;
/** Rollups are refreshed this often while data arrives (queries refresh first anyway). */
const ROLLUP_INTERVAL_MS = 30_000;
/** Beyond this many separate dirty runs, one covering range is cheaper than many queries. */
const MAX_RUNS = 50;

/** The newest reading of a series since the last latest-flush (updated in place, no object per point). */
interface LatestMem {
  ts: number;
  value: number;
  unit: string | undefined;
  quality: string | undefined;
}

interface SeriesRow {
  sid: number;
  measurement: string;
  site: string;
  line: string;
  machine: string;
  sensor: string;
}

const DDL = [
  `CREATE TABLE IF NOT EXISTS series (sid INTEGER PRIMARY KEY, key VARCHAR UNIQUE, measurement VARCHAR, site VARCHAR, line VARCHAR, machine VARCHAR, sensor VARCHAR)`,
  `CREATE TABLE IF NOT EXISTS readings (sid INTEGER, ts BIGINT, value DOUBLE, unit VARCHAR, quality VARCHAR, received_at BIGINT, seq BIGINT)`,
  `CREATE TABLE IF NOT EXISTS latest (sid INTEGER PRIMARY KEY, ts BIGINT, value DOUBLE, unit VARCHAR, quality VARCHAR, seq BIGINT)`,
  `CREATE TABLE IF NOT EXISTS readings_1m (sid INTEGER, bucket BIGINT, value DOUBLE, min DOUBLE, max DOUBLE, count BIGINT, sum DOUBLE, PRIMARY KEY (sid, bucket))`,
  `CREATE TABLE IF NOT EXISTS readings_1h (sid INTEGER, bucket BIGINT, value DOUBLE, min DOUBLE, max DOUBLE, count BIGINT, sum DOUBLE, PRIMARY KEY (sid, bucket))`,
  `CREATE TABLE IF NOT EXISTS scores (sid INTEGER, ts BIGINT, value DOUBLE, predicted DOUBLE, lower DOUBLE, upper DOUBLE, raw_score DOUBLE, likelihood DOUBLE, model_version VARCHAR, warming_up BOOLEAN, forecast VARCHAR, time_to_limit_ms DOUBLE, seq BIGINT)`,
  ...['scores_1m', 'scores_1h'].map(
    (t) =>
      `CREATE TABLE IF NOT EXISTS ${t} (sid INTEGER, bucket BIGINT, value DOUBLE, value_sum DOUBLE, predicted DOUBLE, predicted_sum DOUBLE, lower DOUBLE, upper DOUBLE, likelihood DOUBLE, raw_score DOUBLE, count BIGINT, PRIMARY KEY (sid, bucket))`,
  ),
  `CREATE TABLE IF NOT EXISTS machine_scores (sid INTEGER, ts BIGINT, raw_score DOUBLE, likelihood DOUBLE, contributions VARCHAR, model_version VARCHAR, warming_up BOOLEAN, seq BIGINT)`,
  `CREATE TABLE IF NOT EXISTS alerts (fingerprint VARCHAR, updated_at BIGINT, rule VARCHAR, severity VARCHAR, status VARCHAR, site VARCHAR, line VARCHAR, machine VARCHAR, sensor VARCHAR, labels VARCHAR, summary VARCHAR, value DOUBLE, starts_at BIGINT, ends_at BIGINT, acknowledged_by VARCHAR, acknowledged_at BIGINT, silenced_until BIGINT, PRIMARY KEY (fingerprint, updated_at))`,
  // Rollups are complete up to this write sequence; rows above it are re-rolled on start (crash recovery).
  `CREATE TABLE IF NOT EXISTS rollup_state (kind VARCHAR PRIMARY KEY, seq BIGINT)`,
  `CREATE TEMP TABLE IF NOT EXISTS latest_stage (sid INTEGER, ts BIGINT, value DOUBLE, unit VARCHAR, quality VARCHAR, seq BIGINT)`,
];

const int = (n: number) => String(Math.floor(n));
const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));

export class EmbeddedStore implements StorageBackend {
  readonly kind = 'embedded' as const;
  private instance: DuckDBInstance | undefined;
  /** Appends and series inserts (serialized by writeChain). */
  private writer: DuckDBConnection | undefined;
  /** Queries, rollups, retention (serialized by readChain). */
  private reader: DuckDBConnection | undefined;
  private appenders = new Map<string, DuckDBAppender>();
  private readingChunk: ChunkBuilder | undefined;
  private writeChain: Promise<unknown> = Promise.resolve();
  private readChain: Promise<unknown> = Promise.resolve();
  private readonly logger: Logger;
  private readonly guard: CardinalityGuard;
  private readonly now: () => number;
  private readonly seriesByKey = new Map<string, SeriesRow>();
  private nextSid = 1;
  /** Newest reading per series written since the last `flushLatest`. */
  private latestMem = new Map<number, LatestMem>();
  private latestMarkedSeq = 0n;
  /**
   * Admitted reading series: their series id is cached on the batch's SeriesEntry while
   * `cacheOwner` is this token (a new token forgets them all).
   */
  private seriesToken: object = {};
  /** Interns series of readings handed in as objects (`writeReadings`). */
  private readonly interner = new SeriesInterner();
  private readonly scoreSids = new SensorMap<number>();
  private seq = 0n;
  private readonly dirtyMinutes = { readings: new Set<number>(), scores: new Set<number>() };
  /** Highest write sequence whose minutes are in `dirtyMinutes` (per kind). */
  private readonly markedSeq = { readings: 0n, scores: 0n };
  private timers: NodeJS.Timeout[] = [];
  private closed = false;

  constructor(private readonly opts: StoreOptions) {
    this.logger = opts.logger.child({ store: 'embedded' });
    this.now = opts.now ?? Date.now;
    this.guard = new CardinalityGuard({ maxSeriesPerMachine: opts.maxSeriesPerMachine, maxSeries: opts.maxSeries }, this.logger, opts.metrics);
  }

  async init(): Promise<void> {
    if (this.instance) return;
    mkdirSync(dirname(this.opts.embeddedPath), { recursive: true });
    this.instance = await DuckDBInstance.create(this.opts.embeddedPath);
    this.writer = await this.instance.connect();
    this.reader = await this.instance.connect();
    for (const sql of DDL) {
      await this.writer.run(sql);
      if (sql.includes('TEMP')) await this.reader.run(sql);
    }
    const rows = (await this.writer.runAndReadAll(`SELECT sid, key, measurement, site, line, machine, sensor FROM series`)).getRows();
    for (const [sid, key, measurement, site, line, machine, sensor] of rows) {
      const row: SeriesRow = { sid: Number(sid), measurement: String(measurement), site: String(site), line: String(line), machine: String(machine), sensor: String(sensor ?? '') };
      this.seriesByKey.set(String(key), row);
      this.guard.preload(String(key), machineKeyOf(row));
      this.nextSid = Math.max(this.nextSid, row.sid + 1);
    }
    const [[maxSeq]] = (await this.writer.runAndReadAll(`SELECT greatest(coalesce((SELECT max(seq) FROM readings), 0), coalesce((SELECT max(seq) FROM scores), 0), coalesce((SELECT max(seq) FROM machine_scores), 0))`)).getRows();
    this.seq = BigInt(maxSeq as bigint | number);
    for (const kind of ['readings', 'scores'] as const) {
      const state = (await this.writer.runAndReadAll(`SELECT seq FROM rollup_state WHERE kind = '${kind}'`)).getRows();
      const covered = state.length ? BigInt(state[0][0] as bigint) : 0n;
      const pending = (await this.writer.runAndReadAll(`SELECT DISTINCT ts - ts % ${MINUTE} FROM ${kind} WHERE seq > ${covered}`)).getRows();
      for (const [m] of pending) this.dirtyMinutes[kind].add(Number(m));
      this.markedSeq[kind] = this.seq;
    }
    // Newest values of batches written after the last latest-flush (crash recovery).
    const latestState = (await this.writer.runAndReadAll(`SELECT seq FROM rollup_state WHERE kind = 'latest'`)).getRows();
    const latestCovered = latestState.length ? BigInt(latestState[0][0] as bigint) : 0n;
    await this.writer.run(
      `INSERT INTO latest SELECT sid, max(ts), arg_max(value, ts), arg_max(unit, ts), arg_max(quality, ts), max(seq) FROM readings WHERE seq > ${latestCovered} GROUP BY sid ${LATEST_UPSERT}`,
    );
    await this.writer.run(`INSERT OR REPLACE INTO rollup_state VALUES ('latest', ${this.seq})`);
    this.latestMarkedSeq = this.seq;
    const latestTimer = setInterval(() => this.flushLatest().catch((err) => this.logger.warn({ err }, 'latest-value flush failed; retried on the next tick')), LATEST_FLUSH_MS);
    latestTimer.unref();
    this.timers.push(latestTimer);
    const rollupTimer = setInterval(() => this.flushRollups().catch((err) => this.logger.warn({ err }, 'rollup refresh failed; retried on the next tick')), ROLLUP_INTERVAL_MS);
    const retentionTimer = setInterval(() => this.enforceRetention().catch((err) => this.logger.warn({ err }, 'retention run failed; retried on the next tick')), this.opts.retentionIntervalMs);
    rollupTimer.unref();
    retentionTimer.unref();
    this.timers.push(rollupTimer, retentionTimer);
    await this.enforceRetention();
    this.logger.info({ path: this.opts.embeddedPath, series: this.guard.size }, 'embedded store ready');
  }

  private serialWrite<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.writeChain.then(fn, fn);
    this.writeChain = p.catch(() => undefined);
    return p;
  }

  private serialRead<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.readChain.then(fn, fn);
    this.readChain = p.catch(() => undefined);
    return p;
  }

  private conn(which: 'writer' | 'reader'): DuckDBConnection {
    const c = which === 'writer' ? this.writer : this.reader;
    if (!c || this.closed) throw new StorageUnavailableError('embedded store is not open');
    return c;
  }

  /** Admits the series (guard) and returns its id; new ids are inserted by `persistNewSeries`. */
  private sidFor(key: string, measurement: string, p: { site: string; line: string; machine: string; sensor?: string }, fresh: SeriesRow[]): number | undefined {
    const known = this.seriesByKey.get(key);
    if (known) return known.sid;
    if (!this.guard.admit(measurement, key, p)) return undefined;
    const row: SeriesRow = { sid: this.nextSid++, measurement, site: p.site, line: p.line, machine: p.machine, sensor: p.sensor ?? '' };
    this.seriesByKey.set(key, row);
    fresh.push(row);
    return row.sid;
  }

  /** Stores new series rows; on failure forgets them so the next attempt registers them again. */
  private async persistNewSeries(fresh: { key: string; row: SeriesRow }[]): Promise<void> {
    if (fresh.length === 0) return;
    try {
      await this.appendSeries(fresh);
    } catch (err) {
      for (const { key } of fresh) this.seriesByKey.delete(key);
      this.seriesToken = {};
      this.scoreSids.clear();
      throw new StorageUnavailableError(`embedded store could not register new series: ${(err as Error).message}`, { cause: err });
    }
  }

  private async appendSeries(fresh: { key: string; row: SeriesRow }[]): Promise<void> {
    const a = await this.conn('writer').createAppender('series');
    try {
      for (const { key, row } of fresh) {
        a.appendInteger(row.sid);
        a.appendVarchar(key);
        a.appendVarchar(row.measurement);
        a.appendVarchar(row.site);
        a.appendVarchar(row.line);
        a.appendVarchar(row.machine);
        a.appendVarchar(row.sensor);
        a.endRow();
      }
      a.flushSync();
    } finally {
      a.closeSync();
    }
  }

  private async appender(table: string): Promise<DuckDBAppender> {
    let a = this.appenders.get(table);
    if (!a) {
      a = await this.conn('writer').createAppender(table);
      this.appenders.set(table, a);
    }
    return a;
  }

  /** Runs `fill` on the table's appender and flushes (commit); a failed appender is discarded. */
  private async append(table: string, fill: (a: DuckDBAppender) => void): Promise<void> {
    const a = await this.appender(table);
    try {
      fill(a);
      a.flushSync();
    } catch (err) {
      this.appenders.delete(table);
      try {
        a.closeSync();
      } catch {
        // already broken
      }
      throw new StorageUnavailableError(`embedded store append to ${table} failed: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Event times before this are past raw retention (read once per batch). */
  private oldestAccepted(): number {
    return this.now() - this.opts.rawRetentionDays * DAY + MINUTE;
  }

  private tooOld(ts: number): boolean {
    return ts < this.oldestAccepted();
  }

  async writeReadings(readings: Reading[]): Promise<WriteResult> {
    const res = await this.writeReadingBatch(ReadingBatch.fromReadings(readings, this.interner));
    return { written: res.written, rejected: res.rejected.map((r) => ({ code: r.code, reason: r.reason, item: readings[r.index] })) };
  }

  /** The admitted series' id, or undefined when the cardinality guard refuses it. */
  private readingSid(e: SeriesEntry, fresh: SeriesRow[], freshKeys: { key: string; row: SeriesRow }[]): number | undefined {
    if (e.cacheOwner === this.seriesToken) return e.cacheValue as number;
    const key = sensorSeriesKey(MEASUREMENTS.readings, e);
    const before = fresh.length;
    const sid = this.sidFor(key, MEASUREMENTS.readings, e, fresh);
    if (fresh.length > before) freshKeys.push({ key, row: fresh[fresh.length - 1] });
    if (sid !== undefined) {
      e.cacheOwner = this.seriesToken;
      e.cacheValue = sid;
    }
    return sid;
  }

  async writeReadingBatch(batch: ReadingBatch): Promise<BatchWriteResult> {
    return this.serialWrite(async () => {
      const rejected: BatchWriteResult['rejected'] = [];
      const fresh: SeriesRow[] = [];
      const freshKeys: { key: string; row: SeriesRow }[] = [];
      const n = batch.n;
      const sids = new Int32Array(n);
      const oldest = this.oldestAccepted();
      let written = 0;
      for (let i = 0; i < n; i++) {
        const ts = batch.ts[i];
        if (ts < oldest) {
          rejected.push({ index: i, code: STORAGE_ERRORS.tooOld, reason: `event time ${new Date(ts).toISOString()} is older than the raw retention (${this.opts.rawRetentionDays} d)` });
          continue;
        }
        const sid = this.readingSid(batch.series[i], fresh, freshKeys);
        if (sid === undefined) {
          rejected.push({ index: i, code: STORAGE_ERRORS.cardinality, reason: 'new series beyond the cardinality limit' });
          continue;
        }
        sids[i] = sid;
        written++;
      }
      if (written === 0) return { written, rejected };
      await this.persistNewSeries(freshKeys);
      const seq = ++this.seq;
      await this.append('readings', (a) => {
        if (CHUNKS_SUPPORTED) this.appendReadingChunks(a, batch, sids, Number(seq));
        else this.appendReadingRows(a, batch, sids, seq);
      });
      this.trackLatest(batch, sids);
      this.latestMarkedSeq = seq;
      this.markDirtyReadings(batch, sids, seq);
      return { written, rejected };
    });
  }

  /** Value by value (big-endian hosts, where the chunk path is off). */
  private appendReadingRows(a: DuckDBAppender, batch: ReadingBatch, sids: Int32Array, seq: bigint): void {
    for (let i = 0; i < batch.n; i++) {
      const sid = sids[i];
      if (sid === 0) continue;
      a.appendInteger(sid);
      a.appendBigInt(BigInt(batch.ts[i]));
      a.appendDouble(batch.value[i]);
      const unit = batch.unit[i];
      if (unit === undefined) a.appendNull();
      else a.appendVarchar(unit);
      const quality = QUALITIES[batch.quality[i]];
      if (quality === undefined) a.appendNull();
      else a.appendVarchar(quality);
      a.appendBigInt(BigInt(batch.receivedAt[i]));
      a.appendBigInt(seq);
      a.endRow();
    }
  }

  /** The readings rows of a batch, a data chunk at a time (see duckdb-chunk.ts). */
  private appendReadingChunks(a: DuckDBAppender, batch: ReadingBatch, sids: Int32Array, seq: number): void {
    const b = (this.readingChunk ??= new ChunkBuilder(READING_COLUMNS));
    let n = 0;
    for (let i = 0; i < batch.n; i++) {
      const sid = sids[i];
      if (sid === 0) continue;
      b.setInteger(0, n, sid);
      b.setBigInt(1, n, batch.ts[i]);
      b.setDouble(2, n, batch.value[i]);
      b.setVarchar(3, n, batch.unit[i]);
      b.setVarchar(4, n, QUALITIES[batch.quality[i]]);
      b.setBigInt(5, n, batch.receivedAt[i]);
      b.setBigInt(6, n, seq);
      if (++n === CHUNK_ROWS) {
        b.appendTo(a, n);
        n = 0;
      }
    }
    b.appendTo(a, n);
  }

  /** Newest value per series (by event time; equal time: the later write) for the next latest-flush. */
  private trackLatest(batch: ReadingBatch, sids: Int32Array): void {
    const newest = this.latestMem;
    for (let i = 0; i < batch.n; i++) {
      const sid = sids[i];
      if (sid === 0) continue;
      const ts = batch.ts[i];
      const cur = newest.get(sid);
      if (cur === undefined) newest.set(sid, { ts, value: batch.value[i], unit: batch.unit[i], quality: QUALITIES[batch.quality[i]] });
      else if (cur.ts <= ts) {
        cur.ts = ts;
        cur.value = batch.value[i];
        cur.unit = batch.unit[i];
        cur.quality = QUALITIES[batch.quality[i]];
      }
    }
  }

  private markDirtyReadings(batch: ReadingBatch, sids: Int32Array, seq: bigint): void {
    const set = this.dirtyMinutes.readings;
    this.markedSeq.readings = seq;
    let last = -1;
    for (let i = 0; i < batch.n; i++) {
      if (sids[i] === 0) continue;
      const ts = batch.ts[i];
      const m = ts - (ts % MINUTE);
      if (m !== last) {
        set.add(m);
        last = m;
      }
    }
  }

  /**
   * Moves the newest values of recent batches into the `latest` table (every second, before
   * `latest()` reads the table, at close). Keeping them in memory between flushes saves two
   * statements per batch; after a crash, init() rebuilds what was not flushed from the raw rows.
   */
  flushLatest(): Promise<void> {
    return this.serialWrite(async () => {
      if (this.latestMem.size === 0) return;
      const w = this.conn('writer');
      const entries = [...this.latestMem];
      const covered = this.latestMarkedSeq;
      this.latestMem = new Map();
      try {
        await this.append('latest_stage', (a) => {
          for (const [sid, r] of entries) {
            a.appendInteger(sid);
            a.appendBigInt(BigInt(r.ts));
            a.appendDouble(r.value);
            if (r.unit === undefined) a.appendNull();
            else a.appendVarchar(r.unit);
            if (r.quality === undefined) a.appendNull();
            else a.appendVarchar(r.quality);
            a.appendBigInt(covered);
            a.endRow();
          }
        });
        // Only a newer (or equal: a replay or correction) event time replaces the latest value.
        await w.run(`INSERT INTO latest SELECT * FROM latest_stage ${LATEST_UPSERT}`);
        await w.run(`DELETE FROM latest_stage`);
        await w.run(`INSERT OR REPLACE INTO rollup_state VALUES ('latest', ${covered})`);
      } catch (err) {
        for (const [sid, r] of entries) {
          const now = this.latestMem.get(sid);
          if (!now || now.ts < r.ts) this.latestMem.set(sid, r);
        }
        throw err;
      }
    });
  }

  private markDirty(kind: 'readings' | 'scores', items: { ts: number }[], sids: Int32Array, seq: bigint): void {
    const set = this.dirtyMinutes[kind];
    this.markedSeq[kind] = seq;
    let last = -1;
    for (let i = 0; i < items.length; i++) {
      if (sids[i] === 0) continue;
      const m = items[i].ts - (items[i].ts % MINUTE);
      if (m !== last) {
        set.add(m);
        last = m;
      }
    }
  }

  async writeScores(scores: (SensorScore | MachineScore)[]): Promise<WriteResult> {
    return this.serialWrite(async () => {
      const rejected: WriteResult['rejected'] = [];
      const fresh: SeriesRow[] = [];
      const freshKeys: { key: string; row: SeriesRow }[] = [];
      const sids = new Int32Array(scores.length);
      let written = 0;
      for (let i = 0; i < scores.length; i++) {
        const s = scores[i];
        if (this.tooOld(s.ts)) {
          rejected.push({ code: STORAGE_ERRORS.tooOld, reason: `event time ${new Date(s.ts).toISOString()} is older than the raw retention (${this.opts.rawRetentionDays} d)`, item: s });
          continue;
        }
        let sid = s.kind === 'sensor' ? this.scoreSids.get(s) : undefined;
        if (sid === undefined) {
          const measurement = s.kind === 'sensor' ? MEASUREMENTS.scores : MEASUREMENTS.machineScores;
          const key = s.kind === 'sensor' ? sensorSeriesKey(measurement, s) : machineSeriesKey(measurement, s);
          const before = fresh.length;
          sid = this.sidFor(key, measurement, s, fresh);
          if (fresh.length > before) freshKeys.push({ key, row: fresh[fresh.length - 1] });
          if (sid !== undefined && s.kind === 'sensor') this.scoreSids.set(s, sid);
        }
        if (sid === undefined) {
          rejected.push({ code: STORAGE_ERRORS.cardinality, reason: 'new series beyond the cardinality limit', item: s });
          continue;
        }
        sids[i] = sid;
        written++;
      }
      if (written === 0) return { written, rejected };
      await this.persistNewSeries(freshKeys);
      const seq = ++this.seq;
      const sensorSids = new Int32Array(scores.length);
      await this.append('scores', (a) => {
        for (let i = 0; i < scores.length; i++) {
          const s = scores[i];
          if (sids[i] === 0 || s.kind !== 'sensor') continue;
          sensorSids[i] = sids[i];
          a.appendInteger(sids[i]);
          a.appendBigInt(BigInt(s.ts));
          a.appendDouble(s.value);
          a.appendDouble(s.predicted);
          a.appendDouble(s.lower);
          a.appendDouble(s.upper);
          a.appendDouble(s.rawScore);
          a.appendDouble(s.likelihood);
          a.appendVarchar(s.modelVersion);
          a.appendBoolean(s.warmingUp);
          if (s.forecast) a.appendVarchar(JSON.stringify(s.forecast));
          else a.appendNull();
          if (s.timeToLimitMs === undefined || s.timeToLimitMs === null) a.appendNull();
          else a.appendDouble(s.timeToLimitMs);
          a.appendBigInt(seq);
          a.endRow();
        }
      });
      await this.append('machine_scores', (a) => {
        for (let i = 0; i < scores.length; i++) {
          const s = scores[i];
          if (sids[i] === 0 || s.kind !== 'machine') continue;
          a.appendInteger(sids[i]);
          a.appendBigInt(BigInt(s.ts));
          a.appendDouble(s.rawScore);
          a.appendDouble(s.likelihood);
          a.appendVarchar(JSON.stringify(s.contributions));
          a.appendVarchar(s.modelVersion);
          a.appendBoolean(s.warmingUp);
          a.appendBigInt(seq);
          a.endRow();
        }
      });
      this.markDirty('scores', scores, sensorSids, seq);
      return { written, rejected };
    });
  }

  async writeAlerts(alerts: Alert[]): Promise<WriteResult> {
    return this.serialWrite(async () => {
      const rejected: WriteResult['rejected'] = [];
      const fresh: SeriesRow[] = [];
      const freshKeys: { key: string; row: SeriesRow }[] = [];
      const ok: Alert[] = [];
      for (const a of alerts) {
        if (this.tooOld(a.updatedAt)) {
          rejected.push({ code: STORAGE_ERRORS.tooOld, reason: 'alert state change older than the raw retention', item: a });
          continue;
        }
        const key = alertSeriesKey(a);
        const before = fresh.length;
        const sid = this.sidFor(key, MEASUREMENTS.alerts, a, fresh);
        if (fresh.length > before) freshKeys.push({ key, row: fresh[fresh.length - 1] });
        if (sid === undefined) {
          rejected.push({ code: STORAGE_ERRORS.cardinality, reason: 'new series beyond the cardinality limit', item: a });
          continue;
        }
        ok.push(a);
      }
      if (ok.length === 0) return { written: 0, rejected };
      await this.persistNewSeries(freshKeys);
      const w = this.conn('writer');
      // Low volume: a keyed upsert per state change (same fingerprint + time overwrites).
      try {
        await w.run('BEGIN TRANSACTION');
        for (const a of ok) {
          await w.run(`INSERT OR REPLACE INTO alerts VALUES ($1, ${int(a.updatedAt)}, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, ${a.startsAt}, $12, $13, $14, $15)`, [
            a.fingerprint,
            a.rule,
            a.severity,
            a.status,
            a.site,
            a.line,
            a.machine,
            a.sensor ?? null,
            JSON.stringify(a.labels),
            a.summary,
            a.value,
            a.endsAt === null ? null : String(a.endsAt),
            a.acknowledgedBy,
            a.acknowledgedAt === null ? null : String(a.acknowledgedAt),
            a.silencedUntil === null ? null : String(a.silencedUntil),
          ]);
        }
        await w.run('COMMIT');
      } catch (err) {
        await w.run('ROLLBACK').catch(() => undefined);
        throw new StorageUnavailableError(`embedded store alert write failed: ${(err as Error).message}`, { cause: err });
      }
      return { written: ok.length, rejected };
    });
  }

  // ---------------------------------------------------------------- rollups and retention

  async flushRollups(): Promise<void> {
    return this.serialRead(async () => {
      const c = this.conn('reader');
      for (const kind of ['readings', 'scores'] as const) {
        const set = this.dirtyMinutes[kind];
        if (set.size === 0) continue;
        const covered = this.markedSeq[kind];
        const minutes = [...set].sort((a, b) => a - b);
        set.clear();
        try {
          let runs = mergeRuns(minutes, MINUTE);
          if (runs.length > MAX_RUNS) runs = [[runs[0][0], runs[runs.length - 1][1]]];
          const hours = [...new Set(minutes.map((m) => m - (m % HOUR)))];
          let hourRuns = mergeRuns(hours, HOUR);
          if (hourRuns.length > MAX_RUNS) hourRuns = [[hourRuns[0][0], hourRuns[hourRuns.length - 1][1]]];
          for (const [from, to] of runs) await c.run(this.rollup1mSql(kind, from, to));
          for (const [from, to] of hourRuns) await c.run(this.rollup1hSql(kind, from, to));
          await c.run(`INSERT OR REPLACE INTO rollup_state VALUES ('${kind}', ${covered})`);
        } catch (err) {
          for (const m of minutes) set.add(m);
          throw err;
        }
      }
    });
  }

  private rollup1mSql(kind: 'readings' | 'scores', from: number, to: number): string {
    const range = `ts >= ${int(from)} AND ts < ${int(to)}`;
    if (kind === 'readings') {
      return `INSERT OR REPLACE INTO readings_1m
        SELECT sid, ts - ts % ${MINUTE} AS bucket, avg(v), min(v), max(v), count(*), sum(v)
        FROM (SELECT sid, ts, arg_max(value, seq) AS v FROM readings WHERE ${range} GROUP BY sid, ts)
        GROUP BY sid, bucket`;
    }
    return `INSERT OR REPLACE INTO scores_1m
      SELECT sid, ts - ts % ${MINUTE} AS bucket, avg(v), sum(v), avg(p), sum(p), min(lo), max(hi), max(li), max(rs), count(*)
      FROM (SELECT sid, ts, arg_max(value, seq) AS v, arg_max(predicted, seq) AS p, arg_max(lower, seq) AS lo, arg_max(upper, seq) AS hi,
                   arg_max(likelihood, seq) AS li, arg_max(raw_score, seq) AS rs
            FROM scores WHERE ${range} GROUP BY sid, ts)
      GROUP BY sid, bucket`;
  }

  private rollup1hSql(kind: 'readings' | 'scores', from: number, to: number): string {
    const range = `bucket >= ${int(from)} AND bucket < ${int(to)}`;
    if (kind === 'readings') {
      return `INSERT OR REPLACE INTO readings_1h
        SELECT sid, bucket - bucket % ${HOUR} AS hb, sum(sum) / sum(count), min(min), max(max), sum(count), sum(sum)
        FROM readings_1m WHERE ${range} GROUP BY sid, hb`;
    }
    return `INSERT OR REPLACE INTO scores_1h
      SELECT sid, bucket - bucket % ${HOUR} AS hb, sum(value_sum) / sum(count), sum(value_sum), sum(predicted_sum) / sum(count), sum(predicted_sum),
             min(lower), max(upper), max(likelihood), max(raw_score), sum(count)
      FROM scores_1m WHERE ${range} GROUP BY sid, hb`;
  }

  async enforceRetention(): Promise<void> {
    await this.flushLatest();
    await this.flushRollups();
    return this.serialRead(async () => {
      const c = this.conn('reader');
      const rawCut = this.now() - this.opts.rawRetentionDays * DAY;
      const rollupCut = this.now() - this.opts.rollupRetentionDays * DAY;
      for (const t of ['readings', 'scores', 'machine_scores']) await c.run(`DELETE FROM ${t} WHERE ts < ${int(rawCut)}`);
      await c.run(`DELETE FROM alerts WHERE updated_at < ${int(rawCut)}`);
      await c.run(`DELETE FROM latest WHERE ts < ${int(rawCut)}`);
      for (const t of ['readings_1m', 'readings_1h', 'scores_1m', 'scores_1h']) await c.run(`DELETE FROM ${t} WHERE bucket < ${int(rollupCut)}`);
      // Compaction: older copies of replayed points (same series and event time). Only keys written
      // since the last compaction can have new copies, so the hash side stays small.
      for (const t of ['readings', 'scores', 'machine_scores']) {
        const state = (await c.runAndReadAll(`SELECT seq FROM rollup_state WHERE kind = 'compact:${t}'`)).getRows();
        const since = state.length ? BigInt(state[0][0] as bigint) : 0n;
        const [[upTo]] = (await c.runAndReadAll(`SELECT coalesce(max(seq), 0) FROM ${t}`)).getRows();
        if (BigInt(upTo as bigint) <= since) continue;
        await c.run(
          `DELETE FROM ${t} USING (
             SELECT x.sid, x.ts, max(x.seq) AS keep FROM ${t} x SEMI JOIN (SELECT DISTINCT sid, ts FROM ${t} WHERE seq > ${since}) n ON x.sid = n.sid AND x.ts = n.ts
             GROUP BY x.sid, x.ts HAVING count(*) > 1) d
           WHERE ${t}.sid = d.sid AND ${t}.ts = d.ts AND ${t}.seq < d.keep`,
        );
        await c.run(`INSERT OR REPLACE INTO rollup_state VALUES ('compact:${t}', ${BigInt(upTo as bigint)})`);
      }
    });
  }

  // ---------------------------------------------------------------- queries

  private sidsFor(measurement: string, f: { site?: string; line?: string; machine?: string; sensor?: string }): Map<number, SeriesRow> {
    const out = new Map<number, SeriesRow>();
    for (const row of this.seriesByKey.values()) {
      if (row.measurement !== measurement) continue;
      if ((f.site !== undefined && row.site !== f.site) || (f.line !== undefined && row.line !== f.line) || (f.machine !== undefined && row.machine !== f.machine) || (f.sensor !== undefined && row.sensor !== f.sensor)) continue;
      out.set(row.sid, row);
    }
    return out;
  }

  private async rows(sql: string): Promise<unknown[][]> {
    return this.serialRead(async () => (await this.conn('reader').runAndReadAll(sql)).getRows() as unknown[][]);
  }

  private rawAvailable(from: number): boolean {
    return from >= this.now() - this.opts.rawRetentionDays * DAY;
  }

  /** Groups rows `[sid, ts, …]` (ordered by sid, ts) into per-sid lists. */
  private bySid<P>(rows: unknown[][], toPoint: (r: unknown[]) => P): Map<number, P[]> {
    const out = new Map<number, P[]>();
    for (const r of rows) {
      const sid = Number(r[0]);
      let list = out.get(sid);
      if (!list) out.set(sid, (list = []));
      list.push(toPoint(r));
    }
    return out;
  }

  /** Raw when it fits, else the plan's tier; returns rows [sid, ts, …cols] ordered by sid, ts. */
  private async seriesRows(
    table: 'readings' | 'scores',
    sids: number[],
    q: SeriesQuery,
    cols: { raw: string; onTheFly: string; native: string; regroup: string },
  ): Promise<{ resolution: string; rows: unknown[][] }> {
    const sidList = `sid IN (${sids.join(',')})`;
    const range = `ts >= ${int(q.from)} AND ts < ${int(Math.ceil(q.to))}`;
    const rawOk = this.rawAvailable(q.from);
    const dedup = `SELECT sid, ts, ${cols.raw} FROM ${table} WHERE ${sidList} AND ${range} GROUP BY sid, ts`;
    if (rawOk) {
      const counts = await this.rows(`SELECT max(n) FROM (SELECT sid, count(DISTINCT ts) AS n FROM ${table} WHERE ${sidList} AND ${range} GROUP BY sid)`);
      const max = Number(counts[0]?.[0] ?? 0);
      if (max <= q.maxPoints) return { resolution: 'raw', rows: await this.rows(`${dedup} ORDER BY sid, ts`) };
    }
    const plan = planAggregate(q.from, q.to, q.maxPoints, rawOk);
    if (plan.tier === 'raw') {
      return {
        resolution: plan.resolution,
        rows: await this.rows(`SELECT sid, ts - ts % ${plan.bucketMs} AS b, ${cols.onTheFly} FROM (${dedup}) GROUP BY sid, b ORDER BY sid, b`),
      };
    }
    await this.flushRollups();
    const tierMs = plan.tier === '1m' ? MINUTE : HOUR;
    const t = `${table}_${plan.tier}`;
    const bucketRange = `bucket >= ${int(q.from - (q.from % tierMs))} AND bucket < ${int(Math.ceil(q.to))}`;
    const sql =
      plan.bucketMs === tierMs
        ? `SELECT sid, bucket, ${cols.native} FROM ${t} WHERE ${sidList} AND ${bucketRange} ORDER BY sid, bucket`
        : `SELECT sid, bucket - bucket % ${plan.bucketMs} AS b, ${cols.regroup} FROM ${t} WHERE ${sidList} AND ${bucketRange} GROUP BY sid, b ORDER BY sid, b`;
    return { resolution: plan.resolution, rows: await this.rows(sql) };
  }

  async querySeries(q: SeriesQuery): Promise<Series[]> {
    validateSeriesQuery(q);
    const series = this.sidsFor(MEASUREMENTS.readings, q);
    if (series.size === 0) return [];
    const { resolution, rows } = await this.seriesRows('readings', [...series.keys()], q, {
      raw: 'arg_max(value, seq) AS v',
      onTheFly: 'avg(v), min(v), max(v)',
      native: 'value, min, max',
      regroup: 'sum(sum) / sum(count), min(min), max(max)',
    });
    const grouped = this.bySid<SeriesPoint>(rows, (r) => (resolution === 'raw' ? { ts: Number(r[1]), value: Number(r[2]) } : { ts: Number(r[1]), value: Number(r[2]), min: Number(r[3]), max: Number(r[4]) }));
    return sortSeries(
      [...grouped].map(([sid, points]) => {
        const s = series.get(sid)!;
        return { site: s.site, line: s.line, machine: s.machine, sensor: s.sensor, resolution, points: capPoints(points, q.maxPoints) };
      }),
    );
  }

  async queryScores(q: SeriesQuery): Promise<{ sensor: string; resolution: string; points: ScoreSeriesPoint[] }[]> {
    validateSeriesQuery(q);
    const series = this.sidsFor(MEASUREMENTS.scores, q);
    if (series.size === 0) return [];
    const { resolution, rows } = await this.seriesRows('scores', [...series.keys()], q, {
      raw: 'arg_max(value, seq) AS v, arg_max(predicted, seq) AS p, arg_max(lower, seq) AS lo, arg_max(upper, seq) AS hi, arg_max(likelihood, seq) AS li',
      onTheFly: 'avg(v), avg(p), min(lo), max(hi), max(li)',
      native: 'value, predicted, lower, upper, likelihood',
      regroup: 'sum(value_sum) / sum(count), sum(predicted_sum) / sum(count), min(lower), max(upper), max(likelihood)',
    });
    const grouped = this.bySid<ScoreSeriesPoint>(rows, (r) => ({ ts: Number(r[1]), value: Number(r[2]), predicted: Number(r[3]), lower: Number(r[4]), upper: Number(r[5]), likelihood: Number(r[6]) }));
    return [...grouped]
      .map(([sid, points]) => ({ sensor: series.get(sid)!.sensor, resolution, points: points.slice(0, q.maxPoints) }))
      .sort((a, b) => a.sensor.localeCompare(b.sensor));
  }

  async queryMachineScores(q: Omit<SeriesQuery, 'sensor'>): Promise<{ site: string; line: string; machine: string; resolution: string; points: MachineScorePoint[] }[]> {
    validateSeriesQuery(q);
    const series = this.sidsFor(MEASUREMENTS.machineScores, q);
    if (series.size === 0) return [];
    const sidList = `sid IN (${[...series.keys()].join(',')})`;
    const range = `ts >= ${int(q.from)} AND ts < ${int(Math.ceil(q.to))}`;
    const dedup = `SELECT sid, ts, arg_max(raw_score, seq) AS rs, arg_max(likelihood, seq) AS li, arg_max(contributions, seq) AS co FROM machine_scores WHERE ${sidList} AND ${range} GROUP BY sid, ts`;
    const [[max]] = await this.rows(`SELECT coalesce(max(n), 0) FROM (SELECT sid, count(DISTINCT ts) AS n FROM machine_scores WHERE ${sidList} AND ${range} GROUP BY sid)`);
    let resolution = 'raw';
    let grouped: Map<number, MachineScorePoint[]>;
    if (Number(max) <= q.maxPoints) {
      grouped = this.bySid(await this.rows(`${dedup} ORDER BY sid, ts`), (r) => ({ ts: Number(r[1]), rawScore: Number(r[2]), likelihood: Number(r[3]), contributions: JSON.parse(String(r[4])) as Record<string, number> }));
    } else {
      const plan = planAggregate(q.from, q.to, q.maxPoints, true);
      resolution = plan.resolution;
      grouped = this.bySid(await this.rows(`SELECT sid, ts - ts % ${plan.bucketMs} AS b, max(rs), max(li) FROM (${dedup}) GROUP BY sid, b ORDER BY sid, b`), (r) => ({ ts: Number(r[1]), rawScore: Number(r[2]), likelihood: Number(r[3]) }));
    }
    return [...grouped].map(([sid, points]) => {
      const s = series.get(sid)!;
      return { site: s.site, line: s.line, machine: s.machine, resolution, points: points.slice(0, q.maxPoints) };
    });
  }

  async queryAlerts(q: { machine?: string; from: number; to: number; limit: number }): Promise<Alert[]> {
    const machine = q.machine === undefined ? '' : `machine = $1 AND `;
    const sql = `SELECT fingerprint, updated_at, rule, severity, status, site, line, machine, sensor, labels, summary, value, starts_at, ends_at, acknowledged_by, acknowledged_at, silenced_until
      FROM alerts WHERE ${machine}updated_at >= ${int(q.from)} AND updated_at < ${int(Math.ceil(q.to))} ORDER BY updated_at DESC LIMIT ${int(Math.max(1, q.limit))}`;
    const rows = await this.serialRead(async () => (await this.conn('reader').runAndReadAll(sql, q.machine === undefined ? undefined : [q.machine])).getRows());
    return rows.map((r) => ({
      fingerprint: String(r[0]),
      rule: String(r[2]),
      severity: String(r[3]) as Severity,
      status: String(r[4]) as AlertStatus,
      site: String(r[5]),
      line: String(r[6]),
      machine: String(r[7]),
      ...(r[8] === null ? {} : { sensor: String(r[8]) }),
      labels: JSON.parse(String(r[9])) as Record<string, string>,
      summary: String(r[10]),
      value: num(r[11]),
      startsAt: Number(r[12]),
      endsAt: num(r[13]),
      acknowledgedBy: r[14] === null ? null : String(r[14]),
      acknowledgedAt: num(r[15]),
      silencedUntil: num(r[16]),
      updatedAt: Number(r[1]),
    }));
  }

  async latest(filter: { site?: string; line?: string; machine?: string }): Promise<LatestValue[]> {
    const series = this.sidsFor(MEASUREMENTS.readings, filter);
    if (series.size === 0) return [];
    await this.flushLatest();
    const rows = await this.rows(`SELECT sid, ts, value, unit, quality FROM latest WHERE sid IN (${[...series.keys()].join(',')})`);
    return sortSeries(
      rows.map((r) => {
        const s = series.get(Number(r[0]))!;
        const lv: LatestValue = { site: s.site, line: s.line, machine: s.machine, sensor: s.sensor, ts: Number(r[1]), value: Number(r[2]) };
        if (r[3] !== null) lv.unit = String(r[3]);
        if (r[4] !== null) lv.quality = String(r[4]);
        return lv;
      }),
    );
  }

  async machines(): Promise<MachineInfo[]> {
    return groupMachines(await this.latest({}));
  }

  async close(): Promise<void> {
    if (this.closed || !this.instance) {
      this.closed = true;
      return;
    }
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.writeChain.catch(() => undefined);
    await this.flushLatest().catch((err) => this.logger.warn({ err }, 'latest-value flush at close failed; rebuilt on the next start'));
    await this.flushRollups().catch((err) => this.logger.warn({ err }, 'rollup refresh at close failed; recomputed on the next start'));
    await this.readChain.catch(() => undefined);
    this.closed = true;
    for (const a of this.appenders.values()) {
      try {
        a.closeSync();
      } catch {
        // flushed per batch already
      }
    }
    this.appenders.clear();
    this.writer?.closeSync();
    this.reader?.closeSync();
    this.instance.closeSync();
    this.instance = undefined;
  }
}
