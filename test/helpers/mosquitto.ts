/**
 * A private Mosquitto for one test file: its own temp folder and free port, the tuned config from
 * /work/shared/ENVIRONMENT-NOTES.md (raised max_queued_messages / max_inflight_messages: with the
 * defaults Mosquitto silently dropped QoS 1 messages in a burst), started as a plain background
 * process. `stop()`/`start()`/`restart()` keep port and config, so outage tests can take the
 * broker away and bring it back.
 *
 * Readiness: an MQTT CONNECT answered while OUR pid is alive (another engineer's broker could hold
 * a raced port).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { freePort, isAlive, stopChild } from './processes.ts';

export interface MosquittoHandle {
  url: string;
  port: number;
  dir: string;
  pid(): number | undefined;
  /** SIGTERM (SIGKILL after 5 s). */
  stop(): Promise<void>;
  start(): Promise<void>;
  restart(): Promise<void>;
  /** Stop and delete the temp folder. */
  close(): Promise<void>;
}

export interface MosquittoOptions {
  /** Extra config lines (e.g. a password_file). */
  extraConfig?: string[];
  maxQueuedMessages?: number;
  maxInflightMessages?: number;
}

async function answers(url: string): Promise<boolean> {
  try {
    const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 1000, clientId: `pw-ready-${process.pid}-${Date.now()}` });
    await c.endAsync(true);
    return true;
  } catch {
    return false;
  }
}

export async function startMosquitto(opts: MosquittoOptions = {}): Promise<MosquittoHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'pw-mosquitto-'));
  let port = 0;
  let child: ChildProcess | undefined;
  let startedOnce = false;

  const writeConfig = () =>
    writeFileSync(
      join(dir, 'mosquitto.conf'),
      [
        `listener ${port} 127.0.0.1`,
        'allow_anonymous true',
        'persistence false',
        'log_dest stderr',
        'log_type error',
        'log_type warning',
        'log_type notice',
        `max_queued_messages ${opts.maxQueuedMessages ?? 200_000}`,
        `max_inflight_messages ${opts.maxInflightMessages ?? 1000}`,
        ...(opts.extraConfig ?? []),
        '',
      ].join('\n'),
    );

  const tail = () => {
    try {
      return readFileSync(join(dir, 'mosquitto.log'), 'utf8').slice(-2000);
    } catch {
      return '(no log)';
    }
  };

  const launch = async (): Promise<boolean> => {
    writeConfig();
    const log = openSync(join(dir, 'mosquitto.log'), 'a');
    const proc = spawn('mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: ['ignore', log, log] });
    closeSync(log);
    child = proc;
    const url = `mqtt://127.0.0.1:${port}`;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (!isAlive(proc)) return false;
      if (await answers(url)) return isAlive(proc);
      await new Promise((r) => setTimeout(r, 50));
    }
    proc.kill('SIGKILL');
    throw new Error(`mosquitto did not answer within 10 s; log: ${tail()}`);
  };

  const stop = () => stopChild(child, 5000);

  const start = async () => {
    if (child && isAlive(child)) return;
    for (let attempt = 0; attempt < 5; attempt++) {
      if (!startedOnce) port = await freePort();
      if (await launch()) {
        startedOnce = true;
        return;
      }
      await stop();
      await new Promise((r) => setTimeout(r, 300));
    }
    throw new Error(`mosquitto failed to start; log: ${tail()}`);
  };

  await start();
  return {
    get url() {
      return `mqtt://127.0.0.1:${port}`;
    },
    get port() {
      return port;
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
  };
}
