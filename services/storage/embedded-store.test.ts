import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { silentLogger } from '../../common/logger.ts';
import { storeConformance } from '../../test/conformance/store.ts';
import { DEFAULT_STORE_OPTIONS, type StorageBackend, type StoreOptions } from './backend.ts';
import { EmbeddedStore } from './embedded-store.ts';

const root = mkdtempSync(join(tmpdir(), 'pw-embedded-store-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const paths = new WeakMap<StorageBackend, string>();

async function openAt(path: string, overrides: Partial<StoreOptions> = {}): Promise<StorageBackend> {
  const store = new EmbeddedStore({ ...DEFAULT_STORE_OPTIONS, logger: silentLogger(), embeddedPath: path, ...overrides });
  await store.init();
  paths.set(store, path);
  return store;
}

storeConformance('services/storage/embedded-store', {
  open: (overrides) => openAt(join(root, `t${++n}`, 'plantwatch.duckdb'), overrides),
  reopen: async (store, overrides) => {
    const path = paths.get(store)!;
    await store.close();
    return openAt(path, overrides);
  },
});
