import mqtt from 'mqtt';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { silentLogger } from '../common/logger.ts';
import { describeWith } from '../test/helpers/integration.ts';
import { startMosquitto, type MosquittoHandle } from '../test/helpers/mosquitto.ts';
import { SimulatorConfig } from './config.schema.ts';
import { LabelRecorder } from './labels.ts';
import { PlantModel } from './model.ts';
import { MqttOutput } from './outputs.ts';
import { SimulationRunner } from './runner.ts';
import { loadPlant } from './plants.ts';

const T0 = Date.parse('2026-01-05T06:00:00Z');

describeWith(['mosquitto'], 'simulators > MQTT output to Mosquitto (any broker)', () => {
  let mosq: MosquittoHandle;
  beforeAll(async () => {
    mosq = await startMosquitto();
  });
  afterAll(async () => {
    await mosq?.close();
  });

  it('publishes batched JSON at QoS 1 from 20 concurrent device connections without loss', async () => {
    const cfg = SimulatorConfig.parse({
      seed: 4,
      faults: { random: { enabled: false } },
      plant: loadPlant({ machines: 20, rateHz: 5 }),
      output: { mqtt: { format: 'batch', qos: 1, batchMax: 20 } },
    });
    const sub = await mqtt.connectAsync(mosq.url, { clientId: 'sim-mosq-sub' });
    let received = 0;
    sub.on('message', (_t, p) => (received += (JSON.parse(p.toString()) as unknown[]).length));
    await sub.subscribeAsync('plant/load/#', { qos: 1 });
    const model = new PlantModel(cfg, { startMs: T0 });
    const output = new MqttOutput({ ...cfg.output.mqtt, url: mosq.url }, model.machines, silentLogger());
    await output.connect();
    await new SimulationRunner({ model, output, labels: new LabelRecorder(), speed: 0, tickMs: 100, startMs: T0, endMs: T0 + 60_000 }).run();
    await output.close();
    const deadline = Date.now() + 20_000;
    while (received < output.stats.readings && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await sub.endAsync();
    expect(output.stats.errors).toBe(0);
    expect(output.stats.readings).toBe(model.naturalRate * 60);
    expect(received).toBe(output.stats.readings);
  });
});
