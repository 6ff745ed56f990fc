import { DuckDBInstance } from '@duckdb/node-api';
import { describe, expect, it } from 'vitest';
import { CHUNK_ROWS, ChunkBuilder } from './duckdb-chunk.ts';

describe('ChunkBuilder', () => {
  it('appends rows column-wise exactly as given: BIGINT halves, doubles, inlined and long strings, NULLs, across chunks', async () => {
    const instance = await DuckDBInstance.create(':memory:');
    const conn = await instance.connect();
    await conn.run('CREATE TABLE t (i INTEGER, b BIGINT, d DOUBLE, s VARCHAR)');
    const appender = await conn.createAppender('t');
    const builder = new ChunkBuilder(['integer', 'bigint', 'double', 'varchar']);
    const total = CHUNK_ROWS + 10;
    const texts = [undefined, 'degC', '', 'bar', 'exactly12byt', 'thirteen byte', 'a much longer unit string', 'µS/cm', '°C', 'ääääää', 'äääääää', 'good'];
    const text = (r: number) => texts[(r * 7) % texts.length];
    const big = [0, 1, -1, 2 ** 32, 2 ** 32 - 1, -(2 ** 32), Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 1_764_000_000_123];
    let n = 0;
    for (let r = 0; r < total; r++) {
      builder.setInteger(0, n, r - 5);
      builder.setBigInt(1, n, big[r % big.length]);
      builder.setDouble(2, n, r / 3);
      builder.setVarchar(3, n, text(r));
      if (++n === CHUNK_ROWS) {
        builder.appendTo(appender, n);
        n = 0;
      }
    }
    builder.appendTo(appender, n);
    appender.flushSync();
    const rows = (await conn.runAndReadAll('SELECT i, b, d, s FROM t ORDER BY i')).getRows();
    expect(rows).toHaveLength(total);
    // Inlined strings compare and group like appended ones (DuckDB compares the padding too).
    const [[distinct]] = (await conn.runAndReadAll(`SELECT count(DISTINCT s) FROM t WHERE s = 'degC' OR s = '' OR s = 'exactly12byt'`)).getRows();
    expect(distinct).toBe(3n);
    for (let r = 0; r < total; r++) {
      expect(rows[r]).toEqual([r - 5, BigInt(big[r % big.length]), r / 3, text(r) ?? null]);
    }
    appender.closeSync();
    conn.closeSync();
    instance.closeSync();
  });

  it('a chunk reused after one with NULLs and long strings carries none of them over', async () => {
    const instance = await DuckDBInstance.create(':memory:');
    const conn = await instance.connect();
    await conn.run('CREATE TABLE t (i INTEGER, s VARCHAR)');
    const appender = await conn.createAppender('t');
    const builder = new ChunkBuilder(['integer', 'varchar']);
    for (let r = 0; r < 100; r++) {
      builder.setInteger(0, r, r);
      builder.setVarchar(1, r, r % 2 === 0 ? null : 'a string longer than twelve bytes');
    }
    builder.appendTo(appender, 100);
    for (let r = 0; r < 100; r++) {
      builder.setInteger(0, r, 100 + r);
      builder.setVarchar(1, r, 'degC');
    }
    builder.appendTo(appender, 100);
    appender.flushSync();
    const [[nulls, longs, units]] = (await conn.runAndReadAll(`SELECT count(*) FILTER (s IS NULL), count(*) FILTER (length(s) > 12), count(*) FILTER (s = 'degC') FROM t WHERE i >= 100`)).getRows();
    expect([nulls, longs, units]).toEqual([0n, 0n, 100n]);
    const [[firstNulls]] = (await conn.runAndReadAll(`SELECT count(*) FROM t WHERE i < 100 AND s IS NULL`)).getRows();
    expect(firstNulls).toBe(50n);
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
