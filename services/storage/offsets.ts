/**
 * Which Kafka offsets may be committed: a message's offset is committable once every point it
 * carried is stored (or refused and dead-lettered) AND every earlier message of its partition is
 * too. Concurrent batches finish out of order; the watermark only moves over a finished prefix, so
 * a crash replays from the first unfinished message and never skips one.
 */

export interface MessageToken {
  readonly topic: string;
  readonly partition: number;
  /** The offset: a number when it is exact as one (15 digits or fewer), else a bigint. */
  readonly offset: number | bigint;
  /** Points (or the dead letter) still outstanding. */
  remaining: number;
}

/** A tracked message: the token plus its bookkeeping (the token is the entry; no map by offset). */
interface Entry extends MessageToken {
  readonly watermark: PartitionWatermark;
  finished: boolean;
}

/** Offsets are compared as numbers when exact, bigint otherwise (JS compares the two exactly). */
function offsetValue(offset: string | bigint): number | bigint {
  if (typeof offset === 'bigint') return offset;
  return offset.length <= 15 ? Number(offset) : BigInt(offset);
}

class PartitionWatermark {
  constructor(
    readonly topic: string,
    readonly partition: number,
  ) {}

  private readonly entries: Entry[] = [];
  private head = 0;
  /** Last finished offset of the committable prefix, undefined until something finished. */
  done: number | bigint | undefined;
  /** Highest offset tracked so far. */
  last: number | bigint = -1;
  /** Replaced (rewind) or dropped (revoked): its tokens decide nothing any more. */
  retired = false;

  add(topic: string, partition: number, offset: number | bigint, points: number): Entry {
    this.last = offset;
    const e: Entry = { topic, partition, offset, remaining: points, watermark: this, finished: false };
    this.entries.push(e);
    return e;
  }

  finish(e: Entry): boolean {
    // A token from before a rewind or a revocation belongs to a watermark that no longer counts.
    if (this.retired || e.finished) return false;
    e.finished = true;
    let advanced = false;
    while (this.head < this.entries.length && this.entries[this.head].finished) {
      this.done = this.entries[this.head++].offset;
      advanced = true;
    }
    // Compact the consumed prefix now and then.
    if (this.head > 4096 && this.head * 2 > this.entries.length) {
      this.entries.splice(0, this.head);
      this.head = 0;
    }
    return advanced;
  }

  /** The next offset to read, as Kafka commits it. */
  get next(): string | undefined {
    const d = this.done;
    if (d === undefined) return undefined;
    return typeof d === 'bigint' ? (d + 1n).toString() : String(d + 1);
  }

  get pending(): number {
    return this.entries.length - this.head;
  }
}

export interface CommittableOffset {
  topic: string;
  partition: number;
  /** The next offset to read, as Kafka commits it. */
  offset: string;
}

export class OffsetTracker {
  private readonly partitions = new Map<string, PartitionWatermark>();
  /** The same watermarks by topic, then partition number (the hot path builds no key string). */
  private readonly byTopic = new Map<string, (PartitionWatermark | undefined)[]>();
  private readonly dirty = new Set<PartitionWatermark>();

  private key(topic: string, partition: number): string {
    return `${topic}\u0000${partition}`;
  }

  private get(topic: string, partition: number): PartitionWatermark | undefined {
    return this.byTopic.get(topic)?.[partition];
  }

  private set(topic: string, partition: number, p: PartitionWatermark | undefined): void {
    let list = this.byTopic.get(topic);
    if (!list) this.byTopic.set(topic, (list = []));
    list[partition] = p;
    if (p) this.partitions.set(this.key(topic, partition), p);
    else this.partitions.delete(this.key(topic, partition));
  }

  track(topic: string, partition: number, offset: string | bigint, points: number): MessageToken {
    let p = this.get(topic, partition);
    const at = offsetValue(offset);
    // A rewind (the consumer resumed from the committed offset after a rebalance or seek): everything
    // after the commit is delivered again, so the old in-flight entries no longer decide anything.
    if (!p || at <= p.last) {
      if (p) {
        p.retired = true;
        this.dirty.delete(p);
      }
      this.set(topic, partition, (p = new PartitionWatermark(topic, partition)));
    }
    const token = p.add(topic, partition, at, points);
    if (points === 0) this.finish(token);
    return token;
  }

  /** One point of the message is done; returns true when the partition's watermark moved. */
  done(token: MessageToken, points = 1): boolean {
    token.remaining -= points;
    if (token.remaining > 0) return false;
    return this.finish(token);
  }

  private finish(token: MessageToken): boolean {
    const e = token as Entry;
    const advanced = e.watermark.finish(e);
    if (advanced) this.dirty.add(e.watermark);
    return advanced;
  }

  /** Offsets that moved since the last call. */
  takeCommittable(): CommittableOffset[] {
    const out: CommittableOffset[] = [];
    for (const p of this.dirty) {
      const next = p.next;
      if (next === undefined || p.retired) continue;
      out.push({ topic: p.topic, partition: p.partition, offset: next });
    }
    this.dirty.clear();
    return out;
  }

  /** Puts offsets back after a failed commit so the next round retries them. */
  restore(offsets: CommittableOffset[]): void {
    for (const o of offsets) {
      const p = this.get(o.topic, o.partition);
      if (p) this.dirty.add(p);
    }
  }

  /** Forgets a partition (revoked): its unfinished messages will be replayed by the new owner. */
  drop(topic: string, partition: number): void {
    const p = this.get(topic, partition);
    if (!p) return;
    p.retired = true;
    this.dirty.delete(p);
    this.set(topic, partition, undefined);
  }

  /** Keeps only the partitions in `assigned` (after a rebalance); returns what was dropped. */
  retain(assigned: { topic: string; partition: number }[]): { topic: string; partition: number }[] {
    const keep = new Set(assigned.map((a) => this.key(a.topic, a.partition)));
    const dropped: { topic: string; partition: number }[] = [];
    for (const k of [...this.partitions.keys()]) {
      if (keep.has(k)) continue;
      const [topic, partition] = k.split('\u0000');
      this.drop(topic, Number(partition));
      dropped.push({ topic, partition: Number(partition) });
    }
    return dropped;
  }

  get pendingMessages(): number {
    let n = 0;
    for (const p of this.partitions.values()) n += p.pending;
    return n;
  }
}
