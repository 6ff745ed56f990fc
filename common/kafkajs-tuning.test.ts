import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { crc32c, tuneKafkajs } from './kafkajs-tuning.ts';
import './kafka.ts';
import { pseudoRandomBytes } from '../services/kafka-broker/test/raw.ts';

const require = createRequire(import.meta.url);
/** kafkajs' own byte-at-a-time CRC-32C (the file our module replaces only in the require cache). */
const stockCrc = require('kafkajs/src/protocol/recordBatch/crc32C/crc32C.js') as (b: Buffer) => number;
const unsigned = (v: number) => v >>> 0;

describe('kafkajs tuning', () => {
  it('is applied to the pinned kafkajs version', () => {
    expect(tuneKafkajs()).toEqual({ applied: true });
  });

  it('computes CRC-32C exactly as kafkajs does, for every length and alignment', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(Buffer.alloc(0))).toBe(0);
    const big = pseudoRandomBytes(4096 + 13, 7);
    for (let len = 0; len <= 70; len++) for (const off of [0, 1, 3, 7]) {
      const view = big.subarray(off, off + len);
      expect(crc32c(view)).toBe(unsigned(stockCrc(view)));
    }
    for (let seed = 1; seed < 20; seed++) {
      const b = pseudoRandomBytes(1 + ((seed * 7919) % 100_000), seed);
      expect(crc32c(b)).toBe(unsigned(stockCrc(b)));
    }
  });

  it('record batches carry the same bytes and a valid CRC', async () => {
    const { RecordBatch } = require('kafkajs/src/protocol/recordBatch/v0/index.js') as { RecordBatch: (o: object) => Promise<{ buffer: Buffer }> };
    const Record = require('kafkajs/src/protocol/recordBatch/record/v0/index.js') as (o: object) => unknown;
    // Values large enough that the encoders grow (where the zero-fill was dropped) several times.
    const records = Array.from({ length: 40 }, (_, i) => Record({ offsetDelta: i, key: Buffer.from(`k${i}`), value: pseudoRandomBytes(100 + i * 997, i + 1), headers: { h: `v${i}` } }));
    const batch = (await RecordBatch({ firstTimestamp: 1_700_000_000_000, maxTimestamp: 1_700_000_000_000, lastOffsetDelta: 39, records })).buffer;
    // Layout: firstOffset(8) length(4) partitionLeaderEpoch(4) magic(1) crc(4) then the checked body.
    const crcField = batch.readUInt32BE(8 + 4 + 4 + 1);
    const body = batch.subarray(8 + 4 + 4 + 1 + 4);
    expect(crcField).toBe(unsigned(stockCrc(body)));
    expect(batch.readInt32BE(8)).toBe(batch.length - 12);
    // Every record's value is in the body intact.
    for (let i = 0; i < 40; i++) expect(body.includes(pseudoRandomBytes(100 + i * 997, i + 1))).toBe(true);
  });
});
