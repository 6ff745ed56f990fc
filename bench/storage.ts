/**
 * npm run bench:storage — points/s through the storage writer vs. the raw rate of the same store,
 * measured in the same run:
 *
 * - InfluxDB 1.6 (private influxd): raw = POSTing the same line protocol to /write (same batch size
 *   and concurrency as the writer); writer = Kafka-shaped records (JSON arrays of 10 readings) through
 *   StorageWriter: decoding + validation (reading-batch.ts), batching, InfluxStore (line protocol,
 *   cardinality guard), offset tracking. influxd's own CPU per point is read from /proc.
 * - Embedded (DuckDB): raw = the DuckDB appender writing the same rows into a table of the same
 *   shape with a flush (commit) per batch, two ways: value by value (`raw appender`) and as data
 *   chunks (`raw data chunks`, how EmbeddedStore appends; the fastest direct way in); writer = the
 *   same records through StorageWriter into the embedded store as the component opens it (DuckDB
 *   in a worker thread, WorkerEmbeddedStore). CPU per point counts all threads of this process.
 * - Optional third row per store (BENCH_KAFKA=1, default on): end to end through the embedded Kafka
 *   broker and a producer in a child process (bench/storage-producer.ts) and the storage component
 *   in this one, from the "produce" command until all offsets are committed.
 *
 * Rounds alternate raw / writer; the table gives the best of each and the median of the per-round
 * ratios (the machine is shared and noisy), and the median CPU time of this process per point
 * (steadier than rates on a loaded machine). Env: BENCH_POINTS (default 200000), BENCH_ROUNDS
 * (default 5), BENCH_KAFKA (default 1), BENCH_STORES (default influxdb,embedded), BENCH_AGE_MS (how old
 * the event times are, default 30000: live data).
 */
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { performance } from 'node:perf_hooks';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../common/logger.ts';
import { createRegistry } from '../common/metrics.ts';
import type { Reading } from '../common/messages.ts';
import { TOPICS } from '../common/topics.ts';
import { DEFAULT_STORE_OPTIONS, type StorageBackend } from '../services/storage/backend.ts';
import { WorkerEmbeddedStore } from '../services/storage/embedded-worker.ts';
import { CHUNK_ROWS, ChunkBuilder } from '../services/storage/duckdb-chunk.ts';
import { InfluxStore } from '../services/storage/influx-store.ts';
import { readingLine } from '../services/storage/schema.ts';
import { StorageConfig, start } from '../services/storage/index.ts';
import { StorageWriter, type WriterRecord } from '../services/storage/writer.ts';
import { startInfluxd } from '../test/helpers/influxd.ts';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { createKafkaClients } from '../common/kafka.ts';
import { KafkaClientConfig } from '../common/config/fragments.ts';
import { MACHINES, PER_RECORD, makeRecords } from './storage-data.ts';
import { countReadings, waitForCommitted } from '../test/helpers/storage-stream.ts';

const POINTS = Number(process.env.BENCH_POINTS ?? 200_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const WITH_KAFKA = (process.env.BENCH_KAFKA ?? '1') !== '0';
const STORES = (process.env.BENCH_STORES ?? 'influxdb,embedded').split(',');
const AGE_MS = Number(process.env.BENCH_AGE_MS ?? 30_000);
/** influxd of the running InfluxDB section (its CPU is read from /proc). */
let currentInfluxdPid: number | undefined;
const BATCH = 5000;
const CONCURRENCY = 2;

/** Runs both paths, raw first in even rounds and writer first in odd ones, so neither always goes first. */
async function inAlternatingOrder<R, W>(round: number, raw: () => Promise<R>, writer: () => Promise<W>): Promise<[R, W]> {
  if (round % 2 === 0) {
    const r = await raw();
    return [r, await writer()];
  }
  const w = await writer();
  return [await raw(), w];
}

interface Row {
  store: string;
  path: string;
  points: number;
  seconds: number;
  /** This process's CPU (all its threads, incl. DuckDB's) per point, µs. */
  cpuUsPerPoint?: number;
  /** Of that, the main thread's (decoding, batching; not the embedded store's worker), µs. */
  mainCpuUsPerPoint?: number;
  /** Share of the wall time the event loop was busy (JS or a synchronous native call). */
  loopBusy?: number;
  /** influxd's own CPU per point (from /proc/<pid>/stat), µs. */
  serverCpuUsPerPoint?: number;
}

/** CPU time (user + system) of another process in µs, from /proc/<pid>/stat (Linux; clock ticks of 10 ms). */
function processCpuUs(pid: number | undefined, statFile = `/proc/${pid}/stat`): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(statFile, 'utf8');
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return undefined;
  }
}

/** Waits (at most 3 s) until a process used under 10% of a core over 200 ms. */
async function settle(pid: number | undefined): Promise<void> {
  const end = Date.now() + 3000;
  while (Date.now() < end) {
    const before = processCpuUs(pid);
    await new Promise((r) => setTimeout(r, 200));
    const after = processCpuUs(pid);
    if (before === undefined || after === undefined || after - before <= 20_000) return;
  }
}

/** Like measure(), plus the CPU the server process (influxd) spent meanwhile. */
async function measureWithServer(store: string, path: string, serverPid: number | undefined, run: () => Promise<number>): Promise<Row> {
  const before = processCpuUs(serverPid);
  const row = await measure(store, path, run);
  const after = processCpuUs(serverPid);
  if (before !== undefined && after !== undefined) row.serverCpuUsPerPoint = (after - before) / POINTS;
  return row;
}

/** Runs a timed path and records this process's CPU time spent in it (all threads, and the main thread's). */
async function measure(store: string, path: string, run: () => Promise<number>): Promise<Row> {
  const cpu = process.cpuUsage();
  const main = mainThreadCpuUs();
  const elu = performance.eventLoopUtilization();
  const seconds = await run();
  const used = process.cpuUsage(cpu);
  const mainAfter = mainThreadCpuUs();
  const loop = performance.eventLoopUtilization(elu);
  return {
    store,
    path,
    points: POINTS,
    seconds,
    cpuUsPerPoint: (used.user + used.system) / POINTS,
    mainCpuUsPerPoint: main !== undefined && mainAfter !== undefined ? (mainAfter - main) / POINTS : undefined,
    loopBusy: loop.utilization,
  };
}

/** The main thread's CPU time (its /proc task has the process id), µs in 10 ms steps. */
function mainThreadCpuUs(): number | undefined {
  return processCpuUs(process.pid, `/proc/${process.pid}/task/${process.pid}/stat`);
}

async function throughWriter(store: StorageBackend, records: WriterRecord[]): Promise<number> {
  const writer = new StorageWriter(
    { batchSize: BATCH, lingerMs: 50, concurrency: CONCURRENCY, maxBufferedPoints: 50_000, retryInitialDelayMs: 100, retryMaxDelayMs: 1000, commitIntervalMs: 200 },
    { store, logger: silentLogger(), metrics: createRegistry('storage'), deadLetter: async () => undefined, commit: async () => undefined },
  );
  const t = performance.now();
  // Kafka hands the consumer batches of records; feed the same way, honouring backpressure.
  for (let i = 0; i < records.length; i += 500) {
    writer.push(records.slice(i, i + 500));
    await writer.waitForRoom();
  }
  await writer.drain();
  return (performance.now() - t) / 1000;
}

async function postRaw(baseUrl: string, db: string, bodies: Buffer[]): Promise<number> {
  const t = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < bodies.length) {
      const body = bodies[next++];
      const res = await fetch(`${baseUrl}/write?db=${db}&precision=ms`, { method: 'POST', body: body as Uint8Array<ArrayBuffer> });
      if (res.status !== 204) throw new Error(`raw write failed ${res.status}: ${await res.text()}`);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return (performance.now() - t) / 1000;
}

/**
 * End to end: the storage component (in this process) consuming from the embedded broker, which
 * runs with the producer in a child process (bench/storage-producer.ts), so this process's CPU is
 * the writer's alone. The component starts and joins its group first (one warm-up record,
 * committed); then the child produces all records; the clock runs from the "produce" command until
 * every offset is committed (producing overlaps with consuming).
 */
async function viaKafka(store: string, influxUrl: string, base: number, dataDir: string): Promise<Row> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/storage-producer.ts'], {
    env: { ...process.env, BENCH_POINTS: String(POINTS), BENCH_BASE: String(base) },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async (): Promise<Record<string, unknown>> => {
    const { value, done } = await lines.next();
    if (done) throw new Error('bench producer process ended early');
    return JSON.parse(value as string) as Record<string, unknown>;
  };
  const tell = (cmd: string) => child.stdin!.write(cmd + '\n');
  try {
    const { brokers } = (await next()) as { brokers: string[] };
    const kafka = createKafkaClients({ ...KafkaClientConfig.parse({}), clientId: 'bench-storage', brokers }, silentLogger());
    const groupId = 'bench-storage';
    const handle = await start(StorageConfig.parse({ httpPort: 0, groupId, batchSize: BATCH, concurrency: CONCURRENCY }), { logger: silentLogger(), metrics: createRegistry('storage'), kafka, dataDir }, { url: influxUrl });
    tell('warmup');
    await next();
    await waitForCommitted(kafka, groupId, TOPICS.readings, 120_000);
    const serverPid = store === 'influxdb' ? currentInfluxdPid : undefined;
    // As for the writer rounds: the new database's continuous queries run once soon after they are
    // created; let that pass, and influxd go idle, before the clock starts.
    if (serverPid !== undefined) {
      await new Promise((r) => setTimeout(r, 1500));
      await settle(serverPid);
    }
    const row = await measureWithServer(store, 'writer via Kafka', serverPid, async () => {
      const t = performance.now();
      tell('produce');
      // Everything produced first: committed-vs-end checks before the last send would pass early.
      await next();
      await waitForCommitted(kafka, groupId, TOPICS.readings, 600_000);
      return (performance.now() - t) / 1000;
    });
    if (store === 'embedded') {
      // Stored exactly once, through the store's own queries (+ the warm-up record's 10 points).
      const stored = await countReadings(handle.store, base - 1, base + 3_600_000);
      if (stored !== POINTS + PER_RECORD) throw new Error(`writer via Kafka stored ${stored} of ${POINTS + PER_RECORD} points`);
    }
    await handle.close();
    return row;
  } finally {
    tell('close');
    await new Promise((resolve) => (child.exitCode !== null ? resolve(null) : child.once('exit', resolve)));
  }
}

/**
 * The rows of the raw paths, prepared before timing (series ids resolved, times and values in typed
 * arrays): the raw paths are the appender alone. Columns rather than 200k objects also keep this
 * process's heap small, so V8's collector (which runs on helper threads too, and counts in the CPU
 * per point) marks little besides what a path allocates itself.
 */
interface RawRows {
  n: number;
  sid: Int32Array;
  ts: Float64Array;
  value: Float64Array;
  receivedAt: Float64Array;
  unit: (string | undefined)[];
  quality: (string | undefined)[];
}

function toRawRows(readings: Reading[]): RawRows {
  const n = readings.length;
  const rows: RawRows = { n, sid: new Int32Array(n), ts: new Float64Array(n), value: new Float64Array(n), receivedAt: new Float64Array(n), unit: new Array(n), quality: new Array(n) };
  const sids = new Map<string, number>();
  readings.forEach((r, i) => {
    const key = `${r.site}/${r.line}/${r.machine}/${r.sensor}`;
    let sid = sids.get(key);
    if (sid === undefined) sids.set(key, (sid = sids.size + 1));
    rows.sid[i] = sid;
    rows.ts[i] = r.ts;
    rows.value[i] = r.value;
    rows.receivedAt[i] = r.receivedAt;
    rows.unit[i] = r.unit;
    rows.quality[i] = r.quality;
  });
  return rows;
}

/** The DuckDB appender alone: the same rows, the same table layout, one flush (commit) per batch. */
async function rawAppender(conn: DuckDBConnection, rows: RawRows): Promise<number> {
  const t = performance.now();
  const appender = await conn.createAppender('readings');
  for (let i = 0; i < rows.n; i += BATCH) {
    for (let j = i; j < Math.min(i + BATCH, rows.n); j++) {
      appender.appendInteger(rows.sid[j]);
      appender.appendBigInt(BigInt(rows.ts[j]));
      appender.appendDouble(rows.value[j]);
      const unit = rows.unit[j];
      if (unit === undefined) appender.appendNull();
      else appender.appendVarchar(unit);
      const quality = rows.quality[j];
      if (quality === undefined) appender.appendNull();
      else appender.appendVarchar(quality);
      appender.appendBigInt(BigInt(rows.receivedAt[j]));
      appender.appendBigInt(BigInt(i));
      appender.endRow();
    }
    appender.flushSync();
  }
  appender.closeSync();
  return (performance.now() - t) / 1000;
}

/** The same rows through data chunks (duckdb-chunk.ts), one flush (commit) per batch. */
async function rawChunks(conn: DuckDBConnection, rows: RawRows): Promise<number> {
  const t = performance.now();
  const appender = await conn.createAppender('readings_chunks');
  const b = new ChunkBuilder(['integer', 'bigint', 'double', 'varchar', 'varchar', 'bigint', 'bigint']);
  for (let i = 0; i < rows.n; i += BATCH) {
    let n = 0;
    for (let j = i; j < Math.min(i + BATCH, rows.n); j++) {
      b.setInteger(0, n, rows.sid[j]);
      b.setBigInt(1, n, rows.ts[j]);
      b.setDouble(2, n, rows.value[j]);
      b.setVarchar(3, n, rows.unit[j]);
      b.setVarchar(4, n, rows.quality[j]);
      b.setBigInt(5, n, rows.receivedAt[j]);
      b.setBigInt(6, n, i);
      if (++n === CHUNK_ROWS) {
        b.appendTo(appender, n);
        n = 0;
      }
    }
  b.appendTo(appender, n);
    appender.flushSync();
  }
  appender.closeSync();
  return (performance.now() - t) / 1000;
}

function best(rows: Row[], store: string, path: string): Row {
  return rows.filter((r) => r.store === store && r.path === path).sort((a, b) => a.seconds - b.seconds)[0];
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  const tmp = mkdtempSync(join(tmpdir(), 'pw-bench-storage-'));
  // Live data by default: event times AGE_MS before now. Data older than 8 minutes is "late" for the
  // InfluxDB store, which then re-runs the rollups over its hours 2 s later (README › Schema); with
  // BENCH_AGE_MS=3600000 (as before 2026-11-26 17:00) that backfill lands inside the writer's
  // measured window whenever a round lasts longer than 2 s.
  const base = Date.now() - AGE_MS;
  // The raw paths' inputs are built here; the 200k reading objects are not kept.
  const { records, rawRows, bodies } = (() => {
    const made = makeRecords(POINTS, base);
    const bodies: Buffer[] = [];
    for (let i = 0; i < made.readings.length; i += BATCH) bodies.push(Buffer.from(made.readings.slice(i, i + BATCH).map((r) => readingLine(r)).join('\n')));
    return { records: made.records, rawRows: toRawRows(made.readings), bodies };
  })();
  console.log(`load average at start: ${loadavg().map((l) => l.toFixed(2)).join(', ')}`);
  console.log(`storage benchmark: ${POINTS} points in ${records.length} records (${PER_RECORD} readings each, ${MACHINES * PER_RECORD} series), batch ${BATCH}, concurrency ${CONCURRENCY}, best of ${ROUNDS} rounds`);

  // ---------------------------------------------------------------- InfluxDB
  const influxd = STORES.includes('influxdb') ? await startInfluxd() : undefined;
  if (influxd) try {
    for (let round = 0; round < ROUNDS; round++) {
      const rawDb = `raw_${round}`;
      await influxd.query(`CREATE DATABASE ${rawDb}`);
      const store = new InfluxStore(`${influxd.baseUrl}/writer_${round}`, { ...DEFAULT_STORE_OPTIONS, logger: silentLogger(), embeddedPath: '' });
      await store.init();
      // New continuous queries run once right after they are created (the test influxd checks every
      // second); let that first run pass on the empty database rather than land in a measurement.
      await new Promise((r) => setTimeout(r, 1500));
      // Each path starts once influxd is idle (its background work from the previous path, e.g.
      // cache snapshots, would otherwise be charged to the next), and the order alternates by round.
      const raw = async () => (await settle(influxd.pid()), measureWithServer('influxdb', 'raw /write', influxd.pid(), () => postRaw(influxd.baseUrl, rawDb, bodies)));
      const writer = async () => (await settle(influxd.pid()), measureWithServer('influxdb', 'writer', influxd.pid(), () => throughWriter(store, records)));
      const [r, w] = await inAlternatingOrder(round, raw, writer);
      rows.push(r, w);
      const check = await influxd.query(`SELECT count("value") FROM "writer_${round}"."plantwatch_raw"."readings"`);
      const stored = Number(check.results[0].series?.[0].values[0][1]);
      if (stored !== POINTS) throw new Error(`writer stored ${stored} of ${POINTS} points`);
      await store.close();
      console.log(
        `  influxdb round ${round + 1}${round % 2 ? ' (writer first)' : ''}: raw ${Math.round(POINTS / r.seconds)}/s (${r.cpuUsPerPoint!.toFixed(2)} µs CPU/point here + ${r.serverCpuUsPerPoint?.toFixed(2)} in influxd), ` +
          `writer ${Math.round(POINTS / w.seconds)}/s (${w.cpuUsPerPoint!.toFixed(2)} µs + ${w.serverCpuUsPerPoint?.toFixed(2)} in influxd)`,
      );
    }
    if (WITH_KAFKA) {
      currentInfluxdPid = influxd.pid();
      rows.push(await viaKafka('influxdb', `${influxd.baseUrl}/kafka_run`, base, join(tmp, 'k1')));
      const check = await influxd.query(`SELECT count("value") FROM "kafka_run"."plantwatch_raw"."readings" WHERE "machine" != 'warmup'`);
      const stored = Number(check.results[0].series?.[0].values[0][1]);
      if (stored !== POINTS) throw new Error(`writer via Kafka stored ${stored} of ${POINTS} points`);
    }
  } finally {
    await influxd.close();
  }

  // ---------------------------------------------------------------- embedded (DuckDB)
  for (let round = 0; round < (STORES.includes('embedded') ? ROUNDS : 0); round++) {
    const dir = join(tmp, `duck_${round}`);
    mkdirSync(dir, { recursive: true });
    const instance = await DuckDBInstance.create(join(dir, 'raw.duckdb'));
    const conn = await instance.connect();
    await conn.run(`CREATE TABLE readings (sid INTEGER, ts BIGINT, value DOUBLE, unit VARCHAR, quality VARCHAR, received_at BIGINT, seq BIGINT)`);
    await conn.run(`CREATE TABLE readings_chunks AS SELECT * FROM readings LIMIT 0`);
    // The store as the component opens it by default: DuckDB in its own worker thread.
    const store = new WorkerEmbeddedStore({ ...DEFAULT_STORE_OPTIONS, logger: silentLogger(), embeddedPath: join(dir, 'writer.duckdb') });
    await store.init();
    // Raw paths: the row appender value by value, and the same rows as data chunks (what the store
    // uses: the fastest direct way in). The order alternates by round.
    const raw = async () => [await measure('embedded', 'raw appender', () => rawAppender(conn, rawRows)), await measure('embedded', 'raw data chunks', () => rawChunks(conn, rawRows))];
    const writer = () => measure('embedded', 'writer', () => throughWriter(store, records));
    const [rawResults, w] = await inAlternatingOrder(round, raw, writer);
    rows.push(...rawResults, w);
    await store.close();
    conn.closeSync();
    instance.closeSync();
    console.log(`  embedded round ${round + 1}${round % 2 ? ' (writer first)' : ''}: raw ${Math.round(POINTS / rows[rows.length - 3].seconds)}/s (${rows[rows.length - 3].cpuUsPerPoint!.toFixed(2)} µs CPU/point), raw chunks ${Math.round(POINTS / rows[rows.length - 2].seconds)}/s (${rows[rows.length - 2].cpuUsPerPoint!.toFixed(2)} µs), writer ${Math.round(POINTS / rows[rows.length - 1].seconds)}/s (${rows[rows.length - 1].cpuUsPerPoint!.toFixed(2)} µs, main thread ${rows[rows.length - 1].mainCpuUsPerPoint?.toFixed(2)} µs, event loop busy ${(rows[rows.length - 1].loopBusy! * 100).toFixed(0)}%)`);
  }
  if (WITH_KAFKA && STORES.includes('embedded')) rows.push(await viaKafka('embedded', '', base, join(tmp, 'k2')));

  // ---------------------------------------------------------------- report
  // Best of each path, and the median of the per-round writer/raw ratios (raw and writer run
  // back to back in each round, so a round's ratio sees the same machine load on both sides).
  const table: string[][] = [['store', 'path', 'points', 'seconds', 'points/s (best)', 'best vs best raw', 'median round ratio', 'CPU µs/point (median)', 'main thread µs/point (median)', 'influxd CPU µs/point (median)']];
  for (const store of ['influxdb', 'embedded']) {
    // Embedded: the first raw path is the row appender (the baseline), the second the
    // data-chunk appender the store itself uses; the writer is compared with both.
    const rawPaths = store === 'influxdb' ? ['raw /write'] : ['raw appender', 'raw data chunks'];
    if (!best(rows, store, rawPaths[0])) continue;
    const medianOf = (path: string, pick: (r: Row) => number | undefined) => {
      const xs = rows.filter((x) => x.store === store && x.path === path && pick(x) !== undefined).map((x) => pick(x)!).sort((a, b) => a - b);
      return xs.length ? xs[Math.floor((xs.length - 1) / 2)].toFixed(2) : '';
    };
    const medianCpu = (path: string) => medianOf(path, (r) => r.cpuUsPerPoint);
    const writers = rows.filter((r) => r.store === store && r.path === 'writer');
    for (const rawPath of rawPaths) {
      const raw = best(rows, store, rawPath);
      const raws = rows.filter((r) => r.store === store && r.path === rawPath);
      const ratios = writers.map((w, i) => raws[i].seconds / w.seconds).sort((a, b) => a - b);
      const median = ratios.length ? ratios[Math.floor((ratios.length - 1) / 2)] : NaN;
      const paths = rawPath === rawPaths[0] ? [rawPath, 'writer', 'writer via Kafka'] : [rawPath, 'writer'];
      for (const path of paths) {
        const r = best(rows, store, path);
        if (!r) continue;
        const label = path === 'writer' && rawPath !== rawPaths[0] ? `writer (vs ${rawPath})` : path;
        table.push([store, label, String(r.points), r.seconds.toFixed(2), String(Math.round(r.points / r.seconds)), `${((raw.seconds / r.seconds) * 100).toFixed(0)}%`, path === 'writer' ? `${(median * 100).toFixed(0)}%` : '', medianCpu(path), medianOf(path, (r) => r.mainCpuUsPerPoint), medianOf(path, (r) => r.serverCpuUsPerPoint)]);
      }
    }
  }
  const widths = table[0].map((_, c) => Math.max(...table.map((r) => r[c].length)));
  console.log('');
  for (const r of table) console.log(r.map((cell, c) => (c >= 2 ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  '));
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/storage.csv', table.map((r) => r.join(',')).join('\n') + '\n');
  console.log('\n(best of the rounds; the goal is writer >= 80% of raw; CSV in bench/results/storage.csv)');
  console.log(`load average at end: ${loadavg().map((l) => l.toFixed(2)).join(', ')}`);
  rmSync(tmp, { recursive: true, force: true });
}

await main();
