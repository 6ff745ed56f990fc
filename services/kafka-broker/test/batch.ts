/** Builds RecordBatch v2 byte arrays for tests (uncompressed, CRC-32C filled in). */
import { crc32c } from '@node-rs/crc32';

function zigzag(n: number): number[] {
  let u = n >= 0 ? n * 2 : -n * 2 - 1;
  const out: number[] = [];
  while (u >= 0x80) {
    out.push((u & 0x7f) | 0x80);
    u = Math.floor(u / 128);
  }
  out.push(u);
  return out;
}

export interface TestRecord {
  value: string;
  key?: string;
  timestamp?: number;
}

export function buildBatch(records: TestRecord[], opts: { baseTimestamp?: number; producerId?: number; producerEpoch?: number; baseSequence?: number; attributes?: number } = {}): Buffer {
  const baseTs = opts.baseTimestamp ?? records[0]?.timestamp ?? 1_700_000_000_000;
  const recs = records.map((r, i) => {
    const key = r.key === undefined ? null : Buffer.from(r.key);
    const value = Buffer.from(r.value);
    const body = Buffer.from([
      0, // attributes
      ...zigzag((r.timestamp ?? baseTs) - baseTs),
      ...zigzag(i),
      ...zigzag(key ? key.length : -1),
      ...(key ?? []),
      ...zigzag(value.length),
      ...value,
      ...zigzag(0), // headers
    ]);
    return Buffer.concat([Buffer.from(zigzag(body.length)), body]);
  });
  const payload = Buffer.concat(recs);
  const b = Buffer.alloc(61 + payload.length);
  b.writeBigInt64BE(0n, 0);
  b.writeInt32BE(b.length - 12, 8);
  b.writeInt32BE(0, 12);
  b.writeInt8(2, 16);
  b.writeInt16BE(opts.attributes ?? 0, 21);
  b.writeInt32BE(records.length - 1, 23);
  b.writeBigInt64BE(BigInt(baseTs), 27);
  b.writeBigInt64BE(BigInt(Math.max(...records.map((r) => r.timestamp ?? baseTs))), 35);
  b.writeBigInt64BE(BigInt(opts.producerId ?? -1), 43);
  b.writeInt16BE(opts.producerEpoch ?? -1, 51);
  b.writeInt32BE(opts.baseSequence ?? -1, 53);
  b.writeInt32BE(records.length, 57);
  payload.copy(b, 61);
  b.writeUInt32BE(crc32c(b.subarray(21)), 17);
  return b;
}
