/** Messages between WorkerEmbeddedStore (main thread) and its worker (embedded-worker-thread.ts). */
import type { LevelWithSilent } from 'pino';
import { PlatformError } from '../../common/errors.ts';
import type { StoreOptions } from './backend.ts';
import { StorageUnavailableError } from './errors.ts';

export interface StoreWorkerInit {
  /** Plain-data store options (no logger, registry or clock). */
  options: Omit<StoreOptions, 'logger' | 'metrics' | 'now'>;
  logLevel: LevelWithSilent;
  /** The main thread has its own clock: each call carries its `now`. */
  hasClock: boolean;
}

/** A ReadingBatch as transferable columns; series by the main thread's ids, defined once each. */
export interface ColumnBatch {
  n: number;
  ts: ArrayBuffer;
  value: ArrayBuffer;
  receivedAt: ArrayBuffer;
  quality: ArrayBuffer;
  /** Int32 series id per point. */
  series: ArrayBuffer;
  /** Uint16 per point: 0 = no unit, else 1 + index into `units`. */
  unitIdx: ArrayBuffer;
  units: string[];
  /** [id, site, line, machine, sensor] of series the worker has not been told about. */
  newSeries: [number, string, string, string, string][];
  /** Forget all series ids first (the main thread started numbering afresh). */
  resetSeries: boolean;
}

export type ToStoreWorker = { type: 'call'; id: number; op: string; args: unknown[]; batch?: ColumnBatch; now?: number };

export type FromStoreWorker = { type: 'ready' } | { type: 'log'; line: string } | { type: 'result'; id: number; result?: unknown; error?: SerializedStoreError };

export interface SerializedStoreError {
  name: string;
  message: string;
  code?: string;
  retriable?: boolean;
  retryAfterMs?: number;
  stack?: string;
}

export function serializeStoreError(err: unknown): SerializedStoreError {
  const e = err as Partial<Error> & { code?: unknown; retriable?: unknown; retryAfterMs?: unknown };
  return {
    name: e?.name ?? 'Error',
    message: e?.message ?? String(err),
    code: typeof e?.code === 'string' ? e.code : undefined,
    retriable: typeof e?.retriable === 'boolean' ? e.retriable : undefined,
    retryAfterMs: typeof e?.retryAfterMs === 'number' ? e.retryAfterMs : undefined,
    stack: e?.stack,
  };
}

/** The same kind of error on this side: retriable ones stay StorageUnavailableError, coded ones PlatformError. */
export function deserializeStoreError(s: SerializedStoreError): Error {
  let err: Error;
  if (s.retriable) err = new StorageUnavailableError(s.message, { code: s.code, retryAfterMs: s.retryAfterMs });
  else if (s.code) err = new PlatformError(s.code, s.message, { retriable: false });
  else err = new Error(s.message);
  err.name = s.name;
  if (s.stack) err.stack = s.stack;
  return err;
}
