/**
 * Platform errors carry a stable code (documented in docs/errors.md, never reused), whether a retry
 * can help, the cause and context. `retriable` is required: nothing is retried by accident.
 */
export interface PlatformErrorOptions {
  retriable: boolean;
  cause?: unknown;
  context?: Record<string, unknown>;
}

export class PlatformError extends Error {
  readonly code: string;
  readonly retriable: boolean;
  readonly context: Record<string, unknown>;

  constructor(code: string, message: string, opts: PlatformErrorOptions) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'PlatformError';
    this.code = code;
    this.retriable = opts.retriable;
    this.context = opts.context ?? {};
  }
}

/** Configuration is wrong: the process should exit with this message, no stack trace. */
export class ConfigError extends PlatformError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super('CONFIG_INVALID', message, { retriable: false, context });
    this.name = 'ConfigError';
  }
}

export function isRetriable(err: unknown): boolean {
  return err instanceof PlatformError && err.retriable;
}
