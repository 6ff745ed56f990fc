/**
 * InfluxDB line protocol for readings written as bytes straight from a ReadingBatch's columns:
 * the same lines as `readingLine()` in schema.ts (which stays the reference and serves the other
 * measurements), without a string per point. The series part (`readings,line=…,site=… value=`)
 * comes prepared per series, the value's JSON text is copied as it arrived (InfluxDB parses it to
 * the same double as JSON.parse does), unit fields are cached per unit, integers are written digit
 * by digit.
 */
import type { ReadingBatch } from '../../common/reading-batch.ts';
import { stringField } from './schema.ts';

const QUALITY_FIELDS = [undefined, 'good', 'uncertain', 'bad'].map((q) => (q === undefined ? undefined : Buffer.from(`,quality="${q}"`, 'latin1')));
const RECEIVED_AT = Buffer.from(',received_at=', 'latin1');
const I = 0x69;
const SPACE = 0x20;
const NL = 0x0a;
const ZERO = 0x30;
const UNIT_CACHE_MAX = 1024;
/** Body buffers kept for reuse (concurrency + 1 is enough), and the largest kept. */
const POOL_MAX = 4;
const POOLED_MAX_BYTES = 16 << 20;

export class ReadingLineWriter {
  buf: Buffer;
  pos = 0;
  private readonly unitFields = new Map<string, Buffer>();
  private readonly pool: Buffer[] = [];
  // The points of a record mostly share both times: the digits of the last ones are kept.
  private readonly receivedAtDigits = new LastIntDigits();
  private readonly tsDigits = new LastIntDigits();

  constructor() {
    this.buf = Buffer.allocUnsafe(0);
  }

  /**
   * Starts a new body. Buffers come from a small pool: a body may still be on a socket while the
   * next one is built (batches in flight), so one is reused only after `release()`. Allocating
   * ~1 MB per batch instead made V8 run a full GC every few batches (external memory).
   */
  reset(expectedBytes: number): void {
    let buf = this.pool.pop();
    while (buf !== undefined && buf.length < expectedBytes) buf = this.pool.pop();
    this.buf = buf ?? Buffer.allocUnsafe(Math.max(expectedBytes, 1 << 20));
    this.pos = 0;
  }

  /** Gives the buffer of a body (`buf` when it was built) back once its request finished. */
  release(buf: Buffer): void {
    if (this.pool.length < POOL_MAX && buf.length <= POOLED_MAX_BYTES) this.pool.push(buf);
  }

  body(): Buffer {
    return this.buf.subarray(0, this.pos);
  }

  private ensure(extra: number): void {
    if (this.pos + extra <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + extra));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  private unitField(u: string): Buffer {
    let f = this.unitFields.get(u);
    if (f === undefined) {
      if (this.unitFields.size >= UNIT_CACHE_MAX) this.unitFields.clear();
      f = Buffer.from(`,unit=${stringField(u)}`, 'utf8');
      this.unitFields.set(u, f);
    }
    return f;
  }

  /** Appends point i of the batch as one line ending in '\n'; `head` = series key + ' value='. */
  reading(batch: ReadingBatch, i: number, head: Uint8Array): void {
    const unit = batch.unit[i];
    const unitField = unit === undefined ? undefined : this.unitField(unit);
    this.ensure(head.length + (unitField ? unitField.length : 0) + 128);
    // Locals throughout; the series part (~50 bytes) with TypedArray#set (16 ns here vs 60 ns for
    // a byte loop), short pieces with byte loops.
    const b = this.buf;
    let p = this.pos;
    b.set(head, p);
    p += head.length;
    const source = batch.valueSource[i];
    if (source !== 0) {
      const src = batch.sources[source - 1];
      const off = batch.valueOff[i];
      const end = off + batch.valueLen[i];
      for (let k = off; k < end; k++) b[p++] = src[k];
    } else {
      const s = String(batch.value[i]);
      for (let k = 0; k < s.length; k++) b[p++] = s.charCodeAt(k);
    }
    if (unitField !== undefined) {
      b.set(unitField, p);
      p += unitField.length;
    }
    const q = QUALITY_FIELDS[batch.quality[i]];
    if (q !== undefined) p = copy(b, p, q);
    p = copy(b, p, RECEIVED_AT);
    p = this.receivedAtDigits.write(b, p, batch.receivedAt[i]);
    b[p++] = I;
    b[p++] = SPACE;
    p = this.tsDigits.write(b, p, batch.ts[i]);
    b[p++] = NL;
    this.pos = p;
  }
}

/** Decimal digits of the last integer written, reused while the same value repeats. */
class LastIntDigits {
  private value = -1;
  private len = 0;
  private readonly digits = new Uint8Array(24);
  private readonly scratch = new Uint8Array(24);

  write(b: Uint8Array, p: number, v: number): number {
    if (v !== this.value) {
      this.len = writeInt(this.digits, 0, v, this.scratch);
      this.value = v;
    }
    for (let k = 0; k < this.len; k++) b[p++] = this.digits[k];
    return p;
  }
}

function copy(b: Uint8Array, p: number, bytes: Uint8Array): number {
  for (let k = 0; k < bytes.length; k++) b[p++] = bytes[k];
  return p;
}

/**
 * A non-negative safe integer in decimal. Split at 10^8 so that the digit loops run on small
 * integers (a double division per digit of a 13-digit time cost more than the rest of the line).
 */
function writeInt(b: Uint8Array, p: number, v: number, d: Uint8Array): number {
  let n = 0;
  let hi = 0;
  let lo = v;
  if (v >= 1e8) {
    hi = Math.floor(v / 1e8);
    lo = v - hi * 1e8;
  }
  lo |= 0;
  do {
    const q = (lo / 10) | 0;
    d[n++] = ZERO + lo - q * 10;
    lo = q;
  } while (lo > 0);
  if (hi > 0) {
    while (n < 8) d[n++] = ZERO;
    let h = hi;
    while (h >= 1e8) {
      const q = Math.floor(h / 10);
      d[n++] = ZERO + h - q * 10;
      h = q;
    }
    h |= 0;
    do {
      const q = (h / 10) | 0;
      d[n++] = ZERO + h - q * 10;
      h = q;
    } while (h > 0);
  }
  while (n > 0) b[p++] = d[--n];
  return p;
}
