/**
 * Helpers for storage writer tests and the storage benchmark: a steady stream of readings into
 * `plantwatch.readings` (10 sensors per record, unique event time per record), and a wait for the
 * writer's consumer group to have committed everything produced.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { KafkaClients, Producer } from '../../common/kafka.ts';
import type { StorageBackend } from '../../services/storage/backend.ts';
import type { Reading } from '../../common/messages.ts';
import { TOPICS } from '../../common/topics.ts';

export const SENSORS_PER_RECORD = 10;

export function readingsRecord(i: number, base: number, machines = 6): { key: string; value: string } {
  const machine = `m${i % machines}`;
  const ts = base + Math.floor(i / machines);
  const rs: Reading[] = Array.from({ length: SENSORS_PER_RECORD }, (_, s) => ({ site: 'plant', line: 'L1', machine, sensor: `s${s}`, ts, value: (i * 7 + s) % 1000, unit: 'u', receivedAt: ts + 1 }));
  return { key: `plant/L1/${machine}`, value: JSON.stringify(rs) };
}

export interface Stream {
  /** Records produced (and acknowledged by the broker) so far. */
  readonly records: number;
  stop(): Promise<number>;
}

/** Produces `perTick` records every `tickMs` until stopped; returns the count on stop. */
export function startStream(producer: Producer, opts: { base: number; perTick: number; tickMs: number; maxRecords?: number }): Stream {
  let i = 0;
  let running = true;
  const loop = (async () => {
    while (running && (opts.maxRecords === undefined || i < opts.maxRecords)) {
      const n = opts.maxRecords === undefined ? opts.perTick : Math.min(opts.perTick, opts.maxRecords - i);
      const messages = Array.from({ length: n }, (_, k) => readingsRecord(i + k, opts.base));
      await producer.send({ topic: TOPICS.readings, messages, acks: -1 });
      i += n;
      await new Promise((r) => setTimeout(r, opts.tickMs));
    }
  })();
  return {
    get records() {
      return i;
    },
    stop: async () => {
      running = false;
      await loop;
      return i;
    },
  };
}

/** Waits until `groupId` has committed every partition of `topic` up to its end offset. */
export async function waitForCommitted(kafka: KafkaClients, groupId: string, topic: string, timeoutMs: number): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const ends = await admin.fetchTopicOffsets(topic);
      const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
      const byPartition = new Map(committed.partitions.map((p) => [p.partition, BigInt(p.offset)]));
      const lagging = ends.filter((e) => BigInt(e.high) > 0n && (byPartition.get(e.partition) ?? -1n) < BigInt(e.high));
      if (lagging.length === 0) return;
      if (Date.now() > deadline) throw new Error(`group ${groupId} still behind on ${lagging.map((l) => `${l.partition}: ${byPartition.get(l.partition)} < ${l.high}`).join(', ')}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await admin.disconnect();
  }
}

/** Counts stored readings through the store's own query API (raw points, de-duplicated). */
export async function countReadings(store: StorageBackend, from: number, to: number): Promise<number> {
  let n = 0;
  for (const m of await store.machines()) {
    for (const s of await store.querySeries({ machine: m.machine, from, to, maxPoints: 10_000_000 })) {
      if (s.resolution !== 'raw') throw new Error(`expected raw points, got ${s.resolution}`);
      n += s.points.length;
    }
  }
  return n;
}

export interface Runner {
  child: ChildProcess;
  exited: Promise<number | null>;
  /** Signals the whole process group: npx, tsx and the node process that runs the writer. */
  kill(signal: NodeJS.Signals): void;
  /** SIGTERM to the writer's own node process (graceful close); resolves with the exit code. */
  stop(): Promise<number | null>;
}

const liveRunners = new Set<Runner>();
/** Kills runners a failed test left behind (only the ones this file started). */
export function killLeftoverRunners(): void {
  for (const r of liveRunners) r.kill('SIGKILL');
}

/** Starts the writer runner as its own process group (`npx tsx`), resolves when it consumes. */
export async function spawnRunner(env: Record<string, string>): Promise<Runner> {
  const child = spawn('npx', ['tsx', 'services/storage/testdata/writer-runner.ts'], {
    cwd: join(import.meta.dirname, '../..'),
    env: { ...process.env, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true,
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let innerPid = 0;
  const runner: Runner = {
    stop: async () => {
      process.kill(innerPid, 'SIGTERM');
      return exited;
    },
    child,
    exited,
    kill: (signal) => {
      try {
        process.kill(-child.pid!, signal);
      } catch {
        // already gone
      }
    },
  };
  liveRunners.add(runner);
  void exited.then(() => liveRunners.delete(runner));
  await new Promise<void>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      if (line.includes('"ready":true')) {
        innerPid = (JSON.parse(line) as { pid: number }).pid;
        resolve();
      }
    });
    void exited.then((code) => reject(new Error(`writer runner exited early (${code})`)));
    setTimeout(() => reject(new Error('writer runner not ready in 30 s')), 30_000);
  });
  return runner;
}

