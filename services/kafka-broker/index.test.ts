/** services/kafka-broker entry points: config defaults, data dir resolution, idempotent close. */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BrokerConfig, start } from './index.ts';
import { silentLogger } from '../../common/logger.ts';
import { createRegistry } from '../../common/metrics.ts';

describe('services/kafka-broker', () => {
  it('has a working default config', () => {
    const c = BrokerConfig.parse({});
    expect(c).toMatchObject({ host: '127.0.0.1', port: 9092, dataDir: 'kafka', autoCreateTopics: true, fsync: 'interval', httpPort: 9105 });
    expect(() => BrokerConfig.parse({ prot: 1 })).toThrow(); // strict: typos are errors
    expect(() => BrokerConfig.parse({ fsync: 'sometimes' })).toThrow();
  });

  it('fails with KAFKA_BROKER_LISTEN_FAILED when the port is taken', async () => {
    const root = mkdtempSync(join(tmpdir(), 'plantwatch-broker-busy-'));
    const ctx = { logger: silentLogger(), metrics: createRegistry('kafka-broker'), dataDir: root };
    const first = await start(BrokerConfig.parse({ port: 0, httpPort: null, dataDir: 'a' }), ctx);
    try {
      await expect(start(BrokerConfig.parse({ port: first.port, httpPort: null, dataDir: 'b' }), { ...ctx, metrics: createRegistry('kafka-broker') })).rejects.toMatchObject({
        code: 'KAFKA_BROKER_LISTEN_FAILED',
        retriable: false,
      });
    } finally {
      await first.close();
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('resolves a relative dataDir against ctx.dataDir, and close() is idempotent', async () => {
    const root = mkdtempSync(join(tmpdir(), 'plantwatch-broker-ctx-'));
    try {
      const handle = await start(BrokerConfig.parse({ port: 0, httpPort: null }), { logger: silentLogger(), metrics: createRegistry('kafka-broker'), dataDir: root });
      expect(handle.name).toBe('kafka-broker');
      expect(handle.dataDir).toBe(join(root, 'kafka'));
      expect(existsSync(join(root, 'kafka', 'cluster-id'))).toBe(true);
      expect(handle.brokers).toEqual([`127.0.0.1:${handle.port}`]);
      await Promise.all([handle.close(), handle.close()]);
      await handle.close();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
