/**
 * Committed consumer-group offsets, kept in memory and persisted as an append-only JSON-lines file
 * (`group-offsets.log`: one `{"g","t","p","o","m"}` per committed partition). Replayed on start,
 * then compacted to the latest offset per partition; compacted again when it grows.
 * Writes go through the same fsync policy as the partition logs.
 */
import { closeSync, existsSync, fdatasync, fdatasyncSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../../../common/logger.ts';

export interface CommittedOffset {
  offset: number;
  metadata: string | null;
}

type GroupOffsets = Map<string, Map<number, CommittedOffset>>;

export class OffsetStore {
  private readonly groups = new Map<string, GroupOffsets>();
  private readonly path: string;
  private fd = -1;
  private linesSinceCompact = 0;
  private dirty = false;

  private timer?: NodeJS.Timeout;

  constructor(
    dataDir: string,
    private readonly fsync: 'always' | 'interval' | 'never',
    private readonly logger: Logger,
    private readonly fsyncIntervalMs = 1000,
  ) {
    this.path = join(dataDir, 'group-offsets.log');
  }

  open(): void {
    if (existsSync(this.path)) {
      const text = readFileSync(this.path, 'utf8');
      let bad = 0;
      for (const line of text.split('\n')) {
        if (!line) continue;
        try {
          const r = JSON.parse(line) as { g: string; t: string; p: number; o: number; m: string | null };
          this.set(r.g, r.t, r.p, { offset: r.o, metadata: r.m });
        } catch {
          bad++; // a torn last line after a crash
        }
      }
      if (bad > 0) this.logger.warn({ bad }, 'group offsets: skipped unreadable lines');
    }
    this.compact();
    if (this.fsync === 'interval') {
      this.timer = setInterval(() => this.sync(), this.fsyncIntervalMs);
      this.timer.unref();
    }
  }

  private set(group: string, topic: string, partition: number, value: CommittedOffset): void {
    let g = this.groups.get(group);
    if (!g) this.groups.set(group, (g = new Map()));
    let t = g.get(topic);
    if (!t) g.set(topic, (t = new Map()));
    t.set(partition, value);
  }

  private compact(): void {
    if (this.fd >= 0) closeSync(this.fd);
    const lines: string[] = [];
    for (const [g, topics] of this.groups) for (const [t, parts] of topics) for (const [p, v] of parts) lines.push(JSON.stringify({ g, t, p, o: v.offset, m: v.metadata }));
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, lines.length ? lines.join('\n') + '\n' : '');
    renameSync(tmp, this.path);
    this.fd = openSync(this.path, 'a');
    this.linesSinceCompact = 0;
  }

  commit(group: string, entries: { topic: string; partition: number; offset: number; metadata: string | null }[]): void {
    if (entries.length === 0) return;
    let text = '';
    for (const e of entries) {
      this.set(group, e.topic, e.partition, { offset: e.offset, metadata: e.metadata });
      text += JSON.stringify({ g: group, t: e.topic, p: e.partition, o: e.offset, m: e.metadata }) + '\n';
    }
    writeSync(this.fd, text);
    this.linesSinceCompact += entries.length;
    if (this.fsync === 'always') fdatasyncSync(this.fd);
    else this.dirty = true;
    if (this.linesSinceCompact > 100_000) this.compact();
  }

  get(group: string, topic: string, partition: number): CommittedOffset | undefined {
    return this.groups.get(group)?.get(topic)?.get(partition);
  }

  /** All committed offsets of a group, by topic. */
  all(group: string): GroupOffsets | undefined {
    return this.groups.get(group);
  }

  groupIds(): string[] {
    return [...this.groups.keys()];
  }

  deleteTopic(topic: string): void {
    let changed = false;
    for (const g of this.groups.values()) changed = g.delete(topic) || changed;
    if (changed) this.compact();
  }

  /** Flushes on the libuv thread pool (fsync=interval). */
  sync(): void {
    if (!this.dirty || this.fd < 0) return;
    this.dirty = false;
    fdatasync(this.fd, () => {});
  }

  close(): void {
    clearInterval(this.timer);
    if (this.fd < 0) return;
    if (this.fsync !== 'never') fdatasyncSync(this.fd);
    closeSync(this.fd);
    this.fd = -1;
  }
}
