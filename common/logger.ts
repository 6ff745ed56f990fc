/**
 * Structured logs: pino, JSON one line per event. Components get a child logger named after them,
 * so `jq 'select(.component=="edge")'` follows one component in the combined `npm start` output.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export interface LoggerOptions {
  level?: LevelWithSilent;
  /** Where to write; defaults to stdout. Tests pass a capturing stream. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? ((process.env.LOG_LEVEL as LevelWithSilent | undefined) ?? 'info');
  return pino(
    { level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
    (opts.destination as pino.DestinationStream | undefined) ?? pino.destination({ sync: false }),
  );
}

/** A logger that discards everything: the default in unit tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/**
 * The logger of a worker thread: pino lines posted to the main thread through `post`, where
 * `relayWorkerLine` writes them through the main thread's logger (one stream, one format).
 */
export function workerThreadLogger(level: string, post: (line: string) => void): Logger {
  return pino({ level, base: undefined, timestamp: false }, { write: post });
}

/** Writes a line from `workerThreadLogger` through `logger`, at its level. */
export function relayWorkerLine(logger: Logger, line: string): void {
  try {
    const { level, msg, time: _t, pid: _p, hostname: _h, ...rest } = JSON.parse(line) as { level: number; msg?: string; [k: string]: unknown };
    const label = (pino.levels.labels[level] ?? 'info') as 'info';
    logger[label](rest, msg);
  } catch {
    logger.info(line.trim());
  }
}
