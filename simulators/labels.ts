/**
 * Ground-truth label file: one entry per injected fault, written when the simulation reaches the
 * fault's start (or at once for faults injected on demand). JSONL (one FaultLabel object per line) or
 * CSV with a header; `affects` is `;`-separated in CSV.
 */
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { FaultLabel } from './faults.ts';

export const LABEL_CSV_COLUMNS = ['id', 'site', 'line', 'machine', 'machineKey', 'sensor', 'kind', 'start', 'end', 'startIso', 'endIso', 'affects', 'severity', 'source'] as const;

function csvCell(v: unknown): string {
  const s = Array.isArray(v) ? v.join(';') : String(v);
  return /[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export function labelToCsv(l: FaultLabel): string {
  return LABEL_CSV_COLUMNS.map((c) => csvCell(l[c])).join(',');
}

export class LabelRecorder {
  readonly labels: FaultLabel[] = [];
  private readonly seen = new Set<string>();
  private readonly file: string;
  private readonly format: 'jsonl' | 'csv';

  /** `file` empty: keep labels in memory only. An existing file is replaced (one run, one file). */
  constructor(file = '', format: 'jsonl' | 'csv' = 'jsonl') {
    this.file = file;
    this.format = format;
    if (file) {
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, format === 'csv' ? `${LABEL_CSV_COLUMNS.join(',')}\n` : '');
    }
  }

  has(id: string): boolean {
    return this.seen.has(id);
  }

  record(label: FaultLabel): boolean {
    if (this.seen.has(label.id)) return false;
    this.seen.add(label.id);
    this.labels.push(label);
    if (this.file) appendFileSync(this.file, `${this.format === 'csv' ? labelToCsv(label) : JSON.stringify(label)}\n`);
    return true;
  }
}

/** Reads a JSONL or CSV label file back (for scorers and tests). */
export function parseLabels(text: string): FaultLabel[] {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  if (lines.length === 0) return [];
  if (lines[0].startsWith('{')) return lines.map((l) => JSON.parse(l) as FaultLabel);
  const header = lines[0].split(',');
  return lines.slice(1).map((line) => {
    const cells = splitCsvLine(line);
    const o: Record<string, unknown> = {};
    header.forEach((h, i) => (o[h] = cells[i]));
    return {
      ...(o as unknown as FaultLabel),
      start: Number(o.start),
      end: Number(o.end),
      severity: Number(o.severity),
      affects: String(o.affects ?? '').split(';').filter(Boolean),
    };
  });
}

export function splitCsvLine(line: string, delimiter = ','): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === delimiter) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}
