/**
 * Kafka protocol primitive types (https://kafka.apache.org/protocol#protocol_types): big-endian
 * integers, int16/int32-length strings and bytes, and for flexible versions (KIP-482) unsigned
 * varint "compact" lengths stored as N+1 and tagged-field sections. Pure: no I/O.
 *
 * INT64 values are read as JS numbers: offsets and timestamps stay far below 2^53 here, and the hot
 * paths (produce/fetch) avoid bigint allocation.
 */

export class DecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecodeError';
  }
}

export class Reader {
  pos: number;
  constructor(
    readonly buf: Buffer,
    pos = 0,
    readonly end = buf.length,
  ) {
    this.pos = pos;
  }

  remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number): number {
    const at = this.pos;
    if (n < 0 || at + n > this.end) throw new DecodeError(`need ${n} bytes at ${at}, have ${this.end - at}`);
    this.pos = at + n;
    return at;
  }

  int8(): number {
    return this.buf.readInt8(this.need(1));
  }
  int16(): number {
    return this.buf.readInt16BE(this.need(2));
  }
  int32(): number {
    return this.buf.readInt32BE(this.need(4));
  }
  uint32(): number {
    return this.buf.readUInt32BE(this.need(4));
  }
  int64(): number {
    const at = this.need(8);
    // hi * 2^32 + lo, exact for |v| < 2^53 (offsets, timestamps, producer ids)
    return this.buf.readInt32BE(at) * 4294967296 + this.buf.readUInt32BE(at + 4);
  }
  bool(): boolean {
    return this.int8() !== 0;
  }
  uvarint(): number {
    let value = 0;
    let shift = 0;
    for (;;) {
      const b = this.buf[this.need(1)];
      value += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return value;
      shift += 7;
      if (shift > 28) throw new DecodeError('varint too long');
    }
  }
  varint(): number {
    const u = this.uvarint();
    return u % 2 === 0 ? u / 2 : -(u + 1) / 2;
  }
  uuid(): Buffer {
    return this.buf.subarray(this.need(16), this.pos);
  }

  /** int16-length (or compact) string; null for length -1 (or compact 0). */
  string(flexible: boolean): string | null {
    const len = flexible ? this.uvarint() - 1 : this.int16();
    if (len < 0) return null;
    const at = this.need(len);
    return this.buf.toString('utf8', at, at + len);
  }
  /** int32-length (or compact) bytes as a view into the frame (no copy); null for -1. */
  bytes(flexible: boolean): Buffer | null {
    const len = flexible ? this.uvarint() - 1 : this.int32();
    if (len < 0) return null;
    const at = this.need(len);
    return this.buf.subarray(at, at + len);
  }
  /** Array length; null for -1 (or compact 0). Rejects lengths the remaining bytes cannot hold. */
  arrayLength(flexible: boolean): number | null {
    const n = flexible ? this.uvarint() - 1 : this.int32();
    if (n < 0) return null;
    if (n > this.remaining()) throw new DecodeError(`array of ${n} elements in ${this.remaining()} bytes`);
    return n;
  }
  /** Skips a KIP-482 tagged-field section (we know no tags). */
  skipTags(): void {
    const count = this.uvarint();
    for (let i = 0; i < count; i++) {
      this.uvarint();
      const size = this.uvarint();
      this.need(size);
    }
  }
}

/**
 * Builds a response as a list of chunks: small fields are copied into a scratch buffer, large byte
 * fields (record batches) are referenced, not copied, so a Fetch response costs no data copies.
 * The first 4 bytes are reserved for the frame size, filled in by `finish()`.
 */
export class Writer {
  private chunks: Buffer[] = [];
  private buf: Buffer;
  private start = 0;
  private pos = 0;
  private total = 0;
  static readonly REF_THRESHOLD = 256;

  constructor(initial = 512) {
    this.buf = Buffer.allocUnsafe(initial);
    this.pos = 4; // frame size, patched in finish()
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    this.flushScratch();
    this.buf = Buffer.allocUnsafe(Math.max(4096, n));
    this.start = 0;
    this.pos = 0;
  }
  private flushScratch(): void {
    if (this.pos > this.start) {
      this.chunks.push(this.buf.subarray(this.start, this.pos));
      this.total += this.pos - this.start;
    }
    this.start = this.pos;
  }

  int8(v: number): this {
    this.ensure(1);
    this.buf.writeInt8(v, this.pos);
    this.pos += 1;
    return this;
  }
  int16(v: number): this {
    this.ensure(2);
    this.buf.writeInt16BE(v, this.pos);
    this.pos += 2;
    return this;
  }
  int32(v: number): this {
    this.ensure(4);
    this.buf.writeInt32BE(v, this.pos);
    this.pos += 4;
    return this;
  }
  uint32(v: number): this {
    this.ensure(4);
    this.buf.writeUInt32BE(v, this.pos);
    this.pos += 4;
    return this;
  }
  int64(v: number): this {
    this.ensure(8);
    const hi = Math.floor(v / 4294967296);
    this.buf.writeInt32BE(hi, this.pos);
    this.buf.writeUInt32BE(v - hi * 4294967296, this.pos + 4);
    this.pos += 8;
    return this;
  }
  bool(v: boolean): this {
    return this.int8(v ? 1 : 0);
  }
  uvarint(v: number): this {
    this.ensure(5);
    while (v >= 0x80) {
      this.buf[this.pos++] = (v & 0x7f) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[this.pos++] = v;
    return this;
  }
  uuid(v: Buffer | null): this {
    return this.raw(v ?? Buffer.alloc(16));
  }
  string(v: string | null, flexible: boolean): this {
    if (v === null) return flexible ? this.uvarint(0) : this.int16(-1);
    const len = Buffer.byteLength(v);
    if (flexible) this.uvarint(len + 1);
    else this.int16(len);
    this.ensure(len);
    this.buf.write(v, this.pos, 'utf8');
    this.pos += len;
    return this;
  }
  /** Bytes field; an array of buffers is written as one field of their concatenation. */
  bytes(v: Buffer | readonly Buffer[] | null, flexible: boolean): this {
    if (v === null) return flexible ? this.uvarint(0) : this.int32(-1);
    const parts = Buffer.isBuffer(v) ? [v] : v;
    let len = 0;
    for (const p of parts) len += p.length;
    if (flexible) this.uvarint(len + 1);
    else this.int32(len);
    for (const p of parts) this.raw(p);
    return this;
  }
  arrayLength(n: number | null, flexible: boolean): this {
    if (n === null) return flexible ? this.uvarint(0) : this.int32(-1);
    return flexible ? this.uvarint(n + 1) : this.int32(n);
  }
  emptyTags(): this {
    return this.uvarint(0);
  }
  raw(b: Buffer): this {
    if (b.length >= Writer.REF_THRESHOLD) {
      this.flushScratch();
      this.chunks.push(b);
      this.total += b.length;
      return this;
    }
    this.ensure(b.length);
    b.copy(this.buf, this.pos);
    this.pos += b.length;
    return this;
  }

  /** Returns the frame chunks with the size prefix filled in. */
  finish(): Buffer[] {
    this.flushScratch();
    const first = this.chunks[0];
    first.writeInt32BE(this.total - 4, 0);
    return this.chunks;
  }
  /** The frame as one buffer (tests, small responses). */
  finishConcat(): Buffer {
    return Buffer.concat(this.finish());
  }
}
