/**
 * One partition: an ordered list of segments in `<dir>/`. Appends go to the last (active)
 * segment; a full segment is closed and a new one started at the log end offset. Reads find the
 * segment and batch holding the requested offset.
 */
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { Segment, type RecoveryReport } from './segment.ts';
import { findTimestampInBatch, writeBaseOffset } from '../protocol/recordBatch.ts';

export interface PartitionLogOptions {
  segmentBytes: number;
}

export interface ReadResult {
  /** Whole batches starting with the one that holds the requested offset; null when none. */
  data: Buffer | null;
  highWatermark: number;
  logStartOffset: number;
}

export class PartitionLog {
  private segments: Segment[] = [];
  /** Offset of the next appended record (log end offset). */
  nextOffset = 0;
  /** Sum of the sizes of all segments. */
  sizeBytes = 0;

  private constructor(
    readonly dir: string,
    private readonly opts: PartitionLogOptions,
  ) {}

  /** Opens (recovering) or creates the log in `dir`. */
  static open(dir: string, opts: PartitionLogOptions): { log: PartitionLog; recovery: RecoveryReport[] } {
    mkdirSync(dir, { recursive: true });
    const log = new PartitionLog(dir, opts);
    const bases = readdirSync(dir)
      .filter((f) => /^\d{20}\.log$/.test(f))
      .map((f) => Number(f.slice(0, 20)))
      .sort((a, b) => a - b);
    const recovery: RecoveryReport[] = [];
    bases.forEach((base, i) => {
      const { segment, recovery: r } = Segment.open(dir, base, i === bases.length - 1);
      if (r.truncatedBytes > 0) recovery.push(r);
      log.segments.push(segment);
    });
    // Drop empty trailing segments except the first (an empty log keeps one segment).
    while (log.segments.length > 1 && log.segments[log.segments.length - 1].batchCount === 0) log.segments.pop()!.delete();
    if (log.segments.length === 0) log.segments.push(Segment.create(dir, 0));
    const active = log.segments[log.segments.length - 1];
    log.nextOffset = active.nextOffset;
    log.sizeBytes = log.segments.reduce((s, seg) => s + seg.size, 0);
    return { log, recovery };
  }

  /**
   * Sequence state of idempotent producers rebuilt from the active segment at open, so a batch
   * retried across a broker restart is still recognised (last 5 batches per producer, as Kafka).
   */
  recoveredProducers(): Map<number, { epoch: number; nextSeq: number; recent: { firstSeq: number; lastSeq: number; baseOffset: number }[] }> {
    const out = new Map<number, { epoch: number; nextSeq: number; recent: { firstSeq: number; lastSeq: number; baseOffset: number }[] }>();
    for (const b of this.active.scannedProducerBatches) {
      let st = out.get(b.producerId);
      if (!st || b.epoch > st.epoch) out.set(b.producerId, (st = { epoch: b.epoch, nextSeq: 0, recent: [] }));
      if (b.epoch < st.epoch) continue;
      st.nextSeq = b.lastSeq + 1;
      st.recent.push({ firstSeq: b.firstSeq, lastSeq: b.lastSeq, baseOffset: b.baseOffset });
      if (st.recent.length > 5) st.recent.shift();
    }
    return out;
  }

  get logStartOffset(): number {
    const first = this.segments[0];
    return first.batchCount > 0 ? first.bases[0] : first.baseOffset;
  }

  private get active(): Segment {
    return this.segments[this.segments.length - 1];
  }

  /**
   * Appends one validated batch: sets its base offset to the log end offset (in place, outside the
   * CRC) and writes it. Returns the base offset assigned.
   */
  append(batch: Buffer, lastOffsetDelta: number, maxTimestamp: number): number {
    const base = this.nextOffset;
    writeBaseOffset(batch, base);
    let seg = this.active;
    if (seg.size > 0 && seg.size + batch.length > this.opts.segmentBytes) {
      seg.sync();
      seg = Segment.create(this.dir, base);
      this.segments.push(seg);
    }
    seg.append(batch, base, base + lastOffsetDelta, maxTimestamp);
    this.nextOffset = base + lastOffsetDelta + 1;
    this.sizeBytes += batch.length;
    return base;
  }

  /**
   * Whole batches from the one containing `offset`, at most `maxBytes` unless `minOne` (then the
   * first batch comes whole, KIP-74). `offset` must be within [logStartOffset, nextOffset].
   */
  read(offset: number, maxBytes: number, minOne: boolean): ReadResult {
    const result: ReadResult = { data: null, highWatermark: this.nextOffset, logStartOffset: this.logStartOffset };
    if (offset >= this.nextOffset) return result;
    const segs = this.segments;
    // Last segment whose base offset is <= offset; later segments if this one has nothing at/after offset.
    let lo = 0;
    let hi = segs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (segs[mid].baseOffset <= offset) lo = mid;
      else hi = mid - 1;
    }
    for (let s = lo; s < segs.length; s++) {
      const i = segs[s].findBatch(offset);
      if (i >= 0) {
        result.data = segs[s].read(i, maxBytes, minOne);
        return result;
      }
    }
    return result;
  }

  /** First offset whose record timestamp is >= ts (ListOffsets by time); null if none. */
  offsetForTimestamp(ts: number): { offset: number; timestamp: number } | null {
    for (const seg of this.segments) {
      if (seg.maxTimestamp < ts) continue;
      for (let i = 0; i < seg.batchCount; i++) {
        if (seg.maxTimestamps[i] < ts) continue;
        const found = findTimestampInBatch(seg.readBatch(i), ts);
        if (found) return found;
      }
    }
    return null;
  }

  /**
   * Retention: deletes closed segments older than `retentionMs` (by newest record timestamp) and,
   * while the log is larger than `retentionBytes`, the oldest closed segments. The active segment
   * always stays. Returns the number of segments deleted.
   */
  applyRetention(now: number, retentionMs: number, retentionBytes: number): number {
    let deleted = 0;
    while (this.segments.length > 1) {
      const oldest = this.segments[0];
      const expired = retentionMs >= 0 && oldest.maxTimestamp >= 0 && oldest.maxTimestamp < now - retentionMs;
      const tooBig = retentionBytes >= 0 && this.sizeBytes - oldest.size >= retentionBytes;
      if (!expired && !tooBig) break;
      this.segments.shift();
      this.sizeBytes -= oldest.size;
      oldest.delete();
      deleted++;
    }
    return deleted;
  }

  get segmentCount(): number {
    return this.segments.length;
  }

  sync(): void {
    this.active.sync();
  }

  syncInBackground(): void {
    this.active.syncInBackground();
  }

  close(): void {
    for (const s of this.segments) s.close();
  }

  /** Closes and removes the partition's files. */
  destroy(): void {
    this.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
