import { describe, expect, it } from 'vitest';
import { StorageConfig } from './config.schema.ts';

describe('services/storage/config.schema', () => {
  it('parses {} into a complete working default', () => {
    const c = StorageConfig.parse({});
    expect(c).toMatchObject({ influxUrl: '', groupId: 'plantwatch-storage', httpPort: 9103, batchSize: 5000, concurrency: 2, maxPointsPerSeries: 2000, rawRetentionDays: 30, rollupRetentionDays: 730 });
  });

  it('rejects unknown keys and bad values with the key named', () => {
    const unknown = StorageConfig.safeParse({ batchsize: 10 });
    expect(unknown.success).toBe(false);
    expect(JSON.stringify(unknown.error!.issues)).toMatch(/batchsize/);
    const bad = StorageConfig.safeParse({ influxUrl: 'ftp://x/db' });
    expect(bad.success).toBe(false);
    expect(bad.error!.issues[0].path).toEqual(['influxUrl']);
    expect(StorageConfig.safeParse({ concurrency: 0 }).success).toBe(false);
  });
});
