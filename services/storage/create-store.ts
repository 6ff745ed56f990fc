/**
 * Picks the store from the top-level `influx` config section: `url: ''` → the embedded store,
 * otherwise InfluxDB at that URL (database in the path).
 */
import { join } from 'node:path';
import type { InfluxConfig } from '../../common/config/fragments.ts';
import type { Logger } from '../../common/logger.ts';
import { DEFAULT_STORE_OPTIONS, type StorageBackend, type StoreOptions } from './backend.ts';
import { EmbeddedStore } from './embedded-store.ts';
import { WorkerEmbeddedStore } from './embedded-worker.ts';
import { InfluxStore } from './influx-store.ts';

export type CreateStoreOptions = Partial<Omit<StoreOptions, 'logger'>> & { logger: Logger; dataDir?: string };

/** Default embedded file: `<dataDir>/storage/plantwatch.duckdb`. */
export function defaultEmbeddedPath(dataDir: string): string {
  return join(dataDir, 'storage', 'plantwatch.duckdb');
}

export function createStore(influx: Pick<InfluxConfig, 'url'>, opts: CreateStoreOptions): StorageBackend {
  const full: StoreOptions = {
    ...DEFAULT_STORE_OPTIONS,
    ...opts,
    embeddedPath: opts.embeddedPath || defaultEmbeddedPath(opts.dataDir ?? './data'),
  };
  if (influx.url) return new InfluxStore(influx.url, full);
  return full.embeddedThread === 'main' ? new EmbeddedStore(full) : new WorkerEmbeddedStore(full);
}
