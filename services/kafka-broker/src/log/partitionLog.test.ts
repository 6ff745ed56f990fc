/** Log > PartitionLog and Segment: append/read, segment rolling, index reload, torn-tail recovery, retention. */
import { appendFileSync, mkdtempSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PartitionLog } from './partitionLog.ts';
import { parseProducedBatches, readBaseOffset } from '../protocol/recordBatch.ts';
import { buildBatch } from '../../test/batch.ts';

function append(log: PartitionLog, values: string[], timestamp = Date.now()): number {
  const batch = buildBatch(values.map((value) => ({ value, timestamp })));
  return log.append(batch, values.length - 1, timestamp);
}

function baseOffsets(data: Buffer | null): number[] {
  if (!data) return [];
  const parsed = parseProducedBatches(data);
  if ('error' in parsed) throw new Error(parsed.reason);
  return parsed.batches.map((b) => readBaseOffset(b.buf));
}

describe('Log > PartitionLog', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'plantwatch-plog-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('assigns consecutive offsets and reads whole batches from the one containing the offset', () => {
    const { log } = PartitionLog.open(dir, { segmentBytes: 1 << 20 });
    expect(append(log, ['a', 'b', 'c'])).toBe(0);
    expect(append(log, ['d'])).toBe(3);
    expect(append(log, ['e', 'f'])).toBe(4);
    expect(log.nextOffset).toBe(6);
    expect(baseOffsets(log.read(1, 1 << 20, true).data)).toEqual([0, 3, 4]); // offset 1 lives in batch 0
    expect(baseOffsets(log.read(4, 1 << 20, true).data)).toEqual([4]);
    expect(log.read(6, 1 << 20, true).data).toBeNull(); // at the log end: nothing yet
    log.close();
  });

  it('returns the first batch whole even above maxBytes (KIP-74) but never more than maxBytes after it', () => {
    const { log } = PartitionLog.open(dir, { segmentBytes: 1 << 20 });
    append(log, ['x'.repeat(500)]);
    append(log, ['y'.repeat(500)]);
    expect(baseOffsets(log.read(0, 10, true).data)).toEqual([0]);
    expect(log.read(0, 10, false).data).toBeNull();
    expect(baseOffsets(log.read(0, 1200, true).data)).toEqual([0, 1]);
    log.close();
  });

  it('rolls segments at segmentBytes and reads across them; reopening loads closed segments from their index', () => {
    const { log } = PartitionLog.open(dir, { segmentBytes: 2048 });
    for (let i = 0; i < 20; i++) append(log, [`v${i}-${'p'.repeat(300)}`]);
    expect(log.segmentCount).toBeGreaterThan(3);
    const files = readdirSync(dir).filter((f) => f.endsWith('.log'));
    expect(files.length).toBe(log.segmentCount);
    expect(readdirSync(dir).filter((f) => f.endsWith('.index')).length).toBe(log.segmentCount);
    const all: number[] = [];
    for (let off = 0; off < 20; ) {
      const got = baseOffsets(log.read(off, 1 << 20, true).data);
      all.push(...got);
      off = got.at(-1)! + 1;
    }
    expect(all).toEqual(Array.from({ length: 20 }, (_, i) => i));
    log.close();
    const { log: again, recovery } = PartitionLog.open(dir, { segmentBytes: 2048 });
    expect(recovery).toEqual([]);
    expect(again.nextOffset).toBe(20);
    expect(baseOffsets(again.read(13, 1 << 20, true).data)[0]).toBe(13);
    again.close();
  });

  it('truncates a torn tail on open and keeps every whole batch', () => {
    const { log } = PartitionLog.open(dir, { segmentBytes: 1 << 20 });
    append(log, ['a', 'b']);
    append(log, ['c']);
    log.close();
    const file = join(dir, readdirSync(dir).find((f) => f.endsWith('.log'))!);
    const whole = statSync(file).size;
    const third = buildBatch([{ value: 'torn' }]);
    appendFileSync(file, third.subarray(0, third.length - 3)); // a write cut short
    const { log: recovered, recovery } = PartitionLog.open(dir, { segmentBytes: 1 << 20 });
    expect(recovery).toHaveLength(1);
    expect(recovery[0].truncatedBytes).toBe(third.length - 3);
    expect(statSync(file).size).toBe(whole);
    expect(recovered.nextOffset).toBe(3);
    expect(append(recovered, ['d'])).toBe(3);
    recovered.close();
  });

  it('truncates at a batch whose CRC does not match (garbage written over the tail)', () => {
    const { log } = PartitionLog.open(dir, { segmentBytes: 1 << 20 });
    append(log, ['a']);
    append(log, ['b']);
    log.close();
    const file = join(dir, readdirSync(dir).find((f) => f.endsWith('.log'))!);
    const bytes = readFileSync(file);
    bytes[bytes.length - 2] ^= 0x55; // corrupt the second batch's payload
    writeFileSync(file, bytes);
    const { log: recovered, recovery } = PartitionLog.open(dir, { segmentBytes: 1 << 20 });
    expect(recovery[0].reason).toBe('CRC-32C mismatch');
    expect(recovered.nextOffset).toBe(1);
    recovered.close();
  });

  it('rebuilds a closed segment whose index does not match its log', () => {
    const { log } = PartitionLog.open(dir, { segmentBytes: 1024 });
    for (let i = 0; i < 8; i++) append(log, ['z'.repeat(300)]);
    log.close();
    const firstIndex = join(dir, readdirSync(dir).filter((f) => f.endsWith('.index')).sort()[0]);
    truncateSync(firstIndex, 24 + 7); // a partial index entry
    const { log: again } = PartitionLog.open(dir, { segmentBytes: 1024 });
    expect(again.nextOffset).toBe(8);
    expect(baseOffsets(again.read(1, 1 << 20, true).data)[0]).toBe(1);
    again.close();
  });

  it('deletes closed segments by age and by size, never the active one, and moves the log start', () => {
    const { log } = PartitionLog.open(dir, { segmentBytes: 1024 });
    const old = Date.now() - 10 * 24 * 3600 * 1000;
    for (let i = 0; i < 6; i++) append(log, ['o'.repeat(400)], old);
    for (let i = 0; i < 6; i++) append(log, ['n'.repeat(400)]);
    const segments = log.segmentCount;
    expect(log.applyRetention(Date.now(), 7 * 24 * 3600 * 1000, -1)).toBeGreaterThan(0);
    expect(log.logStartOffset).toBeGreaterThanOrEqual(5);
    expect(log.read(0, 1 << 20, true).data).not.toBeNull(); // callers check logStartOffset first
    const afterAge = log.segmentCount;
    expect(afterAge).toBeLessThan(segments);
    log.applyRetention(Date.now(), -1, 1);
    expect(log.segmentCount).toBe(1);
    expect(log.logStartOffset).toBeLessThanOrEqual(11);
    expect(log.nextOffset).toBe(12);
    log.close();
  });

  it('finds offsets by timestamp', () => {
    const { log } = PartitionLog.open(dir, { segmentBytes: 1 << 20 });
    append(log, ['a'], 1000);
    append(log, ['b'], 2000);
    append(log, ['c'], 3000);
    expect(log.offsetForTimestamp(1500)).toEqual({ offset: 1, timestamp: 2000 });
    expect(log.offsetForTimestamp(0)).toEqual({ offset: 0, timestamp: 1000 });
    expect(log.offsetForTimestamp(5000)).toBeNull();
    log.close();
  });
});

describe('Log > PartitionLog idempotent producer recovery', () => {
  it('rebuilds producer sequence state from the active segment on open', () => {
    const dir = mkdtempSync(join(tmpdir(), 'plantwatch-plog-pid-'));
    try {
      const { log } = PartitionLog.open(dir, { segmentBytes: 1 << 20 });
      for (let seq = 0; seq < 8; seq += 2) {
        const b = buildBatch([{ value: 'a' }, { value: 'b' }], { producerId: 77, producerEpoch: 3, baseSequence: seq });
        log.append(b, 1, Date.now());
      }
      log.append(buildBatch([{ value: 'plain' }]), 0, Date.now());
      log.close();
      const { log: again } = PartitionLog.open(dir, { segmentBytes: 1 << 20 });
      const st = again.recoveredProducers().get(77)!;
      expect(st.epoch).toBe(3);
      expect(st.nextSeq).toBe(8);
      expect(st.recent.map((r) => [r.firstSeq, r.baseOffset])).toEqual([
        [0, 0],
        [2, 2],
        [4, 4],
        [6, 6],
      ]);
      expect(again.recoveredProducers().size).toBe(1);
      again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
