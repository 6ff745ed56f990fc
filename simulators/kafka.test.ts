import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTopics, type KafkaMessage } from '../common/kafka.ts';
import { silentLogger } from '../common/logger.ts';
import { ReadingRecord, type Reading } from '../common/messages.ts';
import { TOPICS } from '../common/topics.ts';
import { startTestBroker, type TestBroker } from '../test/helpers/kafka.ts';
import { SimulatorConfig } from './config.schema.ts';
import { LabelRecorder } from './labels.ts';
import { PlantModel } from './model.ts';
import { KafkaOutput } from './outputs.ts';
import { SimulationRunner } from './runner.ts';
import { start } from './index.ts';
import { createRegistry } from '../common/metrics.ts';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const T0 = Date.parse('2026-01-05T06:00:00Z');
let k: TestBroker;

beforeAll(async () => {
  k = await startTestBroker();
  await ensureTopics(k.kafka);
});
afterAll(async () => {
  await k?.close();
});

/** Reads the readings topic from the beginning until `done(records)` (or 30 s). */
async function readUntil(done: (got: KafkaMessage[]) => boolean): Promise<KafkaMessage[]> {
  const consumer = k.kafka.consumer({ groupId: `sim-test-${Math.random().toString(36).slice(2)}` });
  await consumer.connect();
  await consumer.subscribe({ topic: TOPICS.readings, fromBeginning: true });
  const got: KafkaMessage[] = [];
  await consumer.run({ eachMessage: async ({ message }) => void got.push(message) });
  const deadline = Date.now() + 30_000;
  while (!done(got) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await consumer.disconnect();
  return got;
}

describe('simulators > Kafka output (embedded Kafka-protocol broker)', () => {
  it('sends one record per machine per round: key = site/line/machine, value = an array of valid Readings', async () => {
    const cfg = SimulatorConfig.parse({
      seed: 9,
      faults: { random: { enabled: false } },
      plant: { sites: [{ id: 's', lines: [{ id: 'l', machines: [{ id: 'p', type: 'pump' }, { id: 'c', type: 'conveyor', rateHz: 2 }] }] }] },
    });
    const model = new PlantModel(cfg, { startMs: T0 });
    const output = new KafkaOutput(k.kafka, cfg.output.kafka, silentLogger());
    await output.connect();
    const runner = new SimulationRunner({ model, output, labels: new LabelRecorder(), speed: 0, tickMs: 100, startMs: T0, endMs: T0 + 60_000 });
    await runner.run();
    await output.close();
    expect(output.stats).toMatchObject({ readings: 60 * 5 + 120 * 5, errors: 0 });
    const records = (await readUntil((g) => g.length >= output.stats.messages)).filter((r) => r.key!.toString().startsWith('s/'));
    expect(records).toHaveLength(output.stats.messages);
    const readings: Reading[] = [];
    for (const r of records) {
      const parsed = ReadingRecord.parse(JSON.parse(r.value!.toString()));
      const list = Array.isArray(parsed) ? parsed : [parsed];
      for (const x of list) expect(`${x.site}/${x.line}/${x.machine}`).toBe(r.key!.toString());
      readings.push(...list);
    }
    expect(readings).toHaveLength(output.stats.readings);
    const expected = new PlantModel(cfg, { startMs: T0 }).generate(T0, T0 + 60_000)[1].emissions.filter((e) => e.sensor.id === 'speed');
    const got = readings.filter((x) => x.machine === 'c' && x.sensor === 'speed').sort((a, b) => a.ts - b.ts);
    expect(got.map((x) => [x.ts, x.value, x.unit])).toEqual(expected.map((e) => [e.ts, e.value, 'm/s']));
  });

  it('the component can send the demo plant straight to Kafka with the platform\'s clients', async () => {
    // The first test's records (site s) are on the topic too: keep site demo.
    const handle = await start(SimulatorConfig.parse({ output: { kind: 'kafka' }, clock: { speed: 30 }, faults: { random: { enabled: false } } }), {
      logger: silentLogger(),
      metrics: createRegistry('simulator'),
      kafka: k.kafka,
      dataDir: mkdtempSync(join(tmpdir(), 'sim-kafka-')),
    }, { mqttUrl: '' });
    const deadline = Date.now() + 20_000;
    while (handle.stats.readings < 200 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await handle.close();
    const demo = (g: KafkaMessage[]) => g.filter((r) => r.key!.toString().startsWith('demo/'));
    const records = demo(await readUntil((g) => demo(g).length >= handle.stats.messages));
    expect(records).toHaveLength(handle.stats.messages);
    const keys = new Set(records.map((r) => r.key!.toString()));
    expect(keys).toEqual(new Set(['demo/line-1/pump-1', 'demo/line-1/pump-2', 'demo/line-1/compressor-1', 'demo/line-2/cnc-1', 'demo/line-2/conveyor-1']));
    const n = records.reduce((a, r) => a + (JSON.parse(r.value!.toString()) as unknown[]).length, 0);
    expect(n).toBe(handle.stats.readings);
  });
});
