import { appendFileSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Spool } from './spool.ts';
import type { OutRecord } from './pipeline.ts';

const rec = (i: number, headers = i % 2 === 0): OutRecord => ({ topic: 't', key: `k${i % 3}`, value: JSON.stringify({ i }), ...(headers ? { headers: { h: String(i) } } : {}) });
const opts = { maxBytes: 1_000_000, segmentBytes: 2_000, fsync: false };
const dir = () => mkdtempSync(join(tmpdir(), 'pw-spool-'));

function drain(s: Spool): OutRecord[] {
  const out: OutRecord[] = [];
  for (;;) {
    const { records, next } = s.read(7, 10_000);
    if (records.length === 0) return out;
    out.push(...records);
    s.commit(next);
  }
}

describe('edge > spool', () => {
  it('reads back appended records in order across segments, and deletes delivered segments', () => {
    const s = Spool.open(dir(), opts);
    const input = Array.from({ length: 500 }, (_, i) => rec(i));
    for (let i = 0; i < 500; i += 50) expect(s.append(Spool.encode(input.slice(i, i + 50)))).toBe(true);
    expect(readdirSync(s.dir).filter((f) => f.endsWith('.seg')).length).toBeGreaterThan(3);
    expect(drain(s)).toEqual(input);
    expect(s.isEmpty).toBe(true);
    expect(readdirSync(s.dir).filter((f) => f.endsWith('.seg')).length).toBe(1);
  });

  it('survives a restart: undelivered records are still there, delivered ones are not replayed', () => {
    const d = dir();
    const s = Spool.open(d, opts);
    s.append(Spool.encode(Array.from({ length: 100 }, (_, i) => rec(i))));
    const { records, next } = s.read(40, 1e9);
    s.commit(next);
    expect(records).toHaveLength(40);
    s.close();
    const again = Spool.open(d, opts);
    expect(drain(again).map((r) => JSON.parse(r.value).i)).toEqual(Array.from({ length: 60 }, (_, i) => i + 40));
  });

  it('cuts a torn final frame (crash mid-write) and keeps appending after the last whole record', () => {
    const d = dir();
    const s = Spool.open(d, { ...opts, segmentBytes: 1e9 });
    s.append(Spool.encode([rec(1), rec(2)]));
    s.close();
    const seg = readdirSync(d).find((f) => f.endsWith('.seg')) as string;
    const torn = Spool.encode([rec(3)]);
    appendFileSync(join(d, seg), torn.subarray(0, torn.length - 3));
    const again = Spool.open(d, { ...opts, segmentBytes: 1e9 });
    again.append(Spool.encode([rec(4)]));
    expect(drain(again).map((r) => JSON.parse(r.value).i)).toEqual([1, 2, 4]);
  });

  it('refuses appends beyond maxBytes and accepts again once records are delivered', () => {
    const frames = Spool.encode(Array.from({ length: 10 }, (_, i) => rec(i, false)));
    const s = Spool.open(dir(), { ...opts, maxBytes: frames.length + 10 });
    expect(s.append(frames)).toBe(true);
    expect(s.append(frames)).toBe(false);
    drain(s);
    expect(s.append(frames)).toBe(true);
    expect(s.bytes).toBe(frames.length);
  });
});

describe('edge > spool damage', () => {
  it('a damaged frame mid-segment throws on read; skipSegment moves on to the next segment', async () => {
    const { openSync, writeSync, closeSync } = await import('node:fs');
    const d = dir();
    const s = Spool.open(d, { ...opts, segmentBytes: 150 });
    for (let i = 0; i < 20; i++) s.append(Spool.encode([rec(i, false)]));
    const segs = readdirSync(d).filter((f) => f.endsWith('.seg')).sort();
    expect(segs.length).toBeGreaterThan(2);
    // Flip bytes inside the first segment's second frame body.
    const fd = openSync(join(d, segs[0]), 'r+');
    writeSync(fd, Buffer.from('XXXX'), 0, 4, 60);
    closeSync(fd);
    expect(() => s.read(100, 1e9)).toThrow(/corrupt/);
    s.skipSegment();
    const rest = drain(s).map((r) => JSON.parse(r.value).i);
    expect(rest.length).toBeGreaterThan(0);
    expect(rest).toEqual([...rest].sort((a, b) => a - b));
    expect(rest[rest.length - 1]).toBe(19);
  });
});
