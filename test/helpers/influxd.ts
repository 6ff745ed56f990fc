/**
 * A private InfluxDB 1.6 for one test file: its own temp folder, free HTTP and RPC ports
 * (`bind-address` must be unique per instance too, or the second influxd dies on the busy port),
 * started as a plain background process. `stop()`/`start()`/`restart()` keep the data folder, so
 * outage tests can take the database away and bring it back with its data.
 *
 * Readiness is /ping answering 204 WHILE our pid is alive: another engineer's influxd on a port we
 * raced for would also answer /ping.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts, isAlive, stopChild } from './processes.ts';

export interface InfluxdHandle {
  /** http://127.0.0.1:<port>/<db>: a DSN with the database in the path, as `influx.url` expects. */
  url: string;
  /** Base URL without the database. */
  baseUrl: string;
  httpPort: number;
  dir: string;
  pid(): number | undefined;
  /** Stops the process (SIGTERM, then SIGKILL after 10 s); data stays. */
  stop(): Promise<void>;
  /** Starts it again on the same ports and data. */
  start(): Promise<void>;
  restart(): Promise<void>;
  /** Stops and deletes the data folder. */
  close(): Promise<void>;
  /** Runs an InfluxQL query over HTTP (epoch ms), returns the parsed JSON. */
  query(q: string, db?: string): Promise<InfluxQueryResponse>;
}

export interface InfluxQueryResponse {
  results: { statement_id: number; error?: string; series?: { name: string; tags?: Record<string, string>; columns: string[]; values: unknown[][] }[] }[];
}

async function ping(baseUrl: string): Promise<boolean> {
  try {
    const res = await fetch(`${baseUrl}/ping`, { signal: AbortSignal.timeout(1000) });
    return res.status === 204;
  } catch {
    return false;
  }
}

export async function startInfluxd(opts: { db?: string } = {}): Promise<InfluxdHandle> {
  const db = opts.db ?? 'plantwatch';
  const dir = mkdtempSync(join(tmpdir(), 'pw-influxd-'));
  let child: ChildProcess | undefined;
  let httpPort = 0;
  let rpcPort = 0;
  let baseUrl = '';

  const writeConfig = () =>
    writeFileSync(
      join(dir, 'influxdb.conf'),
      [
        'reporting-enabled = false',
        `bind-address = "127.0.0.1:${rpcPort}"`,
        '[meta]',
        `  dir = "${dir}/meta"`,
        '[data]',
        `  dir = "${dir}/data"`,
        `  wal-dir = "${dir}/wal"`,
        '  query-log-enabled = false',
        '[monitor]',
        '  store-enabled = false',
        '[http]',
        `  bind-address = "127.0.0.1:${httpPort}"`,
        '  log-enabled = false',
        '[logging]',
        '  level = "warn"',
        '[continuous_queries]',
        // Tests check CQ effects within seconds; production keeps the default 1 s check too.
        '  run-interval = "1s"',
        '',
      ].join('\n'),
    );

  const launch = async (): Promise<boolean> => {
    writeConfig();
    const log = openSync(join(dir, 'influxd.log'), 'a');
    const proc = spawn('influxd', ['-config', join(dir, 'influxdb.conf')], { stdio: ['ignore', log, log] });
    closeSync(log);
    child = proc;
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (!isAlive(proc)) return false;
      if (await ping(baseUrl)) {
        // The pid must still be ours after the answer (a foreign influxd could answer on a raced port).
        await new Promise((r) => setTimeout(r, 50));
        if (isAlive(proc)) return true;
        return false;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    proc.kill('SIGKILL');
    throw new Error(`influxd did not answer /ping within 20 s; log: ${tail()}`);
  };

  const tail = () => {
    try {
      return readFileSync(join(dir, 'influxd.log'), 'utf8').slice(-2000);
    } catch {
      return '(no log)';
    }
  };

  const stop = () => stopChild(child, 10_000);

  const start = async () => {
    if (child && isAlive(child)) return;
    // Ports chosen once keep the URL stable across restarts; only the first start may re-pick.
    for (let attempt = 0; attempt < 5; attempt++) {
      if (!httpPort || (attempt > 0 && !startedOnce)) {
        [httpPort, rpcPort] = await freePorts(2);
        baseUrl = `http://127.0.0.1:${httpPort}`;
      }
      if (await launch()) {
        startedOnce = true;
        return;
      }
      await stop();
      if (startedOnce) {
        // Our own port was taken while we were down: wait for the OS to free it and retry.
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    throw new Error(`influxd failed to start; log: ${tail()}`);
  };
  let startedOnce = false;

  await start();

  const handle: InfluxdHandle = {
    get url() {
      return `${baseUrl}/${db}`;
    },
    get baseUrl() {
      return baseUrl;
    },
    get httpPort() {
      return httpPort;
    },
    dir,
    pid: () => child?.pid,
    stop,
    start,
    restart: async () => {
      await stop();
      await start();
    },
    close: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
    query: async (q: string, database = db) => {
      const res = await fetch(`${baseUrl}/query?${new URLSearchParams({ db: database, q, epoch: 'ms' })}`, { method: 'POST' });
      if (!res.ok) throw new Error(`influx query failed ${res.status}: ${await res.text()}`);
      return (await res.json()) as InfluxQueryResponse;
    },
  };
  return handle;
}
