import { describe, expect, it } from 'vitest';
import type { Reading } from '../../common/messages.ts';
import { ReadingBatch, SeriesInterner } from '../../common/reading-batch.ts';
import { BatchScorer, type ScoredGroup } from './scorer.ts';
import { FakeDetector, reading } from './test-support/fake-detector.ts';

function deferred() {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const interner = new SeriesInterner();
const readingsOf = (machine: string, n: number, t0 = 1000): Reading[] => Array.from({ length: n }, (_, i) => reading({ machine, ts: t0 + i, value: i }));
const rs = (machine: string, n: number, t0 = 1000): ReadingBatch => ReadingBatch.fromReadings(readingsOf(machine, n, t0), interner);
/** A delivered group's sensor scores as messages. */
const sensorScores = (g: ScoredGroup<unknown>) => g.output.sensor.toSensorScores(g.input, g.modelVersion);

describe('services > anomaly > scorer', () => {
  it('merges batches queued while the detector is busy into one scoreBatch call, in submission order', async () => {
    const det = new FakeDetector({ delayMs: 20 });
    const delivered: ScoredGroup<string>[] = [];
    const scorer = new BatchScorer<string>({ detector: () => det, deliver: async (g) => void delivered.push(g), maxReadings: 1000, maxInFlight: 2 });
    const all = Promise.all([scorer.submit(rs('a', 3), 'p0'), scorer.submit(rs('b', 4), 'p1'), scorer.submit(rs('c', 5), 'p2')]);
    await all;
    // The first batch starts alone; the two queued behind it are scored together.
    expect(det.calls).toEqual([3, 9]);
    expect(delivered.map((g) => g.items)).toEqual([['p0'], ['p1', 'p2']]);
    expect(sensorScores(delivered[1]).map((s) => s.machine)).toEqual([...'bbbbccccc']);
  });

  it('never puts more than maxReadings in one call: a bigger submission is split across calls, in order', async () => {
    const det = new FakeDetector({ delayMs: 5 });
    const scorer = new BatchScorer<number>({ detector: () => det, deliver: async () => undefined, maxReadings: 10, maxInFlight: 2 });
    const subs = [rs('a', 1), rs('b', 6), rs('c', 6), rs('d', 12), rs('e', 3)];
    await Promise.all(subs.map((r, i) => scorer.submit(r, i)));
    expect(det.calls).toEqual([1, 10, 10, 7]);
    await scorer.idle();
    expect(scorer.pendingReadings).toBe(0);
  });

  it('sends a group before scoring the next, and lets pending I/O (acks, fetches) run between calls', async () => {
    const det = new FakeDetector();
    const events: string[] = [];
    const score = det.scoreColumns.bind(det);
    det.scoreColumns = (b) => {
      events.push(`score ${b.n}`);
      return score(b);
    };
    const deliver = async (g: ScoredGroup<number>) => {
      events.push(`send ${g.readings}`);
      // An I/O callback that becomes ready meanwhile (an ack, a fetch response).
      setImmediate(() => events.push('io'));
    };
    const scorer = new BatchScorer<number>({ detector: () => det, deliver, maxReadings: 5, maxInFlight: 4 });
    // A backlog of three calls' worth: chained in one task, the first group's produce would wait
    // for the other two calls and so would every ack and fetch response.
    await scorer.submit(rs('a', 15), 0);
    expect(events).toEqual(['score 5', 'send 5', 'io', 'score 5', 'send 5', 'io', 'score 5', 'send 5']);
  });

  it('adapts the batch limit to the measured cost so that a call takes about targetBatchMs (within min/max)', async () => {
    let clock = 0;
    const det = new FakeDetector();
    const score = det.scoreColumns.bind(det);
    let msPerReading = 0.125;
    det.scoreColumns = async (b) => {
      clock += b.n * msPerReading;
      return score(b);
    };
    const opts = { detector: () => det, deliver: async () => undefined, maxReadings: 1000, maxInFlight: 1, targetBatchMs: 5, minReadings: 16, now: () => clock };
    const scorer = new BatchScorer<number>(opts);
    expect(scorer.batchLimit).toBe(1000); // nothing measured yet
    await scorer.submit(rs('a', 200), 0);
    expect(scorer.batchLimit).toBe(40); // 5 ms / 0.125 ms
    await scorer.submit(rs('b', 100), 1);
    expect(det.calls).toEqual([200, 40, 40, 20]);
    msPerReading = 10; // a very slow detector: the floor keeps per-call costs shared
    for (let i = 0; i < 30; i++) await scorer.submit(rs(`c${i}`, 16), i);
    expect(scorer.batchLimit).toBe(16);
    msPerReading = 0.001; // a fast one: capped by maxReadings
    for (let i = 0; i < 60; i++) await scorer.submit(rs(`d${i}`, 16), i);
    expect(scorer.batchLimit).toBe(1000);
  });

  it('resolves a split submission only when every part was delivered, and keeps exclusive work out of it', async () => {
    const det = new FakeDetector({ delayMs: 2 });
    const events: string[] = [];
    const gates: ReturnType<typeof deferred>[] = [];
    const scorer = new BatchScorer<string>({
      detector: () => det,
      afterScore: (g) => events.push(`scored ${g.readings} [${g.items.join(',')}]`),
      deliver: () => {
        const d = deferred();
        gates.push(d);
        return d.promise;
      },
      maxReadings: 4,
      maxInFlight: 4,
    });
    let done = false;
    const big = scorer.submit(rs('a', 10), 'big').then(() => (done = true));
    await new Promise((r) => setTimeout(r, 1));
    const snap = scorer.exclusive(async () => void events.push('snapshot'));
    const after = scorer.submit(rs('b', 1), 'after');
    while (!events.includes('snapshot')) await new Promise((r) => setTimeout(r, 5));
    // The metadata travels with the last part; the snapshot waits until the whole submission is in.
    expect(events.slice(0, 4)).toEqual(['scored 4 []', 'scored 4 []', 'scored 2 [big]', 'snapshot']);
    gates[2].resolve();
    gates[0].resolve();
    await new Promise((r) => setTimeout(r, 5));
    expect(done).toBe(false);
    gates[1].resolve();
    await big;
    await snap;
    while (gates.length < 4) await new Promise((r) => setTimeout(r, 5));
    gates[3].resolve();
    await after;
    expect(events.at(-1)).toBe('scored 1 [after]');
  });

  it('a failed part rejects the submission once and its rest is not scored', async () => {
    const det = new FakeDetector({ delayMs: 2 });
    let sends = 0;
    const scorer = new BatchScorer<number>({
      detector: () => det,
      deliver: async () => {
        if (sends++ === 0) throw new Error('produce failed');
      },
      maxReadings: 4,
      maxInFlight: 1,
    });
    await expect(scorer.submit(rs('a', 10), 0)).rejects.toThrow('produce failed');
    await scorer.idle();
    expect(det.calls).toEqual([4]);
    expect(scorer.pendingReadings).toBe(0);
    await scorer.submit(rs('b', 3), 1);
    expect(det.calls).toEqual([4, 3]);
  });

  it('resolves a submission only after its delivery succeeded, and rejects it when delivery fails', async () => {
    const det = new FakeDetector();
    const gate = deferred();
    let fail = false;
    const scorer = new BatchScorer<number>({
      detector: () => det,
      deliver: async () => {
        await gate.promise;
        if (fail) throw new Error('produce failed');
      },
      maxReadings: 100,
      maxInFlight: 1,
    });
    let settled = false;
    const p = scorer.submit(rs('a', 2), 1).then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(settled).toBe(false);
    gate.resolve();
    await p;
    expect(settled).toBe(true);
    fail = true;
    await expect(scorer.submit(rs('a', 2, 5000), 2)).rejects.toThrow('produce failed');
  });

  it('bounds groups in flight: with maxInFlight 1 nothing is scored while a delivery is pending', async () => {
    const det = new FakeDetector();
    const gates = [deferred(), deferred()];
    let i = 0;
    const scorer = new BatchScorer<number>({ detector: () => det, deliver: () => gates[i++].promise, maxReadings: 100, maxInFlight: 1 });
    const a = scorer.submit(rs('a', 2), 0);
    const b = scorer.submit(rs('b', 2), 1);
    await new Promise((r) => setTimeout(r, 20));
    expect(det.calls).toEqual([2]);
    expect(scorer.pendingReadings).toBe(4);
    gates[0].resolve();
    await a;
    await new Promise((r) => setTimeout(r, 0));
    expect(det.calls).toEqual([2, 2]);
    gates[1].resolve();
    await b;
    await scorer.idle();
    expect(scorer.pendingReadings).toBe(0);
  });

  it('isolates a reading the detector throws on and scores the rest', async () => {
    // A detector that reuses its output columns: each half's scores must survive the next call.
    const det = new FakeDetector({ poisonValue: 666, reuseColumns: true });
    let group: ScoredGroup<number> | undefined;
    const scorer = new BatchScorer<number>({ detector: () => det, deliver: async (g) => void (group = g), maxReadings: 100, maxInFlight: 1 });
    const batch = readingsOf('a', 7);
    batch[4] = { ...batch[4], value: 666 };
    await scorer.submit(ReadingBatch.fromReadings(batch, interner), 0);
    expect(group!.failed.map((f) => group!.input.readingAt(f.point))).toEqual([batch[4]]);
    expect(sensorScores(group!).map((s) => s.ts)).toEqual(batch.filter((_, i) => i !== 4).map((r) => r.ts));
  });

  it('rethrows when every reading fails alone (a broken detector, not bad data): nothing is delivered', async () => {
    const det = new FakeDetector();
    det.dispose();
    let delivered = 0;
    const scorer = new BatchScorer<number>({ detector: () => det, deliver: async () => void delivered++, maxReadings: 100, maxInFlight: 1 });
    await expect(scorer.submit(rs('a', 4), 0)).rejects.toThrow('detector disposed');
    expect(delivered).toBe(0);
  });

  it('exclusive() runs between scoring calls, never during one', async () => {
    const det = new FakeDetector({ delayMs: 20 });
    const events: string[] = [];
    const scorer = new BatchScorer<number>({
      detector: () => det,
      afterScore: (g) => events.push(`scored ${g.readings}`),
      deliver: async () => undefined,
      maxReadings: 100,
      maxInFlight: 2,
    });
    const a = scorer.submit(rs('a', 3), 0);
    await new Promise((r) => setTimeout(r, 5));
    const snap = scorer.exclusive(async () => void events.push('snapshot'));
    const b = scorer.submit(rs('b', 2), 1);
    await Promise.all([a, snap, b]);
    expect(events).toEqual(['scored 3', 'snapshot', 'scored 2']);
  });

  it('with prepare, hands a submitted batch back (release) only once every part of it was scored and prepared', async () => {
    const det = new FakeDetector();
    const released: string[] = [];
    const prepared: string[] = [];
    const batches = [rs('a', 6), rs('b', 2)];
    const names = new Map(batches.map((b, i) => [b, `b${i}`]));
    const scorer = new BatchScorer<number, string[]>({
      detector: () => det,
      // The prepared form is what gets delivered; the batch must still hold its points here.
      prepare: (g) => {
        const machines = sensorScores(g).map((s) => s.machine);
        prepared.push(machines.join(''));
        expect(released).toEqual([]); // nothing is handed back before its last part is prepared
        return machines;
      },
      deliver: async () => undefined,
      release: (b) => released.push(names.get(b)!),
      maxReadings: 4,
      maxInFlight: 4,
    });
    await Promise.all(batches.map((b, i) => scorer.submit(b, i)));
    expect(prepared).toEqual(['aaaa', 'aabb']);
    expect(released).toEqual(['b0', 'b1']);
  });
});
