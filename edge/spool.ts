/**
 * Bounded on-disk spool for Kafka records while Kafka is unreachable: append-only segment files
 * (`<12-digit seq>.seg`) plus a `cursor.json` naming the first record not yet delivered.
 *
 * Frame: u32 BE body length, u32 BE CRC-32 of the body, body = JSON `[topic, key, value, headers?]`.
 * A torn frame at the tail (crash mid-write) fails its length or CRC check and is cut off at open.
 *
 * I/O is synchronous on purpose: appends are group commits (one write + fsync for every record that
 * arrived during one event-loop turn), and keeping them synchronous makes "spool empty → go direct"
 * an atomic decision for the forwarder. The spool only carries load while Kafka is down.
 */
import { closeSync, existsSync, fstatSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, ftruncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { OutRecord } from './pipeline.ts';

export interface SpoolOptions {
  maxBytes: number;
  segmentBytes: number;
  fsync: boolean;
}

export interface SpoolCursor {
  segment: number;
  offset: number;
}

const HEADER = 8;
/** A frame larger than this is corruption, not data (records are capped far below it). */
const MAX_FRAME = 64 * 1024 * 1024;

function segName(n: number): string {
  return `${String(n).padStart(12, '0')}.seg`;
}

export class Spool {
  private segments: number[] = [];
  private sizes = new Map<number, number>();
  private cursor: SpoolCursor;
  private writeFd: number | null = null;
  private writeSeg = 0;
  private closed = false;

  private constructor(
    readonly dir: string,
    private readonly opts: SpoolOptions,
  ) {
    this.cursor = { segment: 0, offset: 0 };
  }

  static open(dir: string, opts: SpoolOptions): Spool {
    mkdirSync(dir, { recursive: true });
    const s = new Spool(dir, opts);
    s.load();
    return s;
  }

  private load(): void {
    this.segments = readdirSync(this.dir)
      .filter((f) => /^\d{12}\.seg$/.test(f))
      .map((f) => Number(f.slice(0, 12)))
      .sort((a, b) => a - b);
    const cursorPath = join(this.dir, 'cursor.json');
    if (existsSync(cursorPath)) {
      try {
        const c = JSON.parse(readFileSync(cursorPath, 'utf8')) as SpoolCursor;
        if (Number.isInteger(c.segment) && Number.isInteger(c.offset)) this.cursor = c;
      } catch {
        // A damaged cursor replays from the oldest segment: duplicates, never loss.
      }
    }
    // Segments wholly before the cursor were delivered; a crash may have left them behind.
    for (const seg of this.segments.filter((n) => n < this.cursor.segment)) rmSync(join(this.dir, segName(seg)), { force: true });
    this.segments = this.segments.filter((n) => n >= this.cursor.segment);
    if (this.segments.length === 0) {
      this.segments = [Math.max(this.cursor.segment, 1)];
      this.cursor = { segment: this.segments[0], offset: 0 };
      writeFileSync(join(this.dir, segName(this.segments[0])), '');
    } else if (this.cursor.segment < this.segments[0]) {
      this.cursor = { segment: this.segments[0], offset: 0 };
    }
    for (const seg of this.segments) this.sizes.set(seg, statSync(join(this.dir, segName(seg))).size);
    this.writeSeg = this.segments[this.segments.length - 1];
    this.writeFd = openSync(join(this.dir, segName(this.writeSeg)), 'r+');
    this.repairTail();
  }

  /** Cuts a torn final frame (crash mid-append) so appends continue after the last whole record. */
  private repairTail(): void {
    const fd = this.writeFd as number;
    const size = fstatSync(fd).size;
    let pos = this.writeSeg === this.cursor.segment ? this.cursor.offset : 0;
    const head = Buffer.alloc(HEADER);
    while (pos + HEADER <= size) {
      readSync(fd, head, 0, HEADER, pos);
      const len = head.readUInt32BE(0);
      if (len > MAX_FRAME || pos + HEADER + len > size) break;
      const body = Buffer.alloc(len);
      readSync(fd, body, 0, len, pos + HEADER);
      if (crc32(body) !== head.readUInt32BE(4)) break;
      pos += HEADER + len;
    }
    if (pos < size) ftruncateSync(fd, pos);
    this.sizes.set(this.writeSeg, pos);
  }

  /** Bytes not yet delivered. */
  get bytes(): number {
    let total = 0;
    for (const seg of this.segments) total += this.sizes.get(seg) ?? 0;
    return total - this.cursor.offset;
  }

  get isEmpty(): boolean {
    return this.bytes === 0;
  }

  /** Would `n` more bytes exceed maxBytes? */
  hasRoomFor(n: number): boolean {
    return this.bytes + n <= this.opts.maxBytes;
  }

  static encode(records: OutRecord[]): Buffer {
    const parts: Buffer[] = [];
    for (const r of records) {
      const body = Buffer.from(JSON.stringify(r.headers ? [r.topic, r.key, r.value, r.headers] : [r.topic, r.key, r.value]));
      const head = Buffer.alloc(HEADER);
      head.writeUInt32BE(body.length, 0);
      head.writeUInt32BE(crc32(body), 4);
      parts.push(head, body);
    }
    return Buffer.concat(parts);
  }

  /** Appends the encoded frames (from `encode`) and syncs them. Returns false (nothing written) when full. */
  append(frames: Buffer): boolean {
    if (this.closed) throw new Error('spool closed');
    if (frames.length === 0) return true;
    if (!this.hasRoomFor(frames.length)) return false;
    if ((this.sizes.get(this.writeSeg) ?? 0) >= this.opts.segmentBytes) this.rotate();
    const fd = this.writeFd as number;
    let off = 0;
    const base = this.sizes.get(this.writeSeg) ?? 0;
    while (off < frames.length) off += writeSync(fd, frames, off, frames.length - off, base + off);
    if (this.opts.fsync) fsyncSync(fd);
    this.sizes.set(this.writeSeg, base + frames.length);
    return true;
  }

  private rotate(): void {
    closeSync(this.writeFd as number);
    this.writeSeg += 1;
    const path = join(this.dir, segName(this.writeSeg));
    writeFileSync(path, '');
    this.writeFd = openSync(path, 'r+');
    this.segments.push(this.writeSeg);
    this.sizes.set(this.writeSeg, 0);
  }

  /**
   * Reads up to `maxRecords`/`maxBytes` records from the cursor without moving it; `next` is the
   * cursor to `commit` once they are delivered.
   */
  read(maxRecords: number, maxBytes: number): { records: OutRecord[]; next: SpoolCursor } {
    const records: OutRecord[] = [];
    let { segment, offset } = this.cursor;
    let bytes = 0;
    while (records.length < maxRecords && bytes < maxBytes) {
      const size = this.sizes.get(segment) ?? 0;
      if (offset >= size) {
        const idx = this.segments.indexOf(segment);
        if (idx < 0 || idx === this.segments.length - 1) break;
        segment = this.segments[idx + 1];
        offset = 0;
        continue;
      }
      const chunkLen = Math.min(size - offset, Math.max(maxBytes - bytes, HEADER + 1024));
      const buf = this.readAt(segment, offset, chunkLen);
      let pos = 0;
      while (pos + HEADER <= buf.length && records.length < maxRecords) {
        const len = buf.readUInt32BE(pos);
        if (pos + HEADER + len > buf.length) break;
        const body = buf.subarray(pos + HEADER, pos + HEADER + len);
        if (crc32(body) !== buf.readUInt32BE(pos + 4)) throw new Error(`spool ${segName(segment)} corrupt at ${offset + pos}`);
        const [topic, key, value, headers] = JSON.parse(body.toString('utf8')) as [string, string, string, Record<string, string> | undefined];
        records.push(headers ? { topic, key, value, headers } : { topic, key, value });
        pos += HEADER + len;
        bytes += HEADER + len;
      }
      if (pos === 0) {
        // One frame bigger than the chunk: read exactly that frame.
        const len = this.readAt(segment, offset, HEADER).readUInt32BE(0);
        const whole = this.readAt(segment, offset, HEADER + len);
        const body = whole.subarray(HEADER);
        if (crc32(body) !== whole.readUInt32BE(4)) throw new Error(`spool ${segName(segment)} corrupt at ${offset}`);
        const [topic, key, value, headers] = JSON.parse(body.toString('utf8')) as [string, string, string, Record<string, string> | undefined];
        records.push(headers ? { topic, key, value, headers } : { topic, key, value });
        pos = HEADER + len;
        bytes += pos;
      }
      offset += pos;
    }
    return { records, next: { segment, offset } };
  }

  private readAt(segment: number, offset: number, len: number): Buffer {
    const fd = segment === this.writeSeg ? (this.writeFd as number) : openSync(join(this.dir, segName(segment)), 'r');
    try {
      const buf = Buffer.alloc(len);
      let got = 0;
      while (got < len) {
        const n = readSync(fd, buf, got, len - got, offset + got);
        if (n === 0) break;
        got += n;
      }
      return buf.subarray(0, got);
    } finally {
      if (fd !== this.writeFd) closeSync(fd);
    }
  }

  /** Records before `c` are delivered: persist the cursor and delete finished segments. */
  commit(c: SpoolCursor): void {
    this.cursor = { ...c };
    // Fully read and not the active segment: move past it so the file can go.
    while (this.cursor.segment !== this.writeSeg && this.cursor.offset >= (this.sizes.get(this.cursor.segment) ?? 0)) {
      const idx = this.segments.indexOf(this.cursor.segment);
      this.cursor = { segment: this.segments[idx + 1], offset: 0 };
    }
    const tmp = join(this.dir, 'cursor.json.tmp');
    writeFileSync(tmp, JSON.stringify(this.cursor));
    renameSync(tmp, join(this.dir, 'cursor.json'));
    for (const seg of this.segments.filter((n) => n < this.cursor.segment)) {
      rmSync(join(this.dir, segName(seg)), { force: true });
      this.sizes.delete(seg);
    }
    this.segments = this.segments.filter((n) => n >= this.cursor.segment);
    // All delivered: start the active segment over instead of growing it forever.
    if (this.cursor.segment === this.writeSeg && this.cursor.offset > 0 && this.cursor.offset === this.sizes.get(this.writeSeg)) {
      this.rotate();
      this.cursor = { segment: this.writeSeg, offset: 0 };
      writeFileSync(tmp, JSON.stringify(this.cursor));
      renameSync(tmp, join(this.dir, 'cursor.json'));
      for (const seg of this.segments.filter((n) => n < this.writeSeg)) {
        rmSync(join(this.dir, segName(seg)), { force: true });
        this.sizes.delete(seg);
      }
      this.segments = [this.writeSeg];
    }
  }

  /** Gives up on the rest of the segment under the cursor (damaged): the cursor moves to the next one. */
  skipSegment(): void {
    if (this.cursor.segment === this.writeSeg) this.rotate();
    const idx = this.segments.indexOf(this.cursor.segment);
    this.commit({ segment: this.segments[idx + 1], offset: 0 });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.writeFd !== null) closeSync(this.writeFd);
    this.writeFd = null;
  }
}
