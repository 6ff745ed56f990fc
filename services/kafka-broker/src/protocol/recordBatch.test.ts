/** Protocol > RecordBatch v2: validation, offset rewrite outside the CRC, timestamp lookup. */
import { describe, expect, it } from 'vitest';
import { crc32c } from '@node-rs/crc32';
import { checkBatchAt, findTimestampInBatch, parseProducedBatches, readBaseOffset, writeBaseOffset } from './recordBatch.ts';
import { ErrorCode } from './errors.ts';
import { buildBatch } from '../../test/batch.ts';

describe('Protocol > RecordBatch v2', () => {
  it('accepts a valid batch and exposes its header fields', () => {
    const b = buildBatch([{ value: 'a' }, { value: 'b' }, { value: 'c' }], { producerId: 7, producerEpoch: 1, baseSequence: 10 });
    const parsed = parseProducedBatches(b);
    expect('batches' in parsed).toBe(true);
    if (!('batches' in parsed)) return;
    expect(parsed.batches[0]).toMatchObject({ lastOffsetDelta: 2, producerId: 7, producerEpoch: 1, baseSequence: 10, recordsCount: 3 });
  });

  it('splits back-to-back batches', () => {
    const two = Buffer.concat([buildBatch([{ value: 'a' }]), buildBatch([{ value: 'b' }, { value: 'c' }])]);
    const parsed = parseProducedBatches(two);
    expect('batches' in parsed && parsed.batches.map((x) => x.recordsCount)).toEqual([1, 2]);
  });

  it('rejects a flipped payload byte (CRC-32C), a wrong magic, a bad length and transactional batches', () => {
    const good = buildBatch([{ value: 'hello' }]);
    const flipped = Buffer.from(good);
    flipped[flipped.length - 3] ^= 0xff;
    expect(parseProducedBatches(flipped)).toMatchObject({ error: ErrorCode.CORRUPT_MESSAGE, reason: 'CRC-32C mismatch' });
    const magic1 = Buffer.from(good);
    magic1.writeInt8(1, 16);
    expect(parseProducedBatches(magic1)).toMatchObject({ error: ErrorCode.CORRUPT_MESSAGE });
    const long = Buffer.from(good);
    long.writeInt32BE(good.length * 2, 8);
    expect(parseProducedBatches(long)).toMatchObject({ error: ErrorCode.CORRUPT_MESSAGE });
    expect(parseProducedBatches(good.subarray(0, 30))).toMatchObject({ error: ErrorCode.CORRUPT_MESSAGE });
    expect(parseProducedBatches(buildBatch([{ value: 'x' }], { attributes: 0x10 }))).toMatchObject({ error: ErrorCode.INVALID_RECORD });
  });

  it('rewrites the base offset without invalidating the CRC', () => {
    const b = buildBatch([{ value: 'a' }]);
    writeBaseOffset(b, 2 ** 33 + 17);
    expect(readBaseOffset(b)).toBe(2 ** 33 + 17);
    expect(checkBatchAt(b, 0)).toEqual({ size: b.length });
    expect(crc32c(b.subarray(21))).toBe(b.readUInt32BE(17));
  });

  it('finds the first record at or after a timestamp inside an uncompressed batch', () => {
    const b = buildBatch([
      { value: 'a', timestamp: 1000 },
      { value: 'b', timestamp: 2000 },
      { value: 'c', timestamp: 3000 },
    ]);
    writeBaseOffset(b, 100);
    expect(findTimestampInBatch(b, 1500)).toEqual({ offset: 101, timestamp: 2000 });
    expect(findTimestampInBatch(b, 3000)).toEqual({ offset: 102, timestamp: 3000 });
    expect(findTimestampInBatch(b, 500)).toEqual({ offset: 100, timestamp: 1000 });
    expect(findTimestampInBatch(b, 3001)).toBeNull();
  });
});
