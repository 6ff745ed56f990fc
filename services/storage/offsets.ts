/**
 * Which Kafka offsets may be committed: a message's offset is committable once every point it
 * carried is stored (or refused and dead-lettered) AND every earlier message of its partition is
 * too. Concurrent batches finish out of order; the watermark only moves over a finished prefix, so
 * a crash replays from the first unfinished message and never skips one.
 */

export interface MessageToken {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
  /** Points (or the dead letter) still outstanding. */
  remaining: number;
}

interface Entry {
  token: MessageToken;
  finished: boolean;
}

class PartitionWatermark {
  private readonly entries: Entry[] = [];
  private head = 0;
  private readonly byOffset = new Map<bigint, Entry>();
  /** Next offset to commit (last finished + 1), undefined until something finished. */
  next: bigint | undefined;
  /** Highest offset tracked so far. */
  last = -1n;

  add(token: MessageToken): void {
    this.last = token.offset;
    const e = { token, finished: false };
    this.entries.push(e);
    this.byOffset.set(token.offset, e);
  }

  finish(token: MessageToken): boolean {
    const e = this.byOffset.get(token.offset);
    if (!e || e.token !== token) return false;
    e.finished = true;
    let advanced = false;
    while (this.head < this.entries.length && this.entries[this.head].finished) {
      const done = this.entries[this.head++];
      this.byOffset.delete(done.token.offset);
      this.next = done.token.offset + 1n;
      advanced = true;
    }
    // Compact the consumed prefix now and then.
    if (this.head > 4096 && this.head * 2 > this.entries.length) {
      this.entries.splice(0, this.head);
      this.head = 0;
    }
    return advanced;
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
  private readonly dirty = new Set<string>();

  private key(topic: string, partition: number): string {
    return `${topic}\u0000${partition}`;
  }

  track(topic: string, partition: number, offset: string | bigint, points: number): MessageToken {
    const k = this.key(topic, partition);
    const at = BigInt(offset);
    let p = this.partitions.get(k);
    // A rewind (the consumer resumed from the committed offset after a rebalance or seek): everything
    // after the commit is delivered again, so the old in-flight entries no longer decide anything.
    if (!p || at <= p.last) this.partitions.set(k, (p = new PartitionWatermark()));
    const token: MessageToken = { topic, partition, offset: at, remaining: points };
    p.add(token);
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
    const k = this.key(token.topic, token.partition);
    const advanced = this.partitions.get(k)?.finish(token) ?? false;
    if (advanced) this.dirty.add(k);
    return advanced;
  }

  /** Offsets that moved since the last call. */
  takeCommittable(): CommittableOffset[] {
    const out: CommittableOffset[] = [];
    for (const k of this.dirty) {
      const p = this.partitions.get(k);
      if (p?.next === undefined) continue;
      const [topic, partition] = k.split('\u0000');
      out.push({ topic, partition: Number(partition), offset: p.next.toString() });
    }
    this.dirty.clear();
    return out;
  }

  /** Puts offsets back after a failed commit so the next round retries them. */
  restore(offsets: CommittableOffset[]): void {
    for (const o of offsets) this.dirty.add(this.key(o.topic, o.partition));
  }

  /** Forgets a partition (revoked): its unfinished messages will be replayed by the new owner. */
  drop(topic: string, partition: number): void {
    this.partitions.delete(this.key(topic, partition));
    this.dirty.delete(this.key(topic, partition));
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
