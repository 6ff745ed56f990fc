/**
 * Contract check against the edge bridge's decoders (edge/decode.ts, edge/sparkplug.ts): what the
 * simulator publishes is what the platform accepts, reading for reading, and every `malformed` fault
 * payload is rejected rather than half-read.
 */
import { describe, expect, it } from 'vitest';
import { decodePlain } from '../edge/decode.ts';
import { parseSparkplugTopic, SparkplugSessions } from '../edge/sparkplug.ts';
import { SimulatorConfig } from './config.schema.ts';
import { encodeBatch, encodeJson, SparkplugNode, type OutMessage } from './encode.ts';
import { PlantModel } from './model.ts';

const T0 = Date.parse('2026-01-05T06:00:00Z');
const cfg = SimulatorConfig.parse({
  seed: 21,
  faults: {
    random: { enabled: false },
    scheduled: [
      { kind: 'malformed', machine: 'p', sensor: 'flow', at: 10, durationS: 30, probability: 0.5 },
      { kind: 'clock_skew', machine: 'c', at: 5, durationS: 10, skewMs: 2000 },
      { kind: 'duplicate', machine: 'c', sensor: 'speed', at: 0, durationS: 60 },
    ],
  },
  plant: { sites: [{ id: 's', lines: [{ id: 'l', machines: [{ id: 'p', type: 'pump', rateHz: 2 }, { id: 'c', type: 'cnc_spindle', rateHz: 5 }] }] }] },
});
const model = new PlantModel(cfg, { startMs: T0 });
const batches = model.generate(T0, T0 + 60_000);
const emissions = batches.flatMap((b) => b.emissions.map((e) => ({ ...e, machine: b.machine })));
const valid = emissions.filter((e) => e.malformed === undefined);
const malformedCount = emissions.length - valid.length;
const decodeOpts = { receivedAt: T0 + 60_000, maxPastMs: 86_400_000, maxFutureMs: 86_400_000, maxBatchReadings: 10_000 };
const opts = { topicPrefix: 'plant', includeUnit: true, batchMax: 100 };

function decodeAll(msgs: OutMessage[]) {
  const readings: { key: string; ts: number; value: number; unit?: string }[] = [];
  let rejected = 0;
  for (const m of msgs) {
    const [, site, line, machine, sensor] = m.topic.split('/');
    // mqtt.js sends string payloads as UTF-8.
    const d = decodePlain(Buffer.from(m.payload as string, 'utf8'), { site, line, machine, sensor }, 'auto', decodeOpts);
    if (m.readings === 0) expect(d.readings, m.payload as string).toHaveLength(0);
    rejected += d.rejects.length;
    for (const r of d.readings) readings.push({ key: `${r.site}/${r.line}/${r.machine}/${r.sensor}`, ts: r.ts, value: r.value, unit: r.unit });
  }
  return { readings, rejected };
}

const expected = valid.map((e) => ({ key: e.sensor.path, ts: e.ts, value: e.value, unit: e.sensor.unit }));

describe('simulators > contract with the edge decoders', () => {
  it('has malformed payloads to check', () => expect(malformedCount).toBeGreaterThan(20));

  it('JSON: every reading decodes to the same values, every malformed payload is rejected', () => {
    const { readings, rejected } = decodeAll(batches.flatMap((b) => encodeJson(b.emissions, opts)));
    expect(readings).toEqual(expected);
    expect(rejected).toBe(malformedCount);
  });

  it('batched JSON: same readings in the same order per sensor', () => {
    const { readings, rejected } = decodeAll(batches.flatMap((b) => encodeBatch(b.emissions, opts)));
    const byKey = (xs: typeof readings) => [...xs].sort((a, b) => a.key.localeCompare(b.key));
    expect(byKey(readings)).toEqual(byKey(expected));
    expect(rejected).toBe(malformedCount);
  });

  it('Sparkplug B: births then DDATA decode to the same readings; malformed DDATA is rejected', () => {
    const node = new SparkplugNode('s', 'l', model.machines);
    const sessions = new SparkplugSessions({ rebirthMinIntervalMs: 1000, nodeMachine: '_node' });
    const msgs = [...node.birth(T0, () => 0), ...batches.flatMap((b) => node.data(b.machine, b.emissions, 100))];
    const readings: { key: string; ts: number; value: number }[] = [];
    let rejected = 0;
    for (const m of msgs) {
      const t = parseSparkplugTopic(m.topic)!;
      const res = sessions.handle(t, Buffer.from(m.payload as Uint8Array), decodeOpts);
      expect(res.rebirth, m.topic).toBeUndefined();
      rejected += res.rejects.length;
      if (m.topic.includes('DDATA')) for (const r of res.readings) readings.push({ key: `${r.site}/${r.line}/${r.machine}/${r.sensor}`, ts: r.ts, value: r.value });
    }
    const byKey = (xs: { key: string; ts: number; value: number }[]) => [...xs].sort((a, b) => a.key.localeCompare(b.key) || a.ts - b.ts || a.value - b.value);
    expect(byKey(readings)).toEqual(byKey(expected.map(({ key, ts, value }) => ({ key, ts, value }))));
    expect(rejected).toBe(malformedCount);
  });
});
