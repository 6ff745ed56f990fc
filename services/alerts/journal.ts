/**
 * The alert service's durable state: `snapshot.json` (whole state at sequence N, replaced atomically)
 * plus `journal.jsonl` (one operation per line after N, appended synchronously). Loading replays the
 * journal over the snapshot; a torn last line (crash mid-write) is ignored, so is any op the
 * snapshot already contains (a crash between writing the snapshot and truncating the journal).
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync, existsSync, fstatSync } from 'node:fs';
import { join } from 'node:path';
import { PlatformError } from '../../common/errors.ts';
import { ALERTS_ERRORS } from './errors.ts';

export interface JournalOp {
  t: string;
  [key: string]: unknown;
}

export interface LoadedJournal {
  /** Whatever was passed to the last `compact`, or null. */
  state: unknown;
  ops: { seq: number; op: JournalOp }[];
  /** Lines that could not be parsed (a torn tail after a crash). */
  skippedLines: number;
}

export interface JournalOptions {
  fsync?: boolean;
}

export class Journal {
  readonly dir: string;
  private fd: number | null = null;
  private seq = 0;
  private bytes = 0;
  private opsSinceSnapshot = 0;
  private readonly fsync: boolean;

  constructor(dir: string, opts: JournalOptions = {}) {
    this.dir = dir;
    this.fsync = opts.fsync ?? false;
    mkdirSync(dir, { recursive: true });
  }

  private get journalPath(): string {
    return join(this.dir, 'journal.jsonl');
  }
  private get snapshotPath(): string {
    return join(this.dir, 'snapshot.json');
  }

  load(): LoadedJournal {
    let state: unknown = null;
    let snapSeq = 0;
    if (existsSync(this.snapshotPath)) {
      let parsed: { seq: number; state: unknown };
      try {
        parsed = JSON.parse(readFileSync(this.snapshotPath, 'utf8')) as { seq: number; state: unknown };
      } catch (err) {
        // A snapshot is only ever replaced by rename, so a bad one is damage, not a crash: refuse to
        // start rather than silently forget every alert and queued notification.
        throw new PlatformError(ALERTS_ERRORS.stateCorrupt, `alert state snapshot ${this.snapshotPath} is unreadable: ${(err as Error).message}`, {
          retriable: false,
          cause: err,
        });
      }
      state = parsed.state;
      snapSeq = parsed.seq;
    }
    const ops: LoadedJournal['ops'] = [];
    let skippedLines = 0;
    let maxSeq = snapSeq;
    if (existsSync(this.journalPath)) {
      const text = readFileSync(this.journalPath, 'utf8');
      for (const line of text.split('\n')) {
        if (!line) continue;
        try {
          const entry = JSON.parse(line) as { s: number; o: JournalOp };
          if (typeof entry.s !== 'number' || !entry.o || typeof entry.o.t !== 'string') throw new Error('not a journal entry');
          if (entry.s <= snapSeq) continue;
          ops.push({ seq: entry.s, op: entry.o });
          maxSeq = Math.max(maxSeq, entry.s);
        } catch {
          skippedLines++;
        }
      }
    }
    this.seq = maxSeq;
    this.fd = openSync(this.journalPath, 'a');
    this.bytes = fstatSync(this.fd).size;
    this.opsSinceSnapshot = ops.length;
    return { state, ops, skippedLines };
  }

  /** Appends one op durably (to the OS; to disk too with `fsync`); returns its sequence number. */
  append(op: JournalOp): number {
    if (this.fd === null) throw new PlatformError(ALERTS_ERRORS.journalClosed, 'journal is not open (load() first, or already closed)', { retriable: false });
    const seq = ++this.seq;
    const line = JSON.stringify({ s: seq, o: op }) + '\n';
    const buf = Buffer.from(line);
    writeSync(this.fd, buf);
    if (this.fsync) fsyncSync(this.fd);
    this.bytes += buf.length;
    this.opsSinceSnapshot++;
    return seq;
  }

  get size(): { bytes: number; ops: number } {
    return { bytes: this.bytes, ops: this.opsSinceSnapshot };
  }

  get lastSeq(): number {
    return this.seq;
  }

  /** Writes the whole state as the new snapshot and empties the journal. */
  compact(state: unknown): void {
    if (this.fd === null) throw new PlatformError(ALERTS_ERRORS.journalClosed, 'journal is not open', { retriable: false });
    const tmp = this.snapshotPath + '.tmp';
    const fd = openSync(tmp, 'w');
    try {
      writeSync(fd, JSON.stringify({ seq: this.seq, state }));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.snapshotPath);
    closeSync(this.fd);
    this.fd = openSync(this.journalPath, 'w');
    this.bytes = 0;
    this.opsSinceSnapshot = 0;
  }

  close(): void {
    if (this.fd !== null) {
      try {
        fsyncSync(this.fd);
      } finally {
        closeSync(this.fd);
        this.fd = null;
      }
    }
  }
}
