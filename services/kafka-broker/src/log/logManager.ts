/**
 * Topics and their partition logs under `<dataDir>/topics/<topic>/<partition>/`, with
 * `<dataDir>/topics/<topic>/topic.json` holding the partition count and topic configs. Runs the
 * fsync-interval and retention timers and tells listeners when a partition grows (Fetch long-poll).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../../../common/logger.ts';
import { PartitionLog } from './partitionLog.ts';

export interface TopicConfig {
  retentionMs?: number;
  retentionBytes?: number;
  segmentBytes?: number;
}

export interface Topic {
  name: string;
  partitions: PartitionLog[];
  config: TopicConfig;
}

export interface LogManagerOptions {
  dataDir: string;
  segmentBytes: number;
  retentionMs: number;
  retentionBytes: number;
  retentionCheckIntervalMs: number;
  fsync: 'always' | 'interval' | 'never';
  fsyncIntervalMs: number;
  logger: Logger;
  onRetention?: (topic: string, partition: number, deletedSegments: number) => void;
}

const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;
export function validTopicName(name: string): boolean {
  return TOPIC_NAME.test(name) && name !== '.' && name !== '..';
}

export class LogManager {
  readonly topics = new Map<string, Topic>();
  private readonly root: string;
  private fsyncTimer?: NodeJS.Timeout;
  private retentionTimer?: NodeJS.Timeout;
  private readonly listeners = new Set<(topic: string, partition: number) => void>();

  constructor(private readonly opts: LogManagerOptions) {
    this.root = join(opts.dataDir, 'topics');
  }

  /** Loads every topic on disk, recovering each partition. */
  open(): void {
    mkdirSync(this.root, { recursive: true });
    for (const name of readdirSync(this.root)) {
      const metaPath = join(this.root, name, 'topic.json');
      if (!existsSync(metaPath)) continue;
      const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as { partitions: number; config?: TopicConfig };
      this.loadTopic(name, meta.partitions, meta.config ?? {});
    }
    if (this.opts.fsync === 'interval') {
      this.fsyncTimer = setInterval(() => this.guard('fsync', () => {
        for (const t of this.topics.values()) for (const p of t.partitions) p.syncInBackground();
      }), this.opts.fsyncIntervalMs);
      this.fsyncTimer.unref();
    }
    this.retentionTimer = setInterval(() => this.guard('retention', () => this.applyRetention(Date.now())), this.opts.retentionCheckIntervalMs);
    this.retentionTimer.unref();
  }

  /** Timer work must never take the process down: log and try again next tick. */
  private guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.opts.logger.error({ err }, `${what} failed`);
    }
  }

  private loadTopic(name: string, count: number, config: TopicConfig): Topic {
    const partitions: PartitionLog[] = [];
    for (let p = 0; p < count; p++) {
      const { log, recovery } = PartitionLog.open(join(this.root, name, String(p)), { segmentBytes: config.segmentBytes ?? this.opts.segmentBytes });
      for (const r of recovery) this.opts.logger.warn({ topic: name, partition: p, truncatedBytes: r.truncatedBytes, reason: r.reason }, 'recovered partition log: truncated torn tail');
      partitions.push(log);
    }
    const topic = { name, partitions, config };
    this.topics.set(name, topic);
    return topic;
  }

  get(name: string): Topic | undefined {
    return this.topics.get(name);
  }

  partition(topic: string, partition: number): PartitionLog | undefined {
    return this.topics.get(topic)?.partitions[partition];
  }

  create(name: string, partitions: number, config: TopicConfig = {}): Topic {
    const dir = join(this.root, name);
    mkdirSync(dir, { recursive: true });
    // Write-then-rename so a crash never leaves a half-written topic.json.
    const tmp = join(dir, 'topic.json.tmp');
    writeFileSync(tmp, JSON.stringify({ partitions, config }));
    renameSync(tmp, join(dir, 'topic.json'));
    this.opts.logger.info({ topic: name, partitions }, 'topic created');
    return this.loadTopic(name, partitions, config);
  }

  delete(name: string): boolean {
    const topic = this.topics.get(name);
    if (!topic) return false;
    this.topics.delete(name);
    for (const p of topic.partitions) p.close();
    rmSync(join(this.root, name), { recursive: true, force: true });
    this.opts.logger.info({ topic: name }, 'topic deleted');
    return true;
  }

  /** Called after every append (`fsync: always` syncs here, before the produce is acknowledged). */
  appended(topic: string, partition: number, log: PartitionLog): void {
    if (this.opts.fsync === 'always') log.sync();
    for (const l of this.listeners) l(topic, partition);
  }

  onAppend(listener: (topic: string, partition: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  syncAll(): void {
    for (const t of this.topics.values()) for (const p of t.partitions) p.sync();
  }

  applyRetention(now: number): void {
    for (const t of this.topics.values()) {
      const ms = t.config.retentionMs ?? this.opts.retentionMs;
      const bytes = t.config.retentionBytes ?? this.opts.retentionBytes;
      t.partitions.forEach((p, i) => {
        const deleted = p.applyRetention(now, ms, bytes);
        if (deleted > 0) {
          this.opts.logger.info({ topic: t.name, partition: i, deleted, logStartOffset: p.logStartOffset }, 'retention deleted segments');
          this.opts.onRetention?.(t.name, i, deleted);
        }
      });
    }
  }

  close(): void {
    clearInterval(this.fsyncTimer);
    clearInterval(this.retentionTimer);
    if (this.opts.fsync !== 'never') this.syncAll();
    for (const t of this.topics.values()) for (const p of t.partitions) p.close();
    this.topics.clear();
    this.listeners.clear();
  }
}
