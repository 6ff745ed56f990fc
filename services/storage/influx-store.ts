/**
 * TimeSeriesStore on InfluxDB 1.x: the ONLY module that imports the `influx` package.
 *
 * Writes: our own schema-specific line protocol (schema.ts) posted through the package's connection
 * pool. The package's generic `writePoints` serializer reached ~60% of the raw /write rate here
 * (190k vs 310k points/s); ours is within a few percent of it. Errors follow Telegraf's table:
 * 400/422 → the batch is bisected down to the refused points, which are returned as rejected;
 * 413 → split; 429/5xx/timeouts/connection errors → StorageUnavailableError (retriable, with
 * Retry-After when the package lets us see it); 401/403 → retriable STORAGE_UNAUTHORIZED;
 * 404 "database not found" → set up again, then retriable.
 *
 * Setup (`init`): database, retention policies `plantwatch_raw` (default, raw points) and
 * `plantwatch_rollup`, continuous queries `pw_*_v1` downsampling readings and scores to 1m and 1h.
 * CQs only look back over their RESAMPLE FOR window, so points that arrive later than that (replays,
 * backfills) mark their hours dirty and `flushRollups()` re-runs the same SELECT … INTO over them.
 */
import { InfluxDB } from 'influx';
import type { IBackoffStrategy } from 'influx/lib/src/backoff/backoff.js';
import { ServiceNotAvailableError } from 'influx/lib/src/pool.js';
import type { Alert, MachineScore, Reading, SensorScore } from '../../common/messages.ts';
import { ConfigError } from '../../common/errors.ts';
import type { Logger } from '../../common/logger.ts';
import type { AlertStatus, Severity } from '../../common/messages.ts';
import type { LatestValue, MachineInfo, ScoreSeriesPoint, Series, SeriesPoint, SeriesQuery, WriteResult } from './store.ts';
import type { BatchWriteResult, MachineScorePoint, StorageBackend, StoreOptions } from './backend.ts';
import { ReadingLineWriter } from './line-protocol.ts';
import { ReadingBatch, SeriesInterner, type SeriesEntry } from '../../common/reading-batch.ts';
import { CardinalityGuard } from './cardinality.ts';
import { STORAGE_ERRORS, StorageUnavailableError } from './errors.ts';
import { DAY, HOUR, MINUTE, capPoints, planAggregate, validateSeriesQuery } from './plan.ts';
import {
  MEASUREMENTS,
  ROLLUP_MEASUREMENTS,
  SensorMap,
  alertLine,
  alertSeriesKey,
  machineKeyOf,
  machineScoreLine,
  machineSeriesKey,
  sensorScoreLine,
  sensorSeriesKey,
} from './schema.ts';

export const RAW_RP = 'plantwatch_raw';
export const ROLLUP_RP = 'plantwatch_rollup';
/** CQ names carry a version: a changed definition gets a new name and the old one is dropped. */
const CQ_PREFIX = 'pw_';
const CQ_VERSION = 'v1';
/** Points older than this (vs. now) fall outside the 1m CQ's RESAMPLE FOR 10m window: backfill them. */
const LATE_AFTER_MS = 8 * MINUTE;
/** Refuse points this close to the raw retention edge: InfluxDB would drop them (partial write). */
const RETENTION_MARGIN_MS = MINUTE;
const BACKFILL_DEBOUNCE_MS = 2_000;
/** Bodies up to this size are measured through one resizable ArrayBuffer (see post()). */
const MAX_PROBE_BYTES = 64 << 20;

interface RawSeries {
  name: string;
  tags?: Record<string, string>;
  columns: string[];
  values: unknown[][];
}

type RawPool = {
  // The pool passes `body` to Buffer.from (content-length) and req.write: a Buffer avoids encoding twice.
  discard(options: { method: 'POST'; path: string; query?: Record<string, unknown>; body?: string | Buffer; auth?: string }): Promise<void>;
};

class BatchRejected extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/**
 * The package disables a host after a failure for an exponentially growing time (up to 10 s by
 * default) and fails every request meanwhile. The writer has its own backoff, so the pool never
 * disables the host: the first write after InfluxDB is back goes through.
 */
const neverDisable: IBackoffStrategy = {
  getDelay: () => 0,
  next: () => neverDisable,
  reset: () => neverDisable,
};

const RETRIABLE_SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED', 'UND_ERR_SOCKET']);

function quoteIdent(name: string): string {
  return `"${name.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function quoteString(v: string): string {
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function parseRetryAfter(header: unknown): number | undefined {
  if (typeof header !== 'string' || header === '') return undefined;
  const secs = Number(header);
  if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
  const at = Date.parse(header);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : undefined;
}

export class InfluxStore implements StorageBackend {
  readonly kind = 'influx' as const;
  readonly database: string;
  private readonly influx: InfluxDB;
  private readonly pool: RawPool;
  private readonly auth: string | undefined;
  private readonly logger: Logger;
  private readonly guard: CardinalityGuard;
  private readonly now: () => number;
  private readonly qdb: string;
  private needsInit = true;
  private initializing: Promise<void> | undefined;
  /** Hour starts holding late points, per raw measurement, awaiting a rollup backfill. */
  private readonly dirtyHours = { readings: new Set<number>(), scores: new Set<number>() };
  private backfillTimer: NodeJS.Timeout | undefined;
  private backfillChain: Promise<void> = Promise.resolve();
  private closed = false;
  /**
   * Admitted reading series: their line start (`readings,<tags> value=`) is cached on the batch's
   * SeriesEntry while `cacheOwner` is this token; a new token (series reloaded) invalidates them all.
   */
  private seriesToken: object = {};
  /** Interns series of readings handed in as objects (`writeReadings`). */
  private readonly interner = new SeriesInterner();
  private readonly lines = new ReadingLineWriter();
  private lengthProbe: (ArrayBuffer & { resize(n: number): void }) | undefined;
  private readonly scoreKeys = new SensorMap<string>();

  constructor(
    url: string,
    private readonly opts: StoreOptions,
  ) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new ConfigError(`influx.url: not a URL: ${url}`);
    }
    const db = decodeURIComponent(u.pathname.replace(/^\/+|\/+$/g, ''));
    if (!db || db.includes('/')) throw new ConfigError(`influx.url: the database must be the URL path, e.g. http://127.0.0.1:8086/plantwatch (got ${u.pathname || '/'})`);
    this.database = db;
    this.qdb = quoteIdent(db);
    this.logger = opts.logger.child({ store: 'influx' });
    this.now = opts.now ?? Date.now;
    const username = u.username ? decodeURIComponent(u.username) : undefined;
    const password = u.password ? decodeURIComponent(u.password) : undefined;
    this.auth = username !== undefined ? `${username}:${password ?? ''}` : undefined;
    const protocol = u.protocol === 'https:' ? 'https' : 'http';
    this.influx = new InfluxDB({
      host: u.hostname,
      port: Number(u.port || (protocol === 'https' ? 443 : 80)),
      protocol,
      database: db,
      username,
      password,
      pool: { maxRetries: 0, requestTimeout: opts.requestTimeoutMs, backoff: neverDisable },
    });
    // The package's pool is private; we send our own line protocol through it (see header).
    this.pool = (this.influx as unknown as { _pool: RawPool })._pool;
    this.guard = new CardinalityGuard({ maxSeriesPerMachine: opts.maxSeriesPerMachine, maxSeries: opts.maxSeries }, this.logger, opts.metrics);
  }

  // ---------------------------------------------------------------- setup

  async init(): Promise<void> {
    this.initializing ??= this.setup().finally(() => {
      this.initializing = undefined;
    });
    return this.initializing;
  }

  private async setup(): Promise<void> {
    await this.privileged('create the database', () => this.exec(`CREATE DATABASE ${this.qdb}`));
    await this.privileged('set up retention policies', async () => {
      await this.ensureRetentionPolicy(RAW_RP, this.opts.rawRetentionDays, true);
      await this.ensureRetentionPolicy(ROLLUP_RP, this.opts.rollupRetentionDays, false);
    });
    await this.privileged('set up continuous queries', () => this.ensureContinuousQueries());
    await this.privileged('load known series for the cardinality guard', () => this.loadSeries());
    this.needsInit = false;
    this.logger.info({ database: this.database, rawDays: this.opts.rawRetentionDays, rollupDays: this.opts.rollupRetentionDays, series: this.guard.size }, 'influx store ready');
  }

  /**
   * Runs a setup step that needs more than write permission. A least-privilege user (WRITE on the
   * database only) gets 403 for it: that is logged and setup goes on, so writes are not blocked by
   * what an administrator set up already (README › Schema lists the statements).
   */
  private async privileged(what: string, step: () => Promise<void>): Promise<void> {
    try {
      await step();
    } catch (err) {
      if ((err as { res?: { statusCode?: number } }).res?.statusCode !== 403) throw err;
      this.logger.warn({ err: (err as Error).message }, `InfluxDB user may not ${what}; skipped (an administrator must run it)`);
    }
  }

  private async ensureRetentionPolicy(name: string, days: number, isDefault: boolean): Promise<void> {
    const [res] = await this.queryAll(`SHOW RETENTION POLICIES ON ${this.qdb}`);
    const rows = res?.[0]?.values ?? [];
    const cols = res?.[0]?.columns ?? [];
    const existing = rows.find((r) => r[cols.indexOf('name')] === name);
    const clause = `DURATION ${days}d REPLICATION 1${isDefault ? ' DEFAULT' : ''}`;
    if (!existing) {
      await this.exec(`CREATE RETENTION POLICY ${quoteIdent(name)} ON ${this.qdb} ${clause}`);
      this.logger.info({ rp: name, days }, 'retention policy created');
      return;
    }
    const duration = String(existing[cols.indexOf('duration')]);
    const wasDefault = existing[cols.indexOf('default')] === true;
    if (duration !== `${days * 24}h0m0s` || wasDefault !== isDefault) {
      await this.exec(`ALTER RETENTION POLICY ${quoteIdent(name)} ON ${this.qdb} ${clause}`);
      this.logger.info({ rp: name, days, was: duration }, 'retention policy altered');
    }
  }

  /** The SELECT … INTO of each rollup; CQs wrap it, backfills add a time range. */
  private rollupSelects(): { name: string; source: 'readings' | 'scores'; bucket: '1m' | '1h'; every: string; forWindow: string; select: string; into: string }[] {
    const raw = (m: string) => `${this.qdb}.${quoteIdent(RAW_RP)}.${quoteIdent(m)}`;
    const rollup = (m: string) => `${this.qdb}.${quoteIdent(ROLLUP_RP)}.${quoteIdent(m)}`;
    const readingFields = `mean("value") AS "value", min("value") AS "min", max("value") AS "max", count("value") AS "count", sum("value") AS "sum"`;
    const scoreFields =
      `mean("value") AS "value", sum("value") AS "value_sum", mean("predicted") AS "predicted", sum("predicted") AS "predicted_sum", ` +
      `min("lower") AS "lower", max("upper") AS "upper", max("likelihood") AS "likelihood", max("raw_score") AS "raw_score", count("value") AS "count"`;
    return [
      { name: 'readings_1m', source: 'readings', bucket: '1m', every: '1m', forWindow: '10m', select: readingFields, into: rollup(ROLLUP_MEASUREMENTS.readings1m) },
      { name: 'readings_1h', source: 'readings', bucket: '1h', every: '10m', forWindow: '2h', select: readingFields, into: rollup(ROLLUP_MEASUREMENTS.readings1h) },
      { name: 'scores_1m', source: 'scores', bucket: '1m', every: '1m', forWindow: '10m', select: scoreFields, into: rollup(ROLLUP_MEASUREMENTS.scores1m) },
      { name: 'scores_1h', source: 'scores', bucket: '1h', every: '10m', forWindow: '2h', select: scoreFields, into: rollup(ROLLUP_MEASUREMENTS.scores1h) },
    ].map((r) => ({ ...r, source: r.source as 'readings' | 'scores', bucket: r.bucket as '1m' | '1h', select: `SELECT ${r.select} INTO ${r.into} FROM ${raw(r.source)}` }));
  }

  private async ensureContinuousQueries(): Promise<void> {
    const wanted = new Map(this.rollupSelects().map((r) => [`${CQ_PREFIX}${r.name}_${CQ_VERSION}`, r]));
    const res = await this.queryAll('SHOW CONTINUOUS QUERIES');
    const ours = (res[0] ?? []).find((s) => s.name === this.database);
    const existing = new Set((ours?.values ?? []).map((v) => String(v[0])));
    for (const name of existing) {
      if (name.startsWith(CQ_PREFIX) && !wanted.has(name)) {
        await this.exec(`DROP CONTINUOUS QUERY ${quoteIdent(name)} ON ${this.qdb}`);
        this.logger.info({ cq: name }, 'outdated continuous query dropped');
      }
    }
    for (const [name, r] of wanted) {
      if (existing.has(name)) continue;
      await this.exec(
        `CREATE CONTINUOUS QUERY ${quoteIdent(name)} ON ${this.qdb} RESAMPLE EVERY ${r.every} FOR ${r.forWindow} BEGIN ${r.select} GROUP BY time(${r.bucket}), * END`,
      );
      this.logger.info({ cq: name }, 'continuous query created');
    }
  }

  /** Loads the raw measurements' series into the cardinality guard. */
  private async loadSeries(): Promise<void> {
    this.guard.clear();
    this.seriesToken = {};
    this.scoreKeys.clear();
    const measurements = [MEASUREMENTS.readings, MEASUREMENTS.scores, MEASUREMENTS.machineScores, MEASUREMENTS.alerts];
    const res = await this.queryAll(`SHOW SERIES ON ${this.qdb} FROM ${measurements.map(quoteIdent).join(', ')}`);
    for (const s of res[0] ?? []) {
      for (const [key] of s.values) {
        const k = String(key);
        const tags = parseSeriesTags(k);
        if (tags.site && tags.line && tags.machine) this.guard.preload(k, machineKeyOf(tags as { site: string; line: string; machine: string }));
      }
    }
  }

  // ---------------------------------------------------------------- writes

  async writeReadings(readings: Reading[]): Promise<WriteResult> {
    const res = await this.writeReadingBatch(ReadingBatch.fromReadings(readings, this.interner));
    return { written: res.written, rejected: res.rejected.map((r) => ({ code: r.code, reason: r.reason, item: readings[r.index] })) };
  }

  /** The admitted series' line start, or undefined when the cardinality guard refuses it. */
  private readingHead(e: SeriesEntry): Uint8Array | undefined {
    if (e.cacheOwner === this.seriesToken) return e.cacheValue as Uint8Array;
    const key = sensorSeriesKey(MEASUREMENTS.readings, e);
    if (!this.guard.admit(MEASUREMENTS.readings, key, e)) return undefined;
    const head = Buffer.from(`${key} value=`, 'latin1');
    e.cacheOwner = this.seriesToken;
    e.cacheValue = head;
    return head;
  }

  async writeReadingBatch(batch: ReadingBatch): Promise<BatchWriteResult> {
    const rejected: BatchWriteResult['rejected'] = [];
    const now = this.now();
    const cutoff = now - this.opts.rawRetentionDays * DAY + RETENTION_MARGIN_MS;
    const lateBefore = now - LATE_AFTER_MS;
    const n = batch.n;
    /** Points written and where each one's line ends in the body (for bisecting a 400). */
    const points = new Int32Array(n);
    const ends = new Int32Array(n);
    let count = 0;
    const out = this.lines;
    out.reset(n * 160 + 1024);
    let lateHours: Set<number> | undefined;
    for (let i = 0; i < n; i++) {
      const ts = batch.ts[i];
      if (ts < cutoff) {
        rejected.push({ index: i, code: STORAGE_ERRORS.tooOld, reason: `event time ${new Date(ts).toISOString()} is older than the raw retention (${this.opts.rawRetentionDays} d)` });
        continue;
      }
      const head = this.readingHead(batch.series[i]);
      if (head === undefined) {
        rejected.push({ index: i, code: STORAGE_ERRORS.cardinality, reason: 'new series beyond the cardinality limit' });
        continue;
      }
      out.reading(batch, i, head);
      points[count] = i;
      ends[count++] = out.pos;
      if (ts < lateBefore) (lateHours ??= new Set()).add(ts - (ts % HOUR));
    }
    const body = out.body();
    const buffer = out.buf;
    const res = await this.writeBody(body, points, ends, 0, count);
    // Every request with this body has been answered: its buffer may be reused. (Not after an
    // error: a failed socket may not be done with it.)
    out.release(buffer);
    if (lateHours) this.markLateHours('readings', lateHours);
    return { written: res.written, rejected: rejected.concat(res.rejected) };
  }

  /**
   * Posts lines [from, to) of a body; on 400/413 bisects so that only the refused points come back
   * as rejected (by batch index).
   */
  private async writeBody(body: Buffer, points: Int32Array, ends: Int32Array, from: number, to: number): Promise<BatchWriteResult> {
    if (to <= from) return { written: 0, rejected: [] };
    const start = from === 0 ? 0 : ends[from - 1];
    try {
      await this.post(body.subarray(start, ends[to - 1] - 1), RAW_RP); // without the last '\n'
      return { written: to - from, rejected: [] };
    } catch (err) {
      if (!(err instanceof BatchRejected)) throw err;
      if (to - from === 1) {
        this.logger.warn({ code: STORAGE_ERRORS.rejected, status: err.status, line: body.toString('utf8', start, Math.min(ends[from] - 1, start + 500)), reason: err.message }, 'InfluxDB refused a point');
        return { written: 0, rejected: [{ index: points[from], code: STORAGE_ERRORS.rejected, reason: `InfluxDB ${err.status}: ${err.message}` }] };
      }
      // Good points of a partial write were stored already; writing them again overwrites them.
      const mid = (from + to) >> 1;
      const a = await this.writeBody(body, points, ends, from, mid);
      const b = await this.writeBody(body, points, ends, mid, to);
      return { written: a.written + b.written, rejected: a.rejected.concat(b.rejected) };
    }
  }

  async writeScores(scores: (SensorScore | MachineScore)[]): Promise<WriteResult> {
    const lines: string[] = [];
    const items: (SensorScore | MachineScore)[] = [];
    const rejected: WriteResult['rejected'] = [];
    const now = this.now();
    const cutoff = now - this.opts.rawRetentionDays * DAY + RETENTION_MARGIN_MS;
    const sensorScores: SensorScore[] = [];
    for (const s of scores) {
      if (s.ts < cutoff) {
        rejected.push({ code: STORAGE_ERRORS.tooOld, reason: `event time ${new Date(s.ts).toISOString()} is older than the raw retention (${this.opts.rawRetentionDays} d)`, item: s });
        continue;
      }
      let key = s.kind === 'sensor' ? this.scoreKeys.get(s) : undefined;
      if (key === undefined) {
        const measurement = s.kind === 'sensor' ? MEASUREMENTS.scores : MEASUREMENTS.machineScores;
        key = s.kind === 'sensor' ? sensorSeriesKey(measurement, s) : machineSeriesKey(measurement, s);
        if (!this.guard.admit(measurement, key, s)) {
          rejected.push({ code: STORAGE_ERRORS.cardinality, reason: 'new series beyond the cardinality limit', item: s });
          continue;
        }
        if (s.kind === 'sensor') this.scoreKeys.set(s, key);
      }
      lines.push(s.kind === 'sensor' ? sensorScoreLine(s, key) : machineScoreLine(s));
      items.push(s);
      if (s.kind === 'sensor') sensorScores.push(s);
    }
    const res = await this.writeLines(lines, items, RAW_RP);
    this.markLate('scores', sensorScores, now);
    return { written: res.written, rejected: rejected.concat(res.rejected) };
  }

  async writeAlerts(alerts: Alert[]): Promise<WriteResult> {
    const lines: string[] = [];
    const items: Alert[] = [];
    const rejected: WriteResult['rejected'] = [];
    const cutoff = this.now() - this.opts.rawRetentionDays * DAY + RETENTION_MARGIN_MS;
    for (const a of alerts) {
      if (a.updatedAt < cutoff) {
        rejected.push({ code: STORAGE_ERRORS.tooOld, reason: 'alert state change older than the raw retention', item: a });
        continue;
      }
      if (!this.guard.admit(MEASUREMENTS.alerts, alertSeriesKey(a), a)) {
        rejected.push({ code: STORAGE_ERRORS.cardinality, reason: 'new series beyond the cardinality limit', item: a });
        continue;
      }
      lines.push(alertLine(a));
      items.push(a);
    }
    const res = await this.writeLines(lines, items, RAW_RP);
    return { written: res.written, rejected: rejected.concat(res.rejected) };
  }

  /** Posts lines; on 400/413 bisects so that only the refused points are returned as rejected. */
  private async writeLines<T>(lines: string[], items: T[], rp: string): Promise<{ written: number; rejected: WriteResult['rejected'] }> {
    if (lines.length === 0) return { written: 0, rejected: [] };
    try {
      await this.post(Buffer.from(lines.join('\n')), rp);
      return { written: lines.length, rejected: [] };
    } catch (err) {
      if (!(err instanceof BatchRejected)) throw err;
      if (lines.length === 1) {
        this.logger.warn({ code: STORAGE_ERRORS.rejected, status: err.status, line: lines[0].slice(0, 500), reason: err.message }, 'InfluxDB refused a point');
        return { written: 0, rejected: [{ code: STORAGE_ERRORS.rejected, reason: `InfluxDB ${err.status}: ${err.message}`, item: items[0] }] };
      }
      // Good points of a partial write were stored already; writing them again overwrites them.
      const mid = lines.length >> 1;
      const a = await this.writeLines(lines.slice(0, mid), items.slice(0, mid), rp);
      const b = await this.writeLines(lines.slice(mid), items.slice(mid), rp);
      return { written: a.written + b.written, rejected: a.rejected.concat(b.rejected) };
    }
  }

  /** An ArrayBuffer of `n` bytes without allocating one per request (contents unused). */
  private lengthOf(n: number): ArrayBuffer {
    if (n > MAX_PROBE_BYTES) return new ArrayBuffer(n);
    const probe = (this.lengthProbe ??= new (ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer & { resize(n: number): void })(0, { maxByteLength: MAX_PROBE_BYTES }));
    probe.resize(n);
    return probe;
  }

  private async post(body: Buffer, rp: string): Promise<void> {
    if (this.closed) throw new StorageUnavailableError('store is closed');
    if (this.needsInit) {
      try {
        await this.init();
      } catch (err) {
        throw this.classify(err, 'setup');
      }
    }
    // The pool sizes a body with `Buffer.from(body).length`, a full copy (~0.6 MB per batch, which
    // kept V8's collector busy). Buffer.from() takes an object's valueOf(); an ArrayBuffer of the
    // body's length makes it a view instead of a copy. The data sent is still `body` (req.write).
    const sized = Object.assign(body, { valueOf: () => this.lengthOf(body.length) });
    try {
      await this.pool.discard({ method: 'POST', path: '/write', query: { db: this.database, rp, precision: 'ms' }, body: sized, auth: this.auth });
    } catch (err) {
      throw this.classify(err, 'write');
    }
  }

  /** Maps a package/socket error onto BatchRejected (not retriable) or StorageUnavailableError. */
  private classify(err: unknown, op: string): Error {
    if (err instanceof BatchRejected || err instanceof StorageUnavailableError) return err;
    const e = err as { res?: { statusCode?: number; headers?: Record<string, unknown> }; code?: string; message?: string; name?: string };
    const status = e.res?.statusCode;
    const message = String(e.message ?? err).replace(/^A \d+ [^:]*error occurred: /, '');
    if (status !== undefined) {
      if (status === 400 || status === 422 || status === 413) {
        if (op === 'write') return new BatchRejected(message, status);
        return new StorageUnavailableError(`InfluxDB ${op} failed with ${status}: ${message}`, { cause: err, context: { status } });
      }
      if (status === 401 || status === 403)
        return new StorageUnavailableError(`InfluxDB refused the credentials (${status}): ${message}`, { cause: err, code: STORAGE_ERRORS.unauthorized, context: { status } });
      if (status === 404 && /database not found/i.test(message)) {
        this.needsInit = true;
        return new StorageUnavailableError(`InfluxDB lost the database, setting it up again: ${message}`, { cause: err, context: { status } });
      }
      return new StorageUnavailableError(`InfluxDB ${op} answered ${status}: ${message}`, { cause: err, retryAfterMs: parseRetryAfter(e.res?.headers?.['retry-after']), context: { status } });
    }
    // The package turns 5xx answers and timeouts into ServiceNotAvailableError (status and headers dropped).
    if (err instanceof ServiceNotAvailableError || (e.code && RETRIABLE_SOCKET_CODES.has(e.code)))
      return new StorageUnavailableError(`InfluxDB unavailable during ${op}: ${e.code ?? message}`, { cause: err });
    return err instanceof Error ? err : new Error(String(err));
  }

  private markLate(kind: 'readings' | 'scores', items: { ts: number }[], now: number): void {
    const hours = new Set<number>();
    for (const p of items) if (p.ts < now - LATE_AFTER_MS) hours.add(p.ts - (p.ts % HOUR));
    if (hours.size > 0) this.markLateHours(kind, hours);
  }

  private markLateHours(kind: 'readings' | 'scores', hours: Set<number>): void {
    const set = this.dirtyHours[kind];
    const before = set.size;
    for (const h of hours) set.add(h);
    if (set.size > before && !this.backfillTimer && !this.closed) {
      this.backfillTimer = setTimeout(() => {
        this.backfillTimer = undefined;
        this.flushRollups().catch((err) => this.logger.warn({ err }, 'rollup backfill failed; will retry with the next late point or query'));
      }, BACKFILL_DEBOUNCE_MS);
      this.backfillTimer.unref();
    }
  }

  async flushRollups(): Promise<void> {
    const run = async () => {
      for (const kind of ['readings', 'scores'] as const) {
        const set = this.dirtyHours[kind];
        if (set.size === 0) continue;
        const hours = [...set].sort((a, b) => a - b);
        set.clear();
        try {
          for (const [from, to] of mergeRuns(hours, HOUR)) {
            for (const r of this.rollupSelects().filter((x) => x.source === kind)) {
              await this.exec(`${r.select} WHERE time >= ${from}ms AND time < ${to}ms GROUP BY time(${r.bucket}), *`);
            }
          }
        } catch (err) {
          for (const h of hours) set.add(h);
          throw err;
        }
      }
    };
    this.backfillChain = this.backfillChain.catch(() => undefined).then(run);
    return this.backfillChain;
  }

  async enforceRetention(): Promise<void> {
    // InfluxDB drops expired shard groups itself (retention policies).
  }

  // ---------------------------------------------------------------- queries

  private async queryAll(q: string): Promise<RawSeries[][]> {
    const res = (await this.influx.queryRaw(q, { precision: 'ms' as never, database: this.database })) as { results?: { error?: string; series?: RawSeries[] }[]; error?: string };
    if (res.error) throw new Error(`InfluxDB query failed: ${res.error} (${q.slice(0, 200)})`);
    return (res.results ?? []).map((r) => {
      if (r.error) throw new Error(`InfluxDB query failed: ${r.error} (${q.slice(0, 200)})`);
      return r.series ?? [];
    });
  }

  private async exec(q: string): Promise<void> {
    await this.queryAll(q);
  }

  private async select(q: string): Promise<RawSeries[]> {
    return (await this.queryAll(q))[0] ?? [];
  }

  private where(q: { site?: string; line?: string; machine?: string; sensor?: string }, from?: number, to?: number): string {
    const parts: string[] = [];
    for (const k of ['site', 'line', 'machine', 'sensor'] as const) if (q[k] !== undefined) parts.push(`${quoteIdent(k)} = ${quoteString(q[k]!)}`);
    if (from !== undefined) parts.push(`time >= ${Math.floor(from)}ms`);
    if (to !== undefined) parts.push(`time < ${Math.ceil(to)}ms`);
    return parts.length ? ` WHERE ${parts.join(' AND ')}` : '';
  }

  private from(rp: string, measurement: string): string {
    return `${this.qdb}.${quoteIdent(rp)}.${quoteIdent(measurement)}`;
  }

  private rawAvailable(from: number): boolean {
    return from >= this.now() - this.opts.rawRetentionDays * DAY;
  }

  async querySeries(q: SeriesQuery): Promise<Series[]> {
    validateSeriesQuery(q);
    const groupTags = 'GROUP BY "site", "line", "machine", "sensor"';
    const rawOk = this.rawAvailable(q.from);
    if (rawOk) {
      const rows = await this.select(`SELECT "value" FROM ${this.from(RAW_RP, MEASUREMENTS.readings)}${this.where(q, q.from, q.to)} ${groupTags} LIMIT ${q.maxPoints + 1}`);
      if (rows.every((s) => s.values.length <= q.maxPoints)) {
        return sortSeries(rows.map((s) => ({ ...seriesId(s), resolution: 'raw', points: s.values.map((v) => ({ ts: Number(v[0]), value: Number(v[1]) })) })));
      }
    }
    const plan = planAggregate(q.from, q.to, q.maxPoints, rawOk);
    let sql: string;
    if (plan.tier === 'raw') {
      sql = `SELECT mean("value") AS "value", min("value") AS "min", max("value") AS "max" FROM ${this.from(RAW_RP, MEASUREMENTS.readings)}${this.where(q, q.from, q.to)} GROUP BY time(${plan.resolution}), "site", "line", "machine", "sensor" fill(none)`;
    } else {
      await this.flushRollups();
      const tierMs = plan.tier === '1m' ? MINUTE : HOUR;
      const m = this.from(ROLLUP_RP, plan.tier === '1m' ? ROLLUP_MEASUREMENTS.readings1m : ROLLUP_MEASUREMENTS.readings1h);
      const where = this.where(q, q.from - (q.from % tierMs), q.to);
      sql =
        plan.bucketMs === tierMs
          ? `SELECT "value", "min", "max" FROM ${m}${where} ${groupTags}`
          : `SELECT sum("sum") / sum("count") AS "value", min("min") AS "min", max("max") AS "max" FROM ${m}${where} GROUP BY time(${plan.resolution}), "site", "line", "machine", "sensor" fill(none)`;
    }
    const rows = await this.select(sql);
    return sortSeries(
      rows.map((s) => {
        const c = columnIndex(s.columns);
        const points: SeriesPoint[] = s.values
          .filter((v) => v[c.value] !== null)
          .map((v) => ({ ts: Number(v[0]), value: Number(v[c.value]), min: Number(v[c.min]), max: Number(v[c.max]) }));
        return { ...seriesId(s), resolution: plan.resolution, points: capPoints(points, q.maxPoints) };
      }),
    );
  }

  async queryScores(q: SeriesQuery): Promise<{ sensor: string; resolution: string; points: ScoreSeriesPoint[] }[]> {
    validateSeriesQuery(q);
    const groupTags = 'GROUP BY "site", "line", "machine", "sensor"';
    const rawOk = this.rawAvailable(q.from);
    const toPoints = (s: RawSeries): ScoreSeriesPoint[] => {
      const c = columnIndex(s.columns);
      return s.values
        .filter((v) => v[c.value] !== null)
        .map((v) => ({ ts: Number(v[0]), value: Number(v[c.value]), predicted: Number(v[c.predicted]), lower: Number(v[c.lower]), upper: Number(v[c.upper]), likelihood: Number(v[c.likelihood]) }));
    };
    if (rawOk) {
      const rows = await this.select(
        `SELECT "value", "predicted", "lower", "upper", "likelihood" FROM ${this.from(RAW_RP, MEASUREMENTS.scores)}${this.where(q, q.from, q.to)} ${groupTags} LIMIT ${q.maxPoints + 1}`,
      );
      if (rows.every((s) => s.values.length <= q.maxPoints)) return sortBySensor(rows.map((s) => ({ sensor: s.tags?.sensor ?? '', resolution: 'raw', points: toPoints(s) })));
    }
    const plan = planAggregate(q.from, q.to, q.maxPoints, rawOk);
    let sql: string;
    if (plan.tier === 'raw') {
      sql = `SELECT mean("value") AS "value", mean("predicted") AS "predicted", min("lower") AS "lower", max("upper") AS "upper", max("likelihood") AS "likelihood" FROM ${this.from(RAW_RP, MEASUREMENTS.scores)}${this.where(q, q.from, q.to)} GROUP BY time(${plan.resolution}), "site", "line", "machine", "sensor" fill(none)`;
    } else {
      await this.flushRollups();
      const tierMs = plan.tier === '1m' ? MINUTE : HOUR;
      const m = this.from(ROLLUP_RP, plan.tier === '1m' ? ROLLUP_MEASUREMENTS.scores1m : ROLLUP_MEASUREMENTS.scores1h);
      const where = this.where(q, q.from - (q.from % tierMs), q.to);
      sql =
        plan.bucketMs === tierMs
          ? `SELECT "value", "predicted", "lower", "upper", "likelihood" FROM ${m}${where} ${groupTags}`
          : `SELECT sum("value_sum") / sum("count") AS "value", sum("predicted_sum") / sum("count") AS "predicted", min("lower") AS "lower", max("upper") AS "upper", max("likelihood") AS "likelihood" FROM ${m}${where} GROUP BY time(${plan.resolution}), "site", "line", "machine", "sensor" fill(none)`;
    }
    const rows = await this.select(sql);
    return sortBySensor(rows.map((s) => ({ sensor: s.tags?.sensor ?? '', resolution: plan.resolution, points: toPoints(s).slice(0, q.maxPoints) })));
  }

  async queryMachineScores(q: Omit<SeriesQuery, 'sensor'>): Promise<{ site: string; line: string; machine: string; resolution: string; points: MachineScorePoint[] }[]> {
    validateSeriesQuery(q);
    const groupTags = 'GROUP BY "site", "line", "machine"';
    const m = this.from(RAW_RP, MEASUREMENTS.machineScores);
    const id = (s: RawSeries) => ({ site: s.tags?.site ?? '', line: s.tags?.line ?? '', machine: s.tags?.machine ?? '' });
    const rows = await this.select(`SELECT "raw_score", "likelihood", "contributions" FROM ${m}${this.where(q, q.from, q.to)} ${groupTags} LIMIT ${q.maxPoints + 1}`);
    if (rows.every((s) => s.values.length <= q.maxPoints)) {
      return rows.map((s) => ({
        ...id(s),
        resolution: 'raw',
        points: s.values.map((v) => ({ ts: Number(v[0]), rawScore: Number(v[1]), likelihood: Number(v[2]), contributions: safeJson(v[3]) as Record<string, number> | undefined })),
      }));
    }
    // Machine scores have no stored rollup: grouped on the fly from raw (max keeps spikes visible).
    const plan = planAggregate(q.from, q.to, q.maxPoints, true);
    const agg = await this.select(
      `SELECT max("raw_score") AS "raw_score", max("likelihood") AS "likelihood" FROM ${m}${this.where(q, q.from, q.to)} GROUP BY time(${plan.resolution}), "site", "line", "machine" fill(none)`,
    );
    return agg.map((s) => ({ ...id(s), resolution: plan.resolution, points: s.values.map((v) => ({ ts: Number(v[0]), rawScore: Number(v[1]), likelihood: Number(v[2]) })).slice(0, q.maxPoints) }));
  }

  async queryAlerts(q: { machine?: string; from: number; to: number; limit: number }): Promise<Alert[]> {
    const rows = await this.select(
      `SELECT * FROM ${this.from(RAW_RP, MEASUREMENTS.alerts)}${this.where({ machine: q.machine }, q.from, q.to)} ORDER BY time DESC LIMIT ${Math.max(1, Math.floor(q.limit))}`,
    );
    const out: Alert[] = [];
    for (const s of rows) {
      const c = columnIndex(s.columns);
      for (const v of s.values) {
        const get = (k: string) => (c[k] === undefined ? null : v[c[k]]);
        const num = (k: string) => (get(k) === null ? null : Number(get(k)));
        out.push({
          fingerprint: String(get('fingerprint')),
          rule: String(get('rule')),
          severity: String(get('severity')) as Severity,
          status: String(get('status')) as AlertStatus,
          site: String(get('site')),
          line: String(get('line')),
          machine: String(get('machine')),
          ...(get('sensor') !== null && get('sensor') !== '' ? { sensor: String(get('sensor')) } : {}),
          labels: (safeJson(get('labels')) as Record<string, string> | undefined) ?? {},
          summary: String(get('summary') ?? ''),
          value: num('value'),
          startsAt: Number(get('starts_at')),
          endsAt: num('ends_at'),
          acknowledgedBy: get('acknowledged_by') === null ? null : String(get('acknowledged_by')),
          acknowledgedAt: num('acknowledged_at'),
          silencedUntil: num('silenced_until'),
          updatedAt: Number(v[0]),
        });
      }
    }
    return out;
  }

  async latest(filter: { site?: string; line?: string; machine?: string }): Promise<LatestValue[]> {
    // last() picks by point time, i.e. event time: a late point never replaces a newer one.
    const rows = await this.select(
      `SELECT last("value") AS "value", "unit", "quality" FROM ${this.from(RAW_RP, MEASUREMENTS.readings)}${this.where(filter)} GROUP BY "site", "line", "machine", "sensor"`,
    );
    return sortSeries(
      rows.flatMap((s) =>
        s.values.map((v) => {
          const c = columnIndex(s.columns);
          const lv: LatestValue = { ...seriesId(s), ts: Number(v[0]), value: Number(v[c.value]) };
          if (v[c.unit] !== null && v[c.unit] !== undefined) lv.unit = String(v[c.unit]);
          if (v[c.quality] !== null && v[c.quality] !== undefined) lv.quality = String(v[c.quality]);
          return lv;
        }),
      ),
    );
  }

  async machines(): Promise<MachineInfo[]> {
    const latest = await this.latest({});
    return groupMachines(latest);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.backfillTimer) {
      clearTimeout(this.backfillTimer);
      this.backfillTimer = undefined;
      await this.flushRollups().catch((err) => this.logger.warn({ err }, 'rollup backfill at close failed; the CQs cover recent hours only'));
    }
    await this.backfillChain.catch(() => undefined);
    this.closed = true;
  }
}

function columnIndex(columns: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  columns.forEach((c, i) => (out[c] = i));
  return out;
}

function seriesId(s: RawSeries): { site: string; line: string; machine: string; sensor: string } {
  return { site: s.tags?.site ?? '', line: s.tags?.line ?? '', machine: s.tags?.machine ?? '', sensor: s.tags?.sensor ?? '' };
}

function safeJson(v: unknown): unknown {
  if (typeof v !== 'string') return undefined;
  try {
    return JSON.parse(v);
  } catch {
    return undefined;
  }
}

/** `readings,line=l,machine=m,sensor=s,site=a` → tags. Our identifiers need no unescaping. */
export function parseSeriesTags(key: string): Record<string, string> {
  const out: Record<string, string> = {};
  const parts = key.split(/(?<!\\),/).slice(1);
  for (const p of parts) {
    const eq = p.search(/(?<!\\)=/);
    if (eq > 0) out[p.slice(0, eq).replace(/\\(.)/g, '$1')] = p.slice(eq + 1).replace(/\\(.)/g, '$1');
  }
  return out;
}

/** Sorted starts (aligned to `step`) → merged [from, to) runs. */
export function mergeRuns(starts: number[], step: number): [number, number][] {
  const runs: [number, number][] = [];
  for (const s of starts) {
    const last = runs[runs.length - 1];
    if (last && s <= last[1]) last[1] = Math.max(last[1], s + step);
    else runs.push([s, s + step]);
  }
  return runs;
}

export function sortSeries<T extends { site: string; line: string; machine: string; sensor: string }>(list: T[]): T[] {
  return list.sort((a, b) => `${a.site}/${a.line}/${a.machine}/${a.sensor}`.localeCompare(`${b.site}/${b.line}/${b.machine}/${b.sensor}`));
}

function sortBySensor<T extends { sensor: string }>(list: T[]): T[] {
  return list.sort((a, b) => a.sensor.localeCompare(b.sensor));
}

export function groupMachines(latest: LatestValue[]): MachineInfo[] {
  const map = new Map<string, MachineInfo>();
  for (const l of latest) {
    const key = machineKeyOf(l);
    const m = map.get(key) ?? { site: l.site, line: l.line, machine: l.machine, sensors: [], lastSeen: 0 };
    m.sensors.push(l.sensor);
    m.lastSeen = Math.max(m.lastSeen, l.ts);
    map.set(key, m);
  }
  return [...map.values()].map((m) => ({ ...m, sensors: m.sensors.sort() })).sort((a, b) => machineKeyOf(a).localeCompare(machineKeyOf(b)));
}
