/**
 * Replay a CSV over MQTT at the original pace (speed 1), accelerated (×N) or as fast as possible
 * (speed 0), in file order. Row i is sent at wall0 + (ts_i − ts_0) / speed; rows that fall due
 * together go out together. Reads the file as a stream, so historian exports of any size work.
 *
 * Formats: NAB (`timestamp,value`), wide historian exports (a time column and one column per tag)
 * and long exports (time, tag, value columns; `sensorColumn`).
 */
import { createReadStream } from 'node:fs';
import { basename } from 'node:path';
import { createInterface } from 'node:readline';
import { ConfigError } from '../common/errors.ts';
import { splitCsvLine } from './labels.ts';

export interface CsvFormat {
  delimiter: string;
  /** Name (with a header) or 0-based index of the time column. */
  timestampColumn: string | number;
  /** Value columns (names or indexes); empty = every column except time and sensor. */
  valueColumns: (string | number)[];
  /** Long format: the column naming the sensor/tag of each row. */
  sensorColumn?: string | number;
  /** auto: ISO-8601, `YYYY-MM-DD HH:MM:SS` (UTC unless it has a zone), epoch s or ms by magnitude. */
  timestampFormat: 'auto' | 'iso' | 'epoch_ms' | 'epoch_s';
  /** First line is a header. Without one, columns are addressed by index. */
  header: boolean;
}

export const NAB_FORMAT: CsvFormat = { delimiter: ',', timestampColumn: 'timestamp', valueColumns: ['value'], timestampFormat: 'auto', header: true };

export interface ReplayRow {
  /** Original timestamp (epoch ms). */
  ts: number;
  sensor: string;
  value: number;
}

export interface ReplaySink {
  publish(topic: string, payload: string): void;
  /** Backpressure: resolves when more can be sent. */
  ready(): Promise<void>;
}

export interface ReplayOptions {
  file: string;
  format?: Partial<CsvFormat>;
  site: string;
  line: string;
  machine: string;
  /** Sensor name for a single value column; default: the column name, or the file name for NAB's `value`. */
  sensor?: string;
  topicPrefix?: string;
  /** 1 = original pace, N = N× faster, 0 = as fast as possible. */
  speed: number;
  /**
   * Shift timestamps so the first row is "now" and the rest keep their spacing divided by speed (live
   * dashboards); otherwise the original timestamps are sent.
   */
  rebase?: boolean;
  /** `batch`: rows due at the same moment for the same sensor go in one JSON array. */
  messageFormat?: 'json' | 'batch';
  sink: ReplaySink;
  signal?: AbortSignal;
  /** Wall clock in ms (performance.now by default) and epoch clock, injectable for tests. */
  now?: () => number;
  epochNow?: () => number;
  onRow?: (row: ReplayRow, sentAtMs: number) => void;
}

export interface ReplaySummary {
  rows: number;
  sent: number;
  skipped: number;
  /** First rows that were skipped, with the reason. */
  skippedExamples: string[];
  firstTs: number | null;
  lastTs: number | null;
  wallMs: number;
  /** Largest (actual send − due) over all rows, ms: how late the pacing ran. */
  maxLateMs: number;
}

export function parseTimestamp(raw: string, fmt: CsvFormat['timestampFormat']): number {
  const s = raw.trim();
  if (fmt === 'epoch_ms') return Number(s);
  if (fmt === 'epoch_s') return Math.round(Number(s) * 1000);
  if (fmt === 'auto' && /^-?\d+(\.\d+)?$/.test(s)) {
    const n = Number(s);
    // Epoch seconds until the year 5138; anything larger is milliseconds.
    return Math.abs(n) < 1e11 ? Math.round(n * 1000) : Math.round(n);
  }
  // `2015-02-26 21:42:53` (NAB, most historians): UTC unless a zone is given.
  let iso = s.replace(/^(\d{4}-\d{2}-\d{2})[ T]/, '$1T');
  if (/T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(iso)) iso += 'Z';
  return Date.parse(iso);
}

function sanitize(name: string): string {
  const s = name.replace(/\.[A-Za-z0-9]+$/, '').replace(/[^A-Za-z0-9_.:-]+/g, '_').slice(0, 64);
  return s === '' ? 'value' : s;
}

/** Reads rows lazily; yields one entry per value column (wide) or per row (long). Bad rows are reported. */
export async function* readCsvRows(file: string, format: CsvFormat, sensorName: string | undefined, skipped: (why: string) => void): AsyncGenerator<ReplayRow> {
  const rl = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  let header: string[] | null = null;
  let tsIdx = -1;
  let sensorIdx = -1;
  let valueIdx: number[] = [];
  let names: string[] = [];
  const indexOf = (col: string | number, what: string): number => {
    if (typeof col === 'number') return col;
    const i = header ? header.indexOf(col) : -1;
    if (i < 0) throw new ConfigError(`replay ${file}: no ${what} column "${col}" (columns: ${header?.join(', ') ?? 'no header'})`);
    return i;
  };
  let lineNo = 0;
  let initialized = false;
  for await (const line of rl) {
    lineNo++;
    if (line.trim() === '') continue;
    const cells = splitCsvLine(line, format.delimiter);
    if (!initialized) {
      initialized = true;
      if (format.header) header = cells.map((c) => c.trim());
      tsIdx = indexOf(format.timestampColumn, 'timestamp');
      sensorIdx = format.sensorColumn === undefined ? -1 : indexOf(format.sensorColumn, 'sensor');
      const count = header?.length ?? cells.length;
      valueIdx =
        format.valueColumns.length > 0
          ? format.valueColumns.map((c) => indexOf(c, 'value'))
          : Array.from({ length: count }, (_, i) => i).filter((i) => i !== tsIdx && i !== sensorIdx);
      names = valueIdx.map((i) => {
        if (valueIdx.length === 1 && sensorName) return sensorName;
        return sanitize(header?.[i] ?? `col${i}`);
      });
      if (format.header) continue;
    }
    const ts = parseTimestamp(cells[tsIdx] ?? '', format.timestampFormat);
    if (!Number.isFinite(ts)) {
      skipped(`line ${lineNo}: timestamp "${cells[tsIdx]}" is not a time`);
      continue;
    }
    for (let j = 0; j < valueIdx.length; j++) {
      const raw = (cells[valueIdx[j]] ?? '').trim();
      const value = raw === '' ? NaN : Number(raw);
      if (!Number.isFinite(value)) {
        skipped(`line ${lineNo}: value "${raw}" is not a number`);
        continue;
      }
      const sensor = sensorIdx >= 0 ? sanitize(cells[sensorIdx] ?? '') : names[j];
      yield { ts, sensor, value };
    }
  }
}

export async function replayCsv(o: ReplayOptions): Promise<ReplaySummary> {
  const format: CsvFormat = { ...NAB_FORMAT, ...o.format };
  const now = o.now ?? (() => performance.now());
  const epochNow = o.epochNow ?? Date.now;
  const prefix = o.topicPrefix ?? 'plant';
  const speed = o.speed;
  const sensorName = o.sensor ?? (format.valueColumns.length === 1 && format.valueColumns[0] === 'value' ? sanitize(basename(o.file)) : undefined);
  const summary: ReplaySummary = { rows: 0, sent: 0, skipped: 0, skippedExamples: [], firstTs: null, lastTs: null, wallMs: 0, maxLateMs: 0 };
  const skipped = (why: string) => {
    summary.skipped++;
    if (summary.skippedExamples.length < 5) summary.skippedExamples.push(why);
  };
  // The clock starts with the first row (opening the file must not make every row look late).
  let wall0 = now();
  let epoch0 = epochNow();
  // Rows due together are collected and sent in one go (and batched per sensor in batch format).
  let pending: ReplayRow[] = [];
  const flush = async () => {
    if (pending.length === 0) return;
    const rows = pending;
    pending = [];
    const sentAt = now();
    const tsOut = (r: ReplayRow) => (o.rebase ? Math.round(epoch0 + (r.ts - summary.firstTs!) / (speed > 0 ? speed : 1)) : r.ts);
    if (o.messageFormat === 'batch') {
      const bySensor = new Map<string, string[]>();
      for (const r of rows) bySensor.set(r.sensor, [...(bySensor.get(r.sensor) ?? []), `{"ts":${tsOut(r)},"value":${r.value}}`]);
      for (const [sensor, parts] of bySensor) o.sink.publish(`${prefix}/${o.site}/${o.line}/${o.machine}/${sensor}`, `[${parts.join(',')}]`);
    } else {
      for (const r of rows) o.sink.publish(`${prefix}/${o.site}/${o.line}/${o.machine}/${r.sensor}`, `{"ts":${tsOut(r)},"value":${r.value}}`);
    }
    for (const r of rows) o.onRow?.(r, sentAt);
    summary.sent += rows.length;
    await o.sink.ready();
  };
  for await (const row of readCsvRows(o.file, format, sensorName, skipped)) {
    if (o.signal?.aborted) break;
    summary.rows++;
    if (summary.firstTs === null) {
      summary.firstTs = row.ts;
      wall0 = now();
      epoch0 = epochNow();
    }
    summary.lastTs = row.ts;
    if (speed > 0) {
      const due = wall0 + (row.ts - summary.firstTs) / speed;
      const wait = due - now();
      if (wait > 0.5) {
        // The rows collected so far are due now or earlier: send them before sleeping.
        await flush();
        const w = due - now();
        if (w > 0.5) await sleepPrecise(w, now);
      }
      summary.maxLateMs = Math.max(summary.maxLateMs, now() - due);
    }
    pending.push(row);
    if (pending.length >= 1000) await flush();
  }
  await flush();
  summary.wallMs = summary.firstTs === null ? 0 : now() - wall0;
  return summary;
}

/** setTimeout for the bulk of the wait, then yield until due: timers alone are ~1 ms late. */
async function sleepPrecise(ms: number, now: () => number): Promise<void> {
  const due = now() + ms;
  if (ms > 3) await new Promise((r) => setTimeout(r, ms - 2));
  while (now() < due) await new Promise((r) => setImmediate(r));
}
