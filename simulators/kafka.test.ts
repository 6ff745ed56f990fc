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

const T0 = Date.parse('2026-01-05T06:00:00Z');
let k: TestBroker;

beforeAll(async () => {
  k = await startTestBroker();
  await ensureTopics(k.kafka);
});
afterAll(async () => {
  await k?.close();
});

async function readAll(n: number): Promise<KafkaMessage[]> {
  const consumer = k.kafka.consumer({ groupId: `sim-test-${Math.random().toString(36).slice(2)}` });
  await consumer.connect();
  await consumer.subscribe({ topic: TOPICS.readings, fromBeginning: true });
  const got: KafkaMessage[] = [];
  await consumer.run({ eachMessage: async ({ message }) => void got.push(message) });
  const deadline = Date.now() + 30_000;
  while (got.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
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
    const records = await readAll(output.stats.messages);
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
});
