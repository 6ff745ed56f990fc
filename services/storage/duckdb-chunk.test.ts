import { DuckDBInstance } from '@duckdb/node-api';
import { describe, expect, it } from 'vitest';
import { CHUNK_ROWS, ChunkBuilder } from './duckdb-chunk.ts';

describe('ChunkBuilder', () => {
  it('appends rows column-wise exactly as given: BIGINT halves, doubles, strings and NULLs, across chunks', async () => {
    const instance = await DuckDBInstance.create(':memory:');
    const conn = await instance.connect();
    await conn.run('CREATE TABLE t (i INTEGER, b BIGINT, d DOUBLE, s VARCHAR)');
    const appender = await conn.createAppender('t');
    const builder = new ChunkBuilder(['integer', 'bigint', 'double', 'varchar']);
    const total = CHUNK_ROWS + 10;
    const big = [0, 1, -1, 2 ** 32, 2 ** 32 - 1, -(2 ** 32), Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 1_764_000_000_123];
    let n = 0;
    for (let r = 0; r < total; r++) {
      builder.setInteger(0, n, r - 5);
      builder.setBigInt(1, n, big[r % big.length]);
      builder.setDouble(2, n, r / 3);
      builder.setVarchar(3, n, r % 3 === 0 ? undefined : `s${r}`);
      if (++n === CHUNK_ROWS) {
        builder.appendTo(appender, n);
        n = 0;
      }
    }
    builder.appendTo(appender, n);
    appender.flushSync();
    const rows = (await conn.runAndReadAll('SELECT i, b, d, s FROM t ORDER BY i')).getRows();
    expect(rows).toHaveLength(total);
    for (let r = 0; r < total; r++) {
      expect(rows[r]).toEqual([r - 5, BigInt(big[r % big.length]), r / 3, r % 3 === 0 ? null : `s${r}`]);
    }
    appender.closeSync();
    conn.closeSync();
    instance.closeSync();
  });

  it('refuses a BIGINT that is not a safe integer instead of storing a wrong value', () => {
    const builder = new ChunkBuilder(['bigint']);
    expect(() => builder.setBigInt(0, 0, 2 ** 60)).toThrow(RangeError);
    expect(() => builder.setBigInt(0, 0, 1.5)).toThrow(RangeError);
  });
});
