/**
 * Runs one component in a `worker_threads` Worker, so CPU-heavy work (tfjs scoring) gets its own
 * event loop and core instead of stalling the platform's. The main thread passes plain data only
 * (component name and module, its validated config section, dataDir, log level, Kafka client config
 * with the broker list); the worker builds its own context (platform/worker-entry.ts) and calls the
 * component's `start(config, ctx)`. The main thread gets a proxy handle: `opsUrl`, the handle's
 * plain fields (`info`: broker list, MQTT URL, …), a metrics registry that scrapes the worker, and
 * `close()`. A worker that dies without being asked to is reported through `onFailure`.
 */
import { Worker } from 'node:worker_threads';
import { ConfigError, PlatformError } from '../common/errors.ts';
import { prom, type Registry } from '../common/metrics.ts';
import type { ComponentHandle } from '../common/component.ts';
import type { KafkaClientConfig } from '../common/config/fragments.ts';
import type { LevelWithSilent } from 'pino';

export interface WorkerInit {
  name: string;
  /** URL of the module exporting `start(config, ctx)`. */
  module: string;
  config: unknown;
  dataDir: string;
  logLevel: LevelWithSilent;
  /** Client settings; empty `brokers` = the component gets no Kafka clients (the broker itself). */
  kafka: KafkaClientConfig & { brokers: string[] };
}

export type ToWorker = { type: 'metrics'; id: number } | { type: 'close' };
export type FromWorker =
  | { type: 'started'; info: Record<string, unknown>; opsUrl: string | null }
  | { type: 'start-failed'; error: SerializedError }
  | { type: 'metrics'; id: number; text?: string; error?: SerializedError }
  | { type: 'closed'; error?: SerializedError };

export interface SerializedError {
  name: string;
  message: string;
  code?: string;
  stack?: string;
}

export function serializeError(err: unknown): SerializedError {
  const e = err as Partial<Error> & { code?: unknown };
  return { name: e?.name ?? 'Error', message: e?.message ?? String(err), code: typeof e?.code === 'string' ? e.code : undefined, stack: e?.stack };
}

/** Rebuilds an error from the worker; config errors stay ConfigErrors (the CLI prints them as one line). */
export function deserializeError(s: SerializedError, component: string): Error {
  if (s.name === 'ConfigError') return new ConfigError(s.message, { component });
  const err = s.code ? new PlatformError(s.code, s.message, { retriable: false, context: { component } }) : new Error(s.message);
  err.name = s.name;
  if (s.stack) err.stack = s.stack;
  return err;
}

export interface WorkerComponentHandle extends ComponentHandle {
  readonly opsUrl: string | null;
  /** Plain-data fields of the component's own handle (e.g. `brokers`, `mqttUrl`, `url`). */
  readonly info: Readonly<Record<string, unknown>>;
  /** The component's registry as seen from the main thread: `metrics()` scrapes the worker. */
  readonly metrics: Registry;
  readonly threadId: number;
}

export interface StartInWorkerOptions extends WorkerInit {
  /**
   * The worker died (uncaught error, non-zero exit) after a successful start and before close().
   * Not called for failures during start: those reject startInWorker.
   */
  onFailure(err: Error): void;
  /** How long close() waits for the worker to drain and exit before terminating it. */
  closeTimeoutMs?: number;
}

const BOOTSTRAP = new URL('../common/ts-worker-bootstrap.mjs', import.meta.url);
const ENTRY = new URL('./worker-entry.ts', import.meta.url);

/** A registry whose exposition comes from the worker; default label `component` names it for the gateway. */
class WorkerRegistry extends prom.Registry {
  constructor(
    name: string,
    private readonly scrape: () => Promise<string>,
  ) {
    super();
    this.setDefaultLabels({ component: name });
  }
  override async metrics(): Promise<string> {
    return this.scrape();
  }
}

export async function startInWorker(opts: StartInWorkerOptions): Promise<WorkerComponentHandle> {
  const init: WorkerInit = { name: opts.name, module: opts.module, config: opts.config, dataDir: opts.dataDir, logLevel: opts.logLevel, kafka: opts.kafka };
  const worker = new Worker(BOOTSTRAP, { workerData: { entry: ENTRY.href, init }, name: `plantwatch-${opts.name}` });
  let closing = false;
  let exited = false;
  let lastError: Error | undefined;
  const exit = new Promise<number>((resolve) => worker.once('exit', (code) => ((exited = true), resolve(code))));
  const pending = new Map<number, { resolve(text: string): void; reject(err: Error): void }>();
  let nextId = 1;
  let onClosed: ((m: Extract<FromWorker, { type: 'closed' }>) => void) | undefined;

  const started = new Promise<Extract<FromWorker, { type: 'started' }>>((resolve, reject) => {
    worker.on('message', (m: FromWorker) => {
      if (m.type === 'started') resolve(m);
      else if (m.type === 'start-failed') reject(deserializeError(m.error, opts.name));
      else if (m.type === 'metrics') {
        const p = pending.get(m.id);
        pending.delete(m.id);
        if (m.error) p?.reject(deserializeError(m.error, opts.name));
        else p?.resolve(m.text ?? '');
      } else if (m.type === 'closed') onClosed?.(m);
    });
    worker.on('error', (err) => {
      lastError = err;
      reject(err);
    });
    void exit.then((code) => {
      const err = lastError ?? new Error(`${opts.name} worker exited with code ${code}`);
      reject(err);
      for (const p of pending.values()) p.reject(err);
      pending.clear();
      if (!closing) opts.onFailure(Object.assign(new Error(`${opts.name} worker died (exit code ${code}): ${err.message}`, { cause: err }), { component: opts.name, exitCode: code }));
    });
  });
  let s: Extract<FromWorker, { type: 'started' }>;
  try {
    s = await started;
  } catch (err) {
    closing = true;
    if (!exited) await worker.terminate();
    throw err;
  }

  const scrape = () =>
    new Promise<string>((resolve, reject) => {
      if (exited) return reject(new Error(`${opts.name} worker is not running`));
      const id = nextId++;
      pending.set(id, { resolve, reject });
      worker.postMessage({ type: 'metrics', id } satisfies ToWorker);
    });
  let closeP: Promise<void> | undefined;
  const close = () =>
    (closeP ??= (async () => {
      closing = true;
      if (exited) return;
      const closed = new Promise<Extract<FromWorker, { type: 'closed' }>>((resolve) => (onClosed = resolve));
      worker.postMessage({ type: 'close' } satisfies ToWorker);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), opts.closeTimeoutMs ?? 30_000)));
      const r = await Promise.race([closed, exit.then(() => 'exited' as const), timeout]);
      clearTimeout(timer);
      if (r === 'timeout') {
        await worker.terminate();
        throw new Error(`${opts.name} worker did not close within ${opts.closeTimeoutMs ?? 30_000} ms; terminated`);
      }
      if (r === 'exited') throw new Error(`${opts.name} worker exited while closing${lastError ? `: ${lastError.message}` : ''}`);
      await exit;
      if (r.error) throw deserializeError(r.error, opts.name);
    })());
  return { name: opts.name, opsUrl: s.opsUrl, info: s.info, metrics: new WorkerRegistry(opts.name, scrape), threadId: worker.threadId, close };
}
