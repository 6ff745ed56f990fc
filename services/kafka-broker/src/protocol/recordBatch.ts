/**
 * RecordBatch v2 header access (https://kafka.apache.org/documentation/#recordbatch). The broker
 * never decodes records: it checks the header and the CRC-32C (which covers byte 21 to the end) and
 * rewrites only baseOffset (bytes 0–7), which lies outside the CRC.
 *
 *   0 baseOffset i64 | 8 batchLength i32 | 12 partitionLeaderEpoch i32 | 16 magic i8 | 17 crc u32 |
 *   21 attributes i16 | 23 lastOffsetDelta i32 | 27 baseTimestamp i64 | 35 maxTimestamp i64 |
 *   43 producerId i64 | 51 producerEpoch i16 | 53 baseSequence i32 | 57 recordsCount i32 | 61 records
 */
import { crc32c } from '@node-rs/crc32';
import { ErrorCode } from './errors.ts';

export const BATCH_HEADER_SIZE = 61;
/** Bytes before batchLength's coverage starts: baseOffset + batchLength. */
export const BATCH_LOG_OVERHEAD = 12;

export const ATTR_COMPRESSION_MASK = 0x07;
export const ATTR_TRANSACTIONAL = 0x10;
export const ATTR_CONTROL = 0x20;

export interface BatchView {
  /** The whole batch (a view into the request frame). */
  buf: Buffer;
  lastOffsetDelta: number;
  maxTimestamp: number;
  producerId: number;
  producerEpoch: number;
  baseSequence: number;
  recordsCount: number;
}

const readI64 = (b: Buffer, at: number): number => b.readInt32BE(at) * 4294967296 + b.readUInt32BE(at + 4);

export function writeBaseOffset(batch: Buffer, offset: number): void {
  const hi = Math.floor(offset / 4294967296);
  batch.writeInt32BE(hi, 0);
  batch.writeUInt32BE(offset - hi * 4294967296, 4);
}
export const readBaseOffset = (b: Buffer, at = 0): number => readI64(b, at);
export const readLastOffsetDelta = (b: Buffer, at = 0): number => b.readInt32BE(at + 23);
export const readMaxTimestamp = (b: Buffer, at = 0): number => readI64(b, at + 35);

/** Checks the header fields and the CRC of the batch starting at `at`; returns its total size or an error. */
export function checkBatchAt(b: Buffer, at: number, end = b.length): { size: number } | { error: number; reason: string } {
  if (end - at < BATCH_HEADER_SIZE) return { error: ErrorCode.CORRUPT_MESSAGE, reason: 'short batch header' };
  const batchLength = b.readInt32BE(at + 8);
  const size = batchLength + BATCH_LOG_OVERHEAD;
  if (batchLength < BATCH_HEADER_SIZE - BATCH_LOG_OVERHEAD || at + size > end) return { error: ErrorCode.CORRUPT_MESSAGE, reason: 'batch length out of range' };
  const magic = b.readInt8(at + 16);
  if (magic !== 2) return { error: ErrorCode.CORRUPT_MESSAGE, reason: `magic ${magic} (only v2 record batches)` };
  const crc = b.readUInt32BE(at + 17);
  if (crc32c(b.subarray(at + 21, at + size)) !== crc) return { error: ErrorCode.CORRUPT_MESSAGE, reason: 'CRC-32C mismatch' };
  const lastOffsetDelta = b.readInt32BE(at + 23);
  const count = b.readInt32BE(at + 57);
  if (lastOffsetDelta < 0 || count < 0 || count > lastOffsetDelta + 1) return { error: ErrorCode.CORRUPT_MESSAGE, reason: 'bad record count' };
  return { size };
}

/**
 * Splits a Produce partition's `records` into validated batches. Transactional and control batches
 * are refused: transactions are not implemented.
 */
export function parseProducedBatches(records: Buffer): { batches: BatchView[] } | { error: number; reason: string } {
  const batches: BatchView[] = [];
  let at = 0;
  while (at < records.length) {
    const checked = checkBatchAt(records, at);
    if ('error' in checked) return checked;
    const attributes = records.readInt16BE(at + 21);
    if (attributes & (ATTR_TRANSACTIONAL | ATTR_CONTROL)) return { error: ErrorCode.INVALID_RECORD, reason: 'transactional/control batches are not supported' };
    const buf = records.subarray(at, at + checked.size);
    batches.push({
      buf,
      lastOffsetDelta: buf.readInt32BE(23),
      maxTimestamp: readI64(buf, 35),
      producerId: readI64(buf, 43),
      producerEpoch: buf.readInt16BE(51),
      baseSequence: buf.readInt32BE(53),
      recordsCount: buf.readInt32BE(57),
    });
    at += checked.size;
  }
  if (batches.length === 0) return { error: ErrorCode.CORRUPT_MESSAGE, reason: 'no record batch' };
  return { batches };
}

/**
 * Offset of the first record with timestamp >= `ts` inside an uncompressed batch, with that
 * timestamp; for compressed batches the batch's base offset and max timestamp (records unread).
 */
export function findTimestampInBatch(b: Buffer, ts: number): { offset: number; timestamp: number } | null {
  const base = readI64(b, 0);
  const baseTs = readI64(b, 27);
  const maxTs = readI64(b, 35);
  if (maxTs < ts) return null;
  if ((b.readInt16BE(21) & ATTR_COMPRESSION_MASK) !== 0) return { offset: base, timestamp: maxTs };
  let at = BATCH_HEADER_SIZE;
  const count = b.readInt32BE(57);
  const varint = (): number => {
    let u = 0;
    let shift = 0;
    for (;;) {
      const byte = b[at++];
      u += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) break;
      shift += 7;
    }
    return u % 2 === 0 ? u / 2 : -(u + 1) / 2;
  };
  for (let i = 0; i < count && at < b.length; i++) {
    const len = varint();
    const recordEnd = at + len;
    at += 1; // attributes
    const tsDelta = varint();
    const offsetDelta = varint();
    if (baseTs + tsDelta >= ts) return { offset: base + offsetDelta, timestamp: baseTs + tsDelta };
    at = recordEnd;
  }
  return { offset: base, timestamp: maxTs };
}
