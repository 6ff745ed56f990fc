/**
 * The component contract. Every component folder exports
 *   `start(config, ctx): Promise<ComponentHandle>`
 * where `config` is its own validated section and `ctx` carries what the platform shares.
 * `close()` is idempotent: stop intake, drain in-flight work, release connections. The platform
 * closes components in reverse start order.
 */
import type { Logger } from './logger.ts';
import type { Registry } from './metrics.ts';
import type { KafkaClients } from './kafka.ts';

export interface ComponentContext {
  logger: Logger;
  /** The component's own metrics registry (served at /metrics and /metrics/<component>). */
  metrics: Registry;
  /** Kafka clients bound to the configured (or embedded) brokers. */
  kafka: KafkaClients;
  /** Root folder for the component's durable state. */
  dataDir: string;
}

export interface ComponentHandle {
  readonly name: string;
  /** Base URL of the component's own ops server (/metrics, /healthz); null when it runs none. */
  readonly opsUrl?: string | null;
  close(): Promise<void>;
}

/** Wraps a close function so that calling it twice runs it once. */
export function onceClose(fn: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | undefined;
  return () => (p ??= fn());
}
