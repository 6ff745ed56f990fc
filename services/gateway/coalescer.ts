/**
 * Per-series coalescing of the live stream. Each series (a sensor's readings, a sensor's or
 * machine's scores, an alert fingerprint) emits at most once per `minIntervalMs`: the first value
 * after a quiet period goes out on the next flush (low latency), values arriving faster replace the
 * pending one (the newest by event time wins). The emitted stream of each series is strictly
 * increasing in event time: a late value (older than one already queued or sent) is never emitted,
 * so a client never sees an older value over a newer one. Late values stay in storage.
 */
export type ItemKind = 'r' | 's' | 'a';

export interface LiveItem<T = unknown> {
  kind: ItemKind;
  /** Series key within the kind (see protocol.ts). */
  key: string;
  /** `site/line/machine` of the item: routes it to rooms. */
  mk: string;
  /** Event time (alerts: updatedAt). */
  ts: number;
  data: T;
}

interface SeriesState {
  pending: LiveItem | null;
  lastEmitAt: number;
  /** Newest ts queued or emitted: anything at or below it is late. */
  lastTs: number;
  /** Newest ts actually emitted. */
  emittedTs: number;
}

export type OfferResult = 'queued' | 'replaced' | 'late';

export class Coalescer {
  private readonly series = new Map<string, SeriesState>();
  private readonly dirty = new Set<string>();

  constructor(
    private readonly minIntervalMs: (kind: ItemKind) => number,
    private readonly maxSeries = 100_000,
  ) {}

  private id(kind: ItemKind, key: string): string {
    return `${kind}|${key}`;
  }

  offer(item: LiveItem, now: number): OfferResult {
    const id = this.id(item.kind, item.key);
    let s = this.series.get(id);
    if (!s) {
      if (this.series.size >= this.maxSeries) this.evict();
      s = { pending: null, lastEmitAt: -Infinity, lastTs: -Infinity, emittedTs: -Infinity };
      this.series.set(id, s);
    }
    if (item.ts <= s.lastTs) return 'late';
    const replaced = s.pending !== null;
    s.pending = item;
    s.lastTs = item.ts;
    this.dirty.add(id);
    void now;
    return replaced ? 'replaced' : 'queued';
  }

  /** Removes and returns every pending item whose series may emit again at `now`, in offer order. */
  drain(now: number): LiveItem[] {
    const out: LiveItem[] = [];
    for (const id of this.dirty) {
      const s = this.series.get(id);
      if (!s || !s.pending) {
        this.dirty.delete(id);
        continue;
      }
      if (now - s.lastEmitAt < this.minIntervalMs(s.pending.kind)) continue;
      out.push(s.pending);
      s.emittedTs = s.pending.ts;
      s.pending = null;
      s.lastEmitAt = now;
      this.dirty.delete(id);
    }
    return out;
  }

  /** Newest event time emitted for the series, or -Infinity. */
  emittedTs(kind: ItemKind, key: string): number {
    return this.series.get(this.id(kind, key))?.emittedTs ?? -Infinity;
  }

  get pendingCount(): number {
    return this.dirty.size;
  }

  get size(): number {
    return this.series.size;
  }

  private evict(): void {
    // Oldest-inserted idle series first; a tenth at a time so eviction is rare.
    let toDrop = Math.max(1, Math.floor(this.maxSeries / 10));
    for (const [id, s] of this.series) {
      if (toDrop === 0) break;
      if (s.pending) continue;
      this.series.delete(id);
      toDrop--;
    }
  }
}
