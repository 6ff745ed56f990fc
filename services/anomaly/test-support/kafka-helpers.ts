/**
 * Helpers for the anomaly service's Kafka integration tests: produce readings, collect a topic,
 * wait for a condition, run service instances in child processes (so they can be SIGKILLed).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { KafkaClients, KafkaMessage, Producer } from '../../../common/kafka.ts';
import { ScoreRecord, type Reading, type Score, type DeadLetter } from '../../../common/messages.ts';
import { machineKey } from '../../../common/topics.ts';

export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string, stepMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** Readings of `machines` machines × `sensors` sensors, `perStream` each, 1 s apart in event time. */
export function makeReadings(opts: { machines: number; sensors: number; perStream: number; t0?: number; site?: string; value?: (i: number, s: number) => number }): Reading[] {
  const t0 = opts.t0 ?? 1_700_000_000_000;
  const out: Reading[] = [];
  for (let i = 0; i < opts.perStream; i++) {
    for (let m = 0; m < opts.machines; m++) {
      for (let s = 0; s < opts.sensors; s++) {
        const ts = t0 + i * 1000;
        out.push({
          site: opts.site ?? 'site1',
          line: 'line1',
          machine: `m${m}`,
          sensor: `s${s}`,
          ts,
          value: opts.value ? opts.value(i, s) : 50 + 10 * Math.sin(i / 7 + s) + ((i * 7919 + s * 104729 + m * 13) % 100) / 100,
          receivedAt: ts,
        });
      }
    }
  }
  return out;
}

/** One record per machine per `perRecord` readings (arrays), keyed by machine, in event-time order. */
export async function produceReadings(producer: Producer, topic: string, readings: Reading[], opts: { perRecord?: number; timestamp?: number } = {}): Promise<void> {
  const perRecord = opts.perRecord ?? 1;
  const byMachine = new Map<string, Reading[]>();
  for (const r of readings) {
    const k = machineKey(r);
    let list = byMachine.get(k);
    if (!list) byMachine.set(k, (list = []));
    list.push(r);
  }
  const messages: { key: string; value: string; timestamp?: string }[] = [];
  for (const [key, list] of byMachine) {
    for (let i = 0; i < list.length; i += perRecord) {
      const chunk = list.slice(i, i + perRecord);
      messages.push({ key, value: JSON.stringify(perRecord === 1 ? chunk[0] : chunk), ...(opts.timestamp !== undefined ? { timestamp: String(opts.timestamp) } : {}) });
    }
  }
  for (let i = 0; i < messages.length; i += 500) await producer.send({ topic, acks: -1, messages: messages.slice(i, i + 500) });
}

export interface Collector<T> {
  items: T[];
  messages: KafkaMessage[];
  stop(): Promise<void>;
}

/** Consumes a whole topic from the beginning in its own group, decoding each value with `decode`. */
export async function collect<T>(kafka: KafkaClients, topic: string, decode: (m: KafkaMessage) => T[]): Promise<Collector<T>> {
  const consumer = kafka.consumer({ groupId: `collector-${topic}-${Math.random().toString(36).slice(2)}`, maxWaitTimeInMs: 50 });
  const c: Collector<T> = { items: [], messages: [], stop: async () => void (await consumer.disconnect()) };
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      c.messages.push(message);
      c.items.push(...decode(message));
    },
  });
  return c;
}

export const decodeScores = (m: KafkaMessage): Score[] => [ScoreRecord.parse(JSON.parse(m.value!.toString()))].flat();
export const decodeDeadLetters = (m: KafkaMessage): DeadLetter[] => [JSON.parse(m.value!.toString()) as DeadLetter];

export const readingId = (r: { site: string; line: string; machine: string; sensor: string; ts: number }): string =>
  `${r.site}/${r.line}/${r.machine}/${r.sensor}@${r.ts}`;

export interface ChildService {
  proc: ChildProcess;
  /** Resolves when the process exits (by itself or killed). */
  exited: Promise<void>;
  opsUrl: string;
  stderr: string[];
  kill(signal?: NodeJS.Signals): Promise<void>;
}

const runner = fileURLToPath(new URL('./run-service.ts', import.meta.url));

/**
 * Starts a service instance in a child process; resolves once it consumes. `onLine` sees every line
 * of its stdout and stderr (e.g. V8's `--trace-gc` lines, for a bench).
 */
export async function spawnService(
  spec: Record<string, unknown>,
  timeoutMs = 30_000,
  nodeArgs: string[] = [],
  onLine?: (stream: 'stdout' | 'stderr', line: string) => void,
): Promise<ChildService> {
  const proc = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', runner, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr: string[] = [];
  createInterface({ input: proc.stderr! }).on('line', (l) => {
    stderr.push(l);
    onLine?.('stderr', l);
  });
  if (onLine) createInterface({ input: proc.stdout! }).on('line', (l) => onLine('stdout', l));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const ready = await new Promise<{ opsUrl: string }>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`service did not start in ${timeoutMs} ms: ${stderr.slice(-5).join('\n')}`)), timeoutMs);
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      try {
        const msg = JSON.parse(line) as { ready?: boolean; opsUrl: string };
        if (msg.ready) {
          clearTimeout(t);
          resolve(msg);
        }
      } catch {
        // not our line
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`service exited with ${code} before ready: ${stderr.slice(-5).join('\n')}`));
    });
  });
  return {
    proc,
    exited,
    opsUrl: ready.opsUrl,
    stderr,
    kill: async (signal = 'SIGKILL') => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill(signal);
      await exited;
    },
  };
}

export async function health(opsUrl: string): Promise<{ ok: boolean; partitions: number[]; modelVersion: string; [k: string]: unknown }> {
  const res = await fetch(`${opsUrl}/healthz`);
  return (await res.json()) as { ok: boolean; partitions: number[]; modelVersion: string };
}
