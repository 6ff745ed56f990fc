import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TrainingLedger } from './ledger.ts';
import { ModelStore, extractWeights, insertWeights, type ModelMetadata } from './model-store.ts';
import { FakeDetector, reading } from './test-support/fake-detector.ts';

function metadata(version: string, at = Date.now()): ModelMetadata {
  const ledger = new TrainingLedger('plantwatch.readings');
  return {
    modelVersion: version,
    origin: 'fresh',
    parent: null,
    createdAt: at,
    checkpointedAt: at,
    checkpoints: 1,
    streams: 0,
    stateBytes: 0,
    training: ledger.training(),
    quality: ledger.quality(),
    ledger: ledger.toJSON(),
    details: {},
  };
}

describe('services > anomaly > model-store', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pw-models-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('round-trips every number exactly: float32 weights to a tfjs-style manifest, float64 state kept exact', async () => {
    const f32 = Array.from({ length: 300 }, (_, i) => Math.fround(Math.sin(i)));
    const f64 = Array.from({ length: 300 }, (_, i) => Math.sin(i) / 3);
    const ints = Array.from({ length: 300 }, (_, i) => i - 150);
    const typed = Float32Array.from(f32);
    const snapshot = { version: 'v', createdAt: 1, nested: [{ w: f32 }, { s: f64 }], ints, typed, small: [1.5, 2.5], 'a/b': { x: f64 } };
    const { json, entries, buffers } = await extractWeights(snapshot);
    expect(entries.map((e) => [e.name, e.dtype])).toEqual([
      ['/nested/0/w', 'float32'],
      ['/nested/1/s', 'float64'],
      ['/ints', 'int32'],
      ['/typed', 'float32'],
      ['/a~1b/x', 'float64'],
    ]);
    expect((json as { small: number[] }).small).toEqual([1.5, 2.5]);
    const back = (await insertWeights(JSON.parse(JSON.stringify(json)), entries, Buffer.concat(buffers))) as typeof snapshot;
    expect(back).toEqual(snapshot);
    expect(back.typed).toBeInstanceOf(Float32Array);
  });

  it('stores per-stream state column by column (tiny model.json) and restores it exactly', async () => {
    const streams = Array.from({ length: 500 }, (_, i) => ({
      key: `s/l/m${i}/t`,
      n: i,
      mean: Math.sin(i) / 7,
      min: i === 0 ? Infinity : -i,
      flag: i % 2 === 0,
      ring: Array.from({ length: 16 }, (_, j) => Math.cos(i + j)),
      recent: Array.from({ length: i % 5 }, (_, j) => j),
      nested: { a: i, b: [i] },
      typed: Float32Array.from([i, i + 0.5]),
    }));
    const snapshot = { version: 'v', createdAt: 1, streams, mixed: [...streams.slice(0, 70), { other: 1 }], undef: Array.from({ length: 70 }, (_, i) => ({ a: i, b: i % 2 ? undefined : 1 })) };
    const { json, entries, buffers } = await extractWeights(snapshot);
    const text = JSON.stringify(json);
    expect(text.length).toBeLessThan(JSON.stringify(snapshot).length / 4);
    expect(entries.find((e) => e.name === '/streams/*/ring')).toMatchObject({ shape: [500, 16], dtype: 'float64' });
    expect(entries.find((e) => e.name === '/streams/*/n')).toMatchObject({ shape: [500], dtype: 'int32' });
    const back = (await insertWeights(JSON.parse(text), entries, Buffer.concat(buffers))) as typeof snapshot;
    expect(back.streams).toEqual(streams);
    expect(back.streams[0].min).toBe(Infinity);
    expect(back.streams[3].typed).toBeInstanceOf(Float32Array);
    // Arrays that are not uniform tables keep their JSON form (undefined fields are dropped, as JSON does).
    expect(back.mixed[5]).toEqual(streams[5]);
    expect(back.mixed[70]).toEqual({ other: 1 });
    expect(back.undef).toEqual(JSON.parse(JSON.stringify(snapshot.undef)));
  });

  it('saves a version folder (model.json, weights.bin, metadata.json) and a restored detector scores exactly like the saved one', async () => {
    const store = new ModelStore(dir);
    const det = new FakeDetector({ modelVersion: 'v1' });
    const train = Array.from({ length: 50 }, (_, i) => reading({ sensor: `s${i % 5}`, ts: 1000 + i, value: Math.sin(i) * 10 }));
    await det.scoreBatch(train);
    await store.save(await det.snapshot(), metadata('v1'));
    expect((await readdir(join(dir, 'v1'))).sort()).toEqual(['metadata.json', 'model.json', 'weights.bin']);
    const model = JSON.parse(await readFile(join(dir, 'v1', 'model.json'), 'utf8'));
    expect(model.weightsManifest[0].paths).toEqual(['weights.bin']);

    const loaded = await store.load('v1');
    expect(loaded.modelVersion).toBe('v1');
    expect(loaded.metadata?.modelVersion).toBe('v1');
    const restored = new FakeDetector();
    await restored.restore(loaded.snapshot);
    const next = Array.from({ length: 20 }, (_, i) => reading({ sensor: `s${i % 5}`, ts: 2000 + i, value: Math.cos(i) * 10 }));
    expect(await restored.scoreBatch(next)).toEqual(await det.scoreBatch(next));
  });

  it('loads a pre-trained model from a folder or its model.json path', async () => {
    const store = new ModelStore(dir);
    await store.save(await new FakeDetector({ modelVersion: 'pre' }).snapshot(), metadata('pre'));
    const other = new ModelStore(join(dir, 'elsewhere'));
    expect((await other.load(join(dir, 'pre'))).modelVersion).toBe('pre');
    expect((await other.load(join(dir, 'pre', 'model.json'))).modelVersion).toBe('pre');
  });

  it('says clearly when a model is missing or not a checkpoint', async () => {
    const store = new ModelStore(dir);
    await expect(store.load('nope')).rejects.toMatchObject({ code: 'ANOMALY_MODEL_NOT_FOUND' });
    await writeFile(join(dir, 'model.json'), '{"format":"something-else"}');
    await expect(store.load(join(dir, 'model.json'))).rejects.toMatchObject({ code: 'ANOMALY_MODEL_CORRUPT' });
    await expect(store.save(await new FakeDetector().snapshot(), metadata('../escape'))).rejects.toMatchObject({ code: 'ANOMALY_MODEL_VERSION_INVALID' });
  });

  it('overwrites a version in place, keeps CURRENT, and prunes old versions but never the protected ones', async () => {
    const store = new ModelStore(dir);
    const snap = await new FakeDetector().snapshot();
    for (const [i, v] of ['a', 'b', 'c', 'd'].entries()) await store.save(snap, metadata(v, 1000 + i));
    await store.save(snap, { ...metadata('a', 5000), checkpoints: 2 });
    await store.setCurrent('a');
    expect(await store.current()).toBe('a');
    expect((await store.list()).map((m) => m.modelVersion)).toEqual(['b', 'c', 'd', 'a']);
    expect(await store.prune(1, ['a', 'b'])).toEqual(['c']);
    expect((await store.list()).map((m) => m.modelVersion)).toEqual(['b', 'd', 'a']);
    expect((await readdir(dir)).filter((n) => n.startsWith('.'))).toEqual([]);
  });
});

describe('services > anomaly > ledger', () => {
  it('tracks offsets per partition, event-time span and score quality', async () => {
    const ledger = new TrainingLedger('t');
    ledger.recordOffsets(0, '10', '20');
    ledger.recordOffsets(0, '5', '12');
    ledger.recordOffsets(1, '100', '100');
    const det = new FakeDetector({ warmup: 2 });
    const out = await det.scoreBatch(Array.from({ length: 10 }, (_, i) => reading({ ts: 50 + i, value: i === 9 ? 1000 : 0 })));
    ledger.recordScores(out.sensor, out.machine, 1, 0);
    const t = ledger.training();
    expect(t.partitions).toEqual({ 0: { firstOffset: '5', lastOffset: '20' }, 1: { firstOffset: '100', lastOffset: '100' } });
    expect([t.firstEventTs, t.lastEventTs, t.readings]).toEqual([50, 59, 11]);
    const q = ledger.quality();
    expect(q.warmingUpShare).toBeCloseTo(0.2);
    expect(q.bandCoverage).toBeCloseTo(7 / 8);
    expect(q.rejected).toBe(1);
    expect(new TrainingLedger('t', ledger.toJSON()).quality()).toEqual(q);
  });
});
