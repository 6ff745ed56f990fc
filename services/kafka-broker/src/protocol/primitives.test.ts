/** Protocol > primitives: integer widths, varints, (compact) strings and bytes, tagged fields. */
import { describe, expect, it } from 'vitest';
import { DecodeError, Reader, Writer } from './primitives.ts';

const body = (w: Writer): Buffer => w.finishConcat().subarray(4);

describe('Protocol > primitives', () => {
  it('round-trips int64 values across the 32-bit boundary and negatives', () => {
    for (const v of [0, 1, -1, 2 ** 32, 2 ** 32 - 1, -(2 ** 32) - 7, 2 ** 53 - 1, -(2 ** 53) + 1, 1_795_700_000_000]) {
      const w = new Writer();
      w.int64(v);
      const b = body(w);
      expect(b.readBigInt64BE(0)).toBe(BigInt(v));
      expect(new Reader(b).int64()).toBe(v);
    }
  });

  it('encodes unsigned varints like Kafka (7 bits per byte, low first) and zigzag varints', () => {
    const w = new Writer();
    w.uvarint(0).uvarint(127).uvarint(128).uvarint(300);
    expect([...body(w)]).toEqual([0x00, 0x7f, 0x80, 0x01, 0xac, 0x02]);
    const r = new Reader(Buffer.from([0x01, 0x02, 0x03, 0xac, 0x02]));
    expect([r.varint(), r.varint(), r.varint(), r.varint()]).toEqual([-1, 1, -2, 150]);
  });

  it('writes classic and compact strings, null included', () => {
    const w = new Writer();
    w.string('ab', false).string(null, false).string('ab', true).string(null, true);
    const b = body(w);
    expect([...b]).toEqual([0, 2, 0x61, 0x62, 0xff, 0xff, 3, 0x61, 0x62, 0]);
    const r = new Reader(b);
    expect([r.string(false), r.string(false), r.string(true), r.string(true)]).toEqual(['ab', null, 'ab', null]);
  });

  it('references large byte fields instead of copying them', () => {
    const big = Buffer.alloc(10_000, 1);
    const w = new Writer();
    w.int32(5).bytes([big, big], false);
    const chunks = w.finish();
    expect(chunks).toContain(big);
    expect(chunks[0].readInt32BE(0)).toBe(4 + 4 + 20_000); // int32 + bytes length + data (size excludes itself)
  });

  it('skips tagged fields and rejects reads past the end', () => {
    const r = new Reader(Buffer.from([2, 0, 1, 9, 5, 2, 7, 7, 0x42]));
    r.skipTags();
    expect(r.int8()).toBe(0x42);
    expect(() => new Reader(Buffer.from([0, 5, 0x61])).string(false)).toThrow(DecodeError);
    expect(() => new Reader(Buffer.from([0x7f, 0xff, 0xff, 0xff])).arrayLength(false)).toThrow(DecodeError);
  });
});
