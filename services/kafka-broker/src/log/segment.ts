/**
 * One segment of a partition log: `<baseOffset>.log` holds record batches back to back exactly as
 * stored (baseOffset rewritten), `<baseOffset>.index` holds one 24-byte entry per batch
 * (baseOffset i64, lastOffsetDelta i32, position u32, maxTimestamp i64). The index is also kept in
 * memory (parallel number arrays) so a fetch finds its batch with a binary search and reads one
 * contiguous byte range with a single read.
 */
import { closeSync, fdatasync, fdatasyncSync, fstatSync, ftruncateSync, openSync, readSync, writeSync, unlinkSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { BATCH_HEADER_SIZE, checkBatchAt, readBaseOffset, readLastOffsetDelta, readMaxTimestamp } from '../protocol/recordBatch.ts';

export const INDEX_ENTRY_SIZE = 24;
const SCAN_CHUNK = 8 * 1024 * 1024;

export const segmentFileName = (baseOffset: number): string => String(baseOffset).padStart(20, '0');

export interface RecoveryReport {
  truncatedBytes: number;
  reason?: string;
}

export class Segment {
  readonly logPath: string;
  readonly indexPath: string;
  private logFd: number;
  private indexFd: number;
  size = 0;
  /** Per batch: first offset, last offset, byte position, max timestamp. */
  readonly bases: number[] = [];
  readonly lasts: number[] = [];
  readonly positions: number[] = [];
  readonly maxTimestamps: number[] = [];
  dirty = false;
  /** Idempotent-producer batches seen by the last recovery scan, oldest first (to rebuild sequence state). */
  readonly scannedProducerBatches: { producerId: number; epoch: number; firstSeq: number; lastSeq: number; baseOffset: number }[] = [];
  private readonly entry = Buffer.alloc(INDEX_ENTRY_SIZE);

  private constructor(
    readonly dir: string,
    readonly baseOffset: number,
  ) {
    const name = segmentFileName(baseOffset);
    this.logPath = join(dir, `${name}.log`);
    this.indexPath = join(dir, `${name}.index`);
    this.logFd = openSync(this.logPath, 'a+');
    this.indexFd = openSync(this.indexPath, 'a+');
  }

  static create(dir: string, baseOffset: number): Segment {
    return new Segment(dir, baseOffset);
  }

  /**
   * Opens an existing segment. A closed segment whose index matches its log is loaded from the
   * index; the active one (or any that does not match) is scanned batch by batch, checking each
   * CRC, and truncated after the last whole batch (a torn tail from a crash).
   */
  static open(dir: string, baseOffset: number, active: boolean): { segment: Segment; recovery: RecoveryReport } {
    const seg = new Segment(dir, baseOffset);
    seg.size = fstatSync(seg.logFd).size;
    if (!active && seg.loadIndex()) return { segment: seg, recovery: { truncatedBytes: 0 } };
    const recovery = seg.scan();
    return { segment: seg, recovery };
  }

  get nextOffset(): number {
    const n = this.lasts.length;
    return n === 0 ? this.baseOffset : this.lasts[n - 1] + 1;
  }
  get batchCount(): number {
    return this.bases.length;
  }
  get maxTimestamp(): number {
    let max = -1;
    for (const t of this.maxTimestamps) if (t > max) max = t;
    return max;
  }

  private loadIndex(): boolean {
    const isize = fstatSync(this.indexFd).size;
    if (isize % INDEX_ENTRY_SIZE !== 0 || isize === 0) return this.size === 0 && isize === 0;
    const buf = Buffer.allocUnsafe(isize);
    readSync(this.indexFd, buf, 0, isize, 0);
    // Positions must ascend from 0 and the last batch must end exactly at the end of the log.
    let expectPos = 0;
    const n = isize / INDEX_ENTRY_SIZE;
    for (let i = 0; i < n; i++) {
      const at = i * INDEX_ENTRY_SIZE;
      const base = buf.readInt32BE(at) * 4294967296 + buf.readUInt32BE(at + 4);
      const pos = buf.readUInt32BE(at + 12);
      if (i === 0 ? pos !== 0 : pos <= expectPos) {
        this.resetIndex();
        return false;
      }
      expectPos = pos;
      this.bases.push(base);
      this.lasts.push(base + buf.readInt32BE(at + 8));
      this.positions.push(pos);
      this.maxTimestamps.push(buf.readInt32BE(at + 16) * 4294967296 + buf.readUInt32BE(at + 20));
    }
    const lastPos = this.positions[n - 1];
    const header = Buffer.allocUnsafe(12);
    if (readSync(this.logFd, header, 0, 12, lastPos) !== 12 || lastPos + header.readInt32BE(8) + 12 !== this.size) {
      this.resetIndex();
      return false;
    }
    return true;
  }

  private resetIndex(): void {
    this.bases.length = 0;
    this.lasts.length = 0;
    this.positions.length = 0;
    this.maxTimestamps.length = 0;
  }

  private scan(): RecoveryReport {
    this.resetIndex();
    this.scannedProducerBatches.length = 0;
    let pos = 0;
    let validEnd = 0; // end of the last whole, valid batch
    let reason: string | undefined;
    let chunk = Buffer.allocUnsafe(Math.min(SCAN_CHUNK, Math.max(this.size, 1)));
    outer: while (pos < this.size) {
      const len = Math.min(chunk.length, this.size - pos);
      const got = readSync(this.logFd, chunk, 0, len, pos);
      let at = 0;
      let grew = false;
      while (at < got) {
        if (got - at < 12) break;
        const batchSize = chunk.readInt32BE(at + 8) + 12;
        if (batchSize < BATCH_HEADER_SIZE) {
          reason = 'bad batch length';
          break outer;
        }
        if (at + batchSize > got) {
          if (pos + at + batchSize > this.size) {
            reason = 'batch cut short';
            break outer;
          }
          if (batchSize > chunk.length) {
            chunk = Buffer.allocUnsafe(batchSize);
            grew = true;
          }
          break; // re-read from this batch's start
        }
        const checked = checkBatchAt(chunk, at, at + batchSize);
        if ('error' in checked) {
          reason = checked.reason;
          break outer;
        }
        const base = readBaseOffset(chunk, at);
        if (this.lasts.length > 0 && base !== this.nextOffset) {
          reason = `offset ${base} does not follow ${this.nextOffset - 1}`;
          break outer;
        }
        this.bases.push(base);
        this.lasts.push(base + readLastOffsetDelta(chunk, at));
        this.positions.push(pos + at);
        this.maxTimestamps.push(readMaxTimestamp(chunk, at));
        const producerId = readBaseOffset(chunk, at + 43);
        if (producerId >= 0) {
          const firstSeq = chunk.readInt32BE(at + 53);
          this.scannedProducerBatches.push({ producerId, epoch: chunk.readInt16BE(at + 51), firstSeq, lastSeq: firstSeq + readLastOffsetDelta(chunk, at), baseOffset: base });
        }
        at += batchSize;
        validEnd = pos + at;
      }
      if (at === 0 && !grew) {
        reason = 'batch cut short';
        break;
      }
      pos += at;
    }
    const truncatedBytes = this.size - validEnd;
    if (truncatedBytes > 0) {
      ftruncateSync(this.logFd, validEnd);
      this.size = validEnd;
      reason ??= 'partial batch at end';
    }
    // Rewrite the index from what the log really holds.
    ftruncateSync(this.indexFd, 0);
    for (let i = 0; i < this.bases.length; i++) this.writeIndexEntry(i);
    return { truncatedBytes, reason: truncatedBytes > 0 ? reason : undefined };
  }

  private writeIndexEntry(i: number): void {
    const e = this.entry;
    const base = this.bases[i];
    const hi = Math.floor(base / 4294967296);
    e.writeInt32BE(hi, 0);
    e.writeUInt32BE(base - hi * 4294967296, 4);
    e.writeInt32BE(this.lasts[i] - base, 8);
    e.writeUInt32BE(this.positions[i], 12);
    const ts = this.maxTimestamps[i];
    const thi = Math.floor(ts / 4294967296);
    e.writeInt32BE(thi, 16);
    e.writeUInt32BE(ts - thi * 4294967296, 20);
    writeSync(this.indexFd, e, 0, INDEX_ENTRY_SIZE);
  }

  /** Appends a batch whose baseOffset bytes are already set. */
  append(batch: Buffer, baseOffset: number, lastOffset: number, maxTimestamp: number): void {
    let written = 0;
    try {
      while (written < batch.length) written += writeSync(this.logFd, batch, written, batch.length - written);
    } catch (err) {
      // Undo a partial write so the file keeps ending on a whole batch (positions stay right).
      if (written > 0) ftruncateSync(this.logFd, this.size);
      throw err;
    }
    this.bases.push(baseOffset);
    this.lasts.push(lastOffset);
    this.positions.push(this.size);
    this.maxTimestamps.push(maxTimestamp);
    this.size += batch.length;
    this.writeIndexEntry(this.bases.length - 1);
    this.dirty = true;
  }

  /** Index of the batch containing `offset` (or the first batch after it), -1 if none. */
  findBatch(offset: number): number {
    const lasts = this.lasts;
    let lo = 0;
    let hi = lasts.length - 1;
    if (hi < 0 || lasts[hi] < offset) return -1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (lasts[mid] < offset) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /**
   * Reads whole batches starting at batch `from`, up to `maxBytes`; the first batch is always
   * included whole, even if it is larger (KIP-74), when `minOne` is set.
   */
  read(from: number, maxBytes: number, minOne: boolean): Buffer | null {
    const start = this.positions[from];
    let end = start;
    const n = this.positions.length;
    for (let i = from; i < n; i++) {
      const next = i + 1 < n ? this.positions[i + 1] : this.size;
      if (next - start > maxBytes && !(minOne && i === from)) break;
      end = next;
    }
    if (end === start) return null;
    const out = Buffer.allocUnsafe(end - start);
    let got = 0;
    while (got < out.length) {
      const r = readSync(this.logFd, out, got, out.length - got, start + got);
      if (r === 0) break;
      got += r;
    }
    return got === out.length ? out : out.subarray(0, got);
  }

  /** Reads one batch (ListOffsets by timestamp). */
  readBatch(i: number): Buffer {
    return this.read(i, 0, true)!;
  }

  /** Flushes to disk before returning (fsync=always, segment roll, close). */
  sync(): void {
    if (!this.dirty) return;
    this.dirty = false;
    fdatasyncSync(this.logFd);
    fdatasyncSync(this.indexFd);
  }

  /**
   * Flushes on the libuv thread pool (fsync=interval), so the event loop keeps serving while the
   * disk catches up. A segment closed meanwhile makes the call fail with EBADF, which is harmless:
   * close() has flushed it synchronously.
   */
  syncInBackground(): void {
    if (!this.dirty || this.closed) return;
    this.dirty = false;
    fdatasync(this.logFd, () => {});
    fdatasync(this.indexFd, () => {});
  }

  private closed = false;

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.logFd);
    closeSync(this.indexFd);
  }

  delete(): void {
    this.close();
    for (const p of [this.logPath, this.indexPath]) if (existsSync(p)) unlinkSync(p);
  }
}
