/**
 * Stable error codes of the storage component (documented in README.md › Errors; never reused).
 */
import { PlatformError } from '../../common/errors.ts';

export const STORAGE_ERRORS = {
  /** The database refused the point itself (HTTP 400/422, or a single point that still 413s): not retried. */
  rejected: 'STORAGE_WRITE_REJECTED',
  /** The database is unreachable, timed out, throttled or answered 5xx: retried with backoff. */
  unavailable: 'STORAGE_UNAVAILABLE',
  /** Credentials or permissions refused (401/403): retried with backoff so data waits for the fix. */
  unauthorized: 'STORAGE_UNAUTHORIZED',
  /** A new series beyond the configured cardinality limit: refused, counted, logged. */
  cardinality: 'STORAGE_CARDINALITY_LIMIT',
  /** Event time older than the raw retention: the database would drop it, so it is refused up front. */
  tooOld: 'STORAGE_TOO_OLD',
  /** A Kafka record that is not valid JSON or fails schema validation: dead-lettered. */
  recordInvalid: 'STORAGE_RECORD_INVALID',
  /** Query arguments are unusable (e.g. from >= to, maxPoints < 1). */
  queryInvalid: 'STORAGE_QUERY_INVALID',
} as const;

/** A retriable storage error; `retryAfterMs` carries the server's Retry-After when it sent one. */
export class StorageUnavailableError extends PlatformError {
  readonly retryAfterMs: number | undefined;
  constructor(message: string, opts: { cause?: unknown; retryAfterMs?: number; code?: string; context?: Record<string, unknown> } = {}) {
    super(opts.code ?? STORAGE_ERRORS.unavailable, message, { retriable: true, cause: opts.cause, context: opts.context });
    this.name = 'StorageUnavailableError';
    this.retryAfterMs = opts.retryAfterMs;
  }
}

export function queryInvalid(message: string): PlatformError {
  return new PlatformError(STORAGE_ERRORS.queryInvalid, message, { retriable: false });
}
