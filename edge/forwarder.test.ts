import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../common/logger.ts';
import { createRegistry } from '../common/metrics.ts';
import { Forwarder, type ForwarderOptions } from './forwarder.ts';
import { createEdgeMetrics } from './metrics.ts';
import type { OutRecord } from './pipeline.ts';
import { Spool } from './spool.ts';
import { MemorySink } from './testing.ts';

const opts: ForwarderOptions = { lingerMs: 1, maxBatchRecords: 50, maxBatchBytes: 1e6, sendTimeoutMs: 200, maxPendingRecords: 1000, retryInitialMs: 10, retryMaxMs: 50, whenFull: 'backpressure' };
const rec = (key: string, i: number): OutRecord => ({ topic: 'plantwatch.readings', key, value: JSON.stringify({ i }) });

function setup(o: Partial<ForwarderOptions> = {}, spoolOpts = { maxBytes: 1e8, segmentBytes: 4096, fsync: false }, d = mkdtempSync(join(tmpdir(), 'pw-fwd-'))) {
  const sink = new MemorySink();
  const metrics = createEdgeMetrics(createRegistry('edge'));
  const spool = Spool.open(d, spoolOpts);
  const fwd = new Forwarder(sink, spool, { ...opts, ...o }, metrics, silentLogger());
  return { sink, fwd, spool, metrics, dir: d };
}

/** Per key, the sequence numbers must be increasing (duplicates allowed, at-least-once). */
function assertPerKeyOrder(records: OutRecord[]) {
  const last = new Map<string, number>();
  for (const r of records) {
    const i = JSON.parse(r.value).i as number;
    const prev = last.get(r.key) ?? -1;
    expect(i, `key ${r.key}`).toBeGreaterThanOrEqual(prev);
    last.set(r.key, i);
  }
}

describe('edge > forwarder', () => {
  it('resolves a submit only after the sink acknowledged it', async () => {
    const { sink, fwd } = setup();
    sink.hold();
    let done = false;
    const p = fwd.submit([rec('a', 0)]).then(() => (done = true));
    await new Promise((r) => setTimeout(r, 30));
    expect(done).toBe(false);
    sink.release();
    await p;
    expect(sink.records).toHaveLength(1);
    await fwd.close();
  });

  it('batches many submits into few sends', async () => {
    const { sink, fwd } = setup({ maxBatchRecords: 1000, lingerMs: 5 });
    await Promise.all(Array.from({ length: 500 }, (_, i) => fwd.submit([rec('k', i)])));
    expect(sink.records).toHaveLength(500);
    expect(sink.sends).toBeLessThan(10);
    await fwd.close();
  });

  it('Kafka down: submits become durable in the spool, are replayed in order when Kafka returns, then go direct again', async () => {
    const { sink, fwd, metrics, spool } = setup();
    sink.down = true;
    const sent: Promise<void>[] = [];
    for (let i = 0; i < 300; i++) sent.push(fwd.submit([rec(`k${i % 4}`, i)]));
    await Promise.all(sent); // all acknowledged although Kafka is down: they are on disk
    expect(fwd.currentMode).toBe('spool');
    expect(spool.bytes).toBeGreaterThan(0);
    expect((await metrics.spooled.get()).values[0].value).toBe(300);
    // more arrive during the outage and while replaying
    for (let i = 300; i < 400; i++) sent.push(fwd.submit([rec(`k${i % 4}`, i)]));
    sink.down = false;
    for (let i = 400; i < 500; i++) sent.push(fwd.submit([rec(`k${i % 4}`, i)]));
    await Promise.all(sent);
    await sink.waitFor(500);
    await new Promise((r) => setTimeout(r, 50));
    expect(fwd.currentMode).toBe('direct');
    expect(new Set(sink.records.map((r) => JSON.parse(r.value).i)).size).toBe(500);
    assertPerKeyOrder(sink.records);
    expect(spool.bytes).toBe(0);
    await fwd.close();
  });

  it('a slow Kafka (no ack within sendTimeoutMs) is treated as down', async () => {
    const { sink, fwd } = setup({ sendTimeoutMs: 50 });
    sink.hold();
    await fwd.submit([rec('a', 1)]);
    expect(fwd.currentMode).toBe('spool');
    sink.release();
    await sink.waitFor(1);
    await new Promise((r) => setTimeout(r, 100));
    // The slow send landed after all: its spooled copy is skipped, not sent again.
    expect(sink.records).toHaveLength(1);
    expect(fwd.currentMode).toBe('direct');
    await fwd.close();
  });

  it('spool full with backpressure: submits stay pending (no ack) until space frees', async () => {
    const { sink, fwd } = setup({}, { maxBytes: 400, segmentBytes: 4096, fsync: false });
    sink.down = true;
    const results: boolean[] = [];
    const ps = Array.from({ length: 30 }, (_, i) => fwd.submit([rec('k', i)]).then(() => (results[i] = true)));
    await new Promise((r) => setTimeout(r, 100));
    const acked = results.filter(Boolean).length;
    expect(acked).toBeGreaterThan(0);
    expect(acked).toBeLessThan(30);
    sink.down = false;
    await Promise.all(ps);
    await sink.waitFor(30);
    assertPerKeyOrder(sink.records);
    await fwd.close();
  });

  it('spool full with whenFull=drop: submits resolve and the drops are counted', async () => {
    const { sink, fwd, metrics } = setup({ whenFull: 'drop' }, { maxBytes: 400, segmentBytes: 4096, fsync: false });
    sink.down = true;
    await Promise.all(Array.from({ length: 30 }, (_, i) => fwd.submit([rec('k', i)])));
    const dropped = (await metrics.dropped.get()).values[0].value;
    const spooled = (await metrics.spooled.get()).values[0].value;
    expect(dropped).toBeGreaterThan(0);
    expect(dropped + spooled).toBe(30);
    await fwd.close();
  });

  it('records spooled before a restart are replayed first by the next forwarder', async () => {
    const first = setup();
    first.sink.down = true;
    await Promise.all(Array.from({ length: 20 }, (_, i) => first.fwd.submit([rec('k', i)])));
    await first.fwd.close();
    const second = setup({}, undefined, first.dir);
    expect(second.fwd.currentMode).toBe('spool');
    const later = second.fwd.submit([rec('k', 20)]);
    await later;
    await second.sink.waitFor(21);
    expect(second.sink.records.map((r) => JSON.parse(r.value).i)).toEqual(Array.from({ length: 21 }, (_, i) => i));
    await second.fwd.close();
  });
});
