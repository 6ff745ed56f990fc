import { describe, expect, it } from 'vitest';
import { SimulatorConfig } from './config.schema.ts';
import { decodeSparkplug, encodeBatch, encodeJson, SparkplugNode } from './encode.ts';
import { PlantModel } from './model.ts';

const T0 = Date.parse('2026-01-05T06:00:00Z');
const model = new PlantModel(
  SimulatorConfig.parse({
    clock: { start: new Date(T0).toISOString() },
    faults: { random: { enabled: false }, scheduled: [{ kind: 'malformed', machine: 'p', sensor: 'flow', at: 5, durationS: 5, probability: 1 }] },
    plant: { sites: [{ id: 's', lines: [{ id: 'l', machines: [{ id: 'p', type: 'pump', rateHz: 2 }, { id: 'c', type: 'compressor', rateHz: 2 }] }] }] },
  }),
);
const batches = model.generate(T0, T0 + 10_000);
const pump = batches[0];
const opts = { topicPrefix: 'plant', includeUnit: true, batchMax: 3 };

describe('simulators > encode', () => {
  it('JSON: one message per reading on plant/<site>/<line>/<machine>/<sensor>', () => {
    const msgs = encodeJson(pump.emissions, opts);
    expect(msgs).toHaveLength(pump.emissions.length);
    const first = msgs[0];
    expect(first.topic).toBe('plant/s/l/p/current');
    expect(JSON.parse(first.payload as string)).toEqual({ ts: T0, value: pump.emissions[0].value, unit: 'A' });
    const broken = msgs.filter((m) => m.readings === 0);
    expect(broken).toHaveLength(10); // flow, 2 Hz × 5 s, all malformed
    expect(broken.every((m) => m.topic === 'plant/s/l/p/flow')).toBe(true);
  });

  it('batch: JSON arrays per sensor, in order, at most batchMax long; readings counted, not messages', () => {
    const msgs = encodeBatch(pump.emissions, opts);
    const current = msgs.filter((m) => m.topic === 'plant/s/l/p/current');
    const items = current.flatMap((m) => JSON.parse(m.payload as string) as { ts: number; value: number }[]);
    expect(current.every((m) => (JSON.parse(m.payload as string) as unknown[]).length <= 3)).toBe(true);
    expect(items.map((x) => x.ts)).toEqual(pump.emissions.filter((e) => e.sensor.id === 'current').map((e) => e.ts));
    expect(msgs.reduce((a, m) => a + m.readings, 0)).toBe(pump.emissions.filter((e) => e.malformed === undefined).length);
  });

  it('Sparkplug B: NBIRTH/DBIRTH then DDATA that decode back to the same values and timestamps, seq 0..255', () => {
    const node = new SparkplugNode('s', 'l', model.machines);
    const birth = node.birth(T0, () => 1.5);
    expect(birth.map((m) => m.topic)).toEqual(['spBv1.0/s/NBIRTH/l', 'spBv1.0/s/DBIRTH/l/p', 'spBv1.0/s/DBIRTH/l/c']);
    const nb = decodeSparkplug(birth[0].payload as Uint8Array);
    expect(nb.metrics?.map((m) => m.name)).toEqual(['bdSeq', 'Node Control/Rebirth']);
    const db = decodeSparkplug(birth[1].payload as Uint8Array);
    expect(db.metrics?.map((m) => m.name)).toEqual(['current', 'vibration', 'bearing_temp', 'pressure', 'flow']);
    expect(db.metrics?.[0].properties?.engUnit?.value).toBe('A');

    const valid = batches[1].emissions; // compressor: no malformed
    const data = node.data(batches[1].machine, valid, 1000);
    expect(data).toHaveLength(1);
    expect(data[0].topic).toBe('spBv1.0/s/DDATA/l/c');
    const decoded = decodeSparkplug(data[0].payload as Uint8Array);
    expect(Number(decoded.seq)).toBe(3); // after NBIRTH (0) and two DBIRTHs (1, 2)
    const got = decoded.metrics!.map((m) => ({ name: m.name, ts: Number(m.timestamp), value: m.value }));
    expect(got).toEqual(valid.map((e) => ({ name: e.sensor.id, ts: e.ts, value: e.value })));
    // Many messages: seq wraps at 256.
    let seq = 0;
    for (let i = 0; i < 300; i++) seq = Number(decodeSparkplug(node.data(batches[1].machine, valid.slice(0, 1), 1000)[0].payload as Uint8Array).seq);
    expect(seq).toBe((3 + 300) % 256);
  });

  it('Sparkplug B: a malformed emission becomes bytes that do not decode as a payload with metrics', () => {
    const node = new SparkplugNode('s', 'l', model.machines);
    const msgs = node.data(pump.machine, pump.emissions, 1000);
    const broken = msgs.filter((m) => m.readings === 0);
    expect(broken.length).toBe(10);
    for (const b of broken) {
      let metrics: unknown[] | undefined;
      try {
        metrics = decodeSparkplug(b.payload as Uint8Array).metrics ?? undefined;
      } catch {
        metrics = undefined;
      }
      expect(metrics === undefined || metrics.length === 0).toBe(true);
    }
  });
});
