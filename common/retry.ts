/**
 * The one retry helper. Retries only errors that say they are retriable (a PlatformError with
 * `retriable: true`, or whatever `isRetriable` accepts); programming errors (TypeError, RangeError)
 * are never retried. Exponential backoff with full jitter.
 */
import { PlatformError, isRetriable as defaultIsRetriable } from './errors.ts';

export interface RetryPolicy {
  /** Attempts after the first; Infinity retries until `deadlineMs`. */
  retries: number;
  initialDelayMs: number;
  maxDelayMs: number;
  factor: number;
  /** Give up once this much time has passed since the first attempt. */
  deadlineMs?: number;
  isRetriable?: (err: unknown) => boolean;
  /** Stop early (e.g. the component is closing). */
  signal?: AbortSignal;
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
}

export const DEFAULT_RETRY: RetryPolicy = {
  retries: 5,
  initialDelayMs: 100,
  maxDelayMs: 10_000,
  factor: 2,
};

/** Delay before retry number `attempt` (1-based), full jitter. */
export function backoffDelay(policy: RetryPolicy, attempt: number, random = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.factor ** (attempt - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason ?? new Error('aborted'));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason ?? new Error('aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export async function retry<T>(fn: (attempt: number) => Promise<T>, policy: Partial<RetryPolicy> = {}): Promise<T> {
  const p: RetryPolicy = { ...DEFAULT_RETRY, ...policy };
  const retriable = p.isRetriable ?? defaultIsRetriable;
  const started = Date.now();
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (err instanceof TypeError || err instanceof RangeError || !retriable(err)) throw err;
      const delay = backoffDelay(p, attempt + 1);
      const pastDeadline = p.deadlineMs !== undefined && Date.now() - started + delay > p.deadlineMs;
      if (attempt >= p.retries || pastDeadline) {
        throw new PlatformError('RETRIES_EXHAUSTED', `gave up after ${attempt + 1} attempts: ${(err as Error).message}`, {
          retriable: false,
          cause: err,
          context: { retryCount: attempt },
        });
      }
      p.onRetry?.(err, attempt + 1, delay);
      await sleep(delay, p.signal);
    }
  }
}
