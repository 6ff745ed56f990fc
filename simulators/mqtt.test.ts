import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KafkaClients } from '../common/kafka.ts';
import { silentLogger } from '../common/logger.ts';
import { createRegistry, renderMetrics } from '../common/metrics.ts';
import { SimulatorConfig, type SimulatorConfigInput } from './config.schema.ts';
import { decodeSparkplug, encodeSparkplug } from './encode.ts';
import { start } from './index.ts';
import { LabelRecorder } from './labels.ts';
import { PlantModel } from './model.ts';
import { MqttOutput } from './outputs.ts';
import { SimulationRunner } from './runner.ts';
import { startAedes, type TestBroker } from './testing.ts';

const T0 = Date.parse('2026-01-05T06:00:00Z');
let broker: TestBroker;
const clientIds = new Set<string>();

beforeAll(async () => {
  broker = await startAedes();
  broker.broker.on('client', ((c: { id: string }) => clientIds.add(c.id)) as never);
});
afterAll(async () => {
  await broker.close();
});

interface Received {
  topic: string;
  payload: Buffer;
}

async function subscriber(topic: string): Promise<{ client: MqttClient; got: Received[]; waitFor(n: (g: Received[]) => boolean, ms?: number): Promise<void> }> {
  const client = await mqtt.connectAsync(broker.url, { clientId: `sub-${Math.random().toString(36).slice(2)}` });
  const got: Received[] = [];
  client.on('message', (t, p) => got.push({ topic: t, payload: p }));
  await client.subscribeAsync(topic, { qos: 1 });
  return {
    client,
    got,
    async waitFor(done, ms = 20_000) {
      const deadline = Date.now() + ms;
      while (!done(got)) {
        if (Date.now() > deadline) throw new Error(`timed out with ${got.length} messages`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

function plantConfig(extra: SimulatorConfigInput = {}): SimulatorConfig {
  return SimulatorConfig.parse({
    seed: 3,
    clock: { start: new Date(T0).toISOString() },
    faults: { random: { enabled: false } },
    plant: {
      sites: [
        {
          id: 's',
          lines: [
            { id: 'l1', machines: [{ id: 'p1', type: 'pump' }, { id: 'c1', type: 'compressor' }] },
            { id: 'l2', machines: [{ id: 'm1', type: 'motor', rateHz: 5 }] },
          ],
        },
      ],
    },
    ...extra,
  });
}

async function runTo(cfg: SimulatorConfig, seconds: number): Promise<{ model: PlantModel; output: MqttOutput }> {
  const model = new PlantModel(cfg);
  const output = new MqttOutput({ ...cfg.output.mqtt, url: broker.url }, model.machines, silentLogger(), () => 0);
  await output.connect();
  const runner = new SimulationRunner({ model, output, labels: new LabelRecorder(), speed: 0, tickMs: 100, startMs: T0, endMs: T0 + seconds * 1000 });
  await runner.run();
  await output.close();
  return { model, output };
}

describe('simulators > MQTT output (aedes on an ephemeral port)', () => {
  it('JSON: one client per machine; the subscriber gets exactly the model\'s readings, in order per sensor', async () => {
    const sub = await subscriber('plant/s/#');
    const before = new Set(clientIds);
    const { output } = await runTo(plantConfig(), 60);
    await sub.waitFor((g) => g.length >= output.stats.messages);
    await sub.client.endAsync();
    const newClients = [...clientIds].filter((c) => !before.has(c) && !c.startsWith('sub-'));
    expect(newClients).toHaveLength(3);
    expect(output.stats).toMatchObject({ readings: 60 * 5 + 60 * 5 + 60 * 5 * 4, errors: 0 });
    expect(sub.got).toHaveLength(output.stats.messages);
    // Same seed, fresh model: the expected data.
    const expected = new PlantModel(plantConfig()).generate(T0, T0 + 60_000).flatMap((b) => b.emissions);
    for (const path of ['s/l1/p1/flow', 's/l2/m1/vibration']) {
      const want = expected.filter((e) => e.sensor.path === path).map((e) => ({ ts: e.ts, value: e.value, unit: e.sensor.unit }));
      const got = sub.got.filter((m) => m.topic === `plant/${path}`).map((m) => JSON.parse(m.payload.toString()) as unknown);
      expect(got).toEqual(want);
    }
  });

  it('batch at QoS 1 over a pool of 2 connections: arrays carry every reading', async () => {
    const sub = await subscriber('plant/s/#');
    const cfg = plantConfig({ output: { mqtt: { format: 'batch', qos: 1, connections: 2, batchMax: 50 } } });
    const { output } = await runTo(cfg, 120);
    await sub.waitFor((g) => g.length >= output.stats.messages);
    await sub.client.endAsync();
    const readings = sub.got.flatMap((m) => JSON.parse(m.payload.toString()) as { ts: number; value: number }[]);
    expect(readings).toHaveLength(output.stats.readings);
    expect(output.stats.readings).toBe(120 * (5 + 5 + 4 * 5));
    expect(output.stats.messages).toBeLessThan(output.stats.readings / 10);
    const flow = sub.got.filter((m) => m.topic === 'plant/s/l1/p1/flow').flatMap((m) => JSON.parse(m.payload.toString()) as { ts: number }[]);
    expect(flow.map((r) => r.ts)).toEqual(Array.from({ length: 120 }, (_, i) => T0 + i * 1000));
  });

  it('JSON at QoS 2: exactly the readings sent, none twice', async () => {
    const sub = await subscriber('plant/s/#');
    const { output } = await runTo(plantConfig({ output: { mqtt: { qos: 2 } } }), 20);
    await sub.waitFor((g) => g.length >= output.stats.messages);
    await new Promise((r) => setTimeout(r, 100));
    await sub.client.endAsync();
    expect(output.stats).toMatchObject({ readings: 20 * 30, errors: 0 });
    const keys = sub.got.map((m) => `${m.topic} ${m.payload.toString()}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys).toHaveLength(20 * 30);
  });

  it('Sparkplug B: one session per line, births first, DDATA decodes to the model\'s values', async () => {
    const sub = await subscriber('spBv1.0/s/#');
    const cfg = plantConfig({ output: { mqtt: { format: 'sparkplug' } } });
    const { output } = await runTo(cfg, 30);
    await sub.waitFor((g) => g.length >= output.stats.messages);
    await sub.client.endAsync();
    const types = sub.got.map((m) => m.topic.split('/')[2]);
    expect(sub.got.filter((m) => m.topic.startsWith('spBv1.0/s/NBIRTH/')).map((m) => m.topic).sort()).toEqual(['spBv1.0/s/NBIRTH/l1', 'spBv1.0/s/NBIRTH/l2']);
    expect(types.indexOf('DDATA')).toBeGreaterThan(types.lastIndexOf('DBIRTH') - 3);
    const ddata = sub.got.filter((m) => m.topic === 'spBv1.0/s/DDATA/l1/p1');
    const metrics = ddata.flatMap((m) => decodeSparkplug(m.payload).metrics ?? []);
    const expected = new PlantModel(cfg).generate(T0, T0 + 30_000)[0].emissions;
    expect(metrics.map((m) => ({ name: m.name, ts: Number(m.timestamp), value: m.value }))).toEqual(
      expected.map((e) => ({ name: e.sensor.id, ts: e.ts, value: e.value })),
    );
  });

  it('Sparkplug B: answers a Node Control/Rebirth NCMD with a new NBIRTH and DBIRTHs', async () => {
    const cfg = plantConfig({ output: { mqtt: { format: 'sparkplug' } } });
    const model = new PlantModel(cfg);
    const output = new MqttOutput({ ...cfg.output.mqtt, url: broker.url }, model.machines, silentLogger(), () => 42);
    const sub = await subscriber('spBv1.0/s/+/l1/#');
    await output.connect();
    await sub.waitFor((g) => g.filter((m) => m.topic.includes('BIRTH')).length === 3);
    const host = await mqtt.connectAsync(broker.url, { clientId: 'sparkplug-host' });
    await host.publishAsync('spBv1.0/s/NCMD/l1', Buffer.from(encodeSparkplug({ timestamp: Date.now(), metrics: [{ name: 'Node Control/Rebirth', type: 'Boolean', value: true }] })));
    await sub.waitFor((g) => g.filter((m) => m.topic.includes('BIRTH')).length === 6);
    const births = sub.got.filter((m) => m.topic.includes('BIRTH')).slice(3);
    expect(births.map((m) => m.topic)).toEqual(['spBv1.0/s/NBIRTH/l1', 'spBv1.0/s/DBIRTH/l1/p1', 'spBv1.0/s/DBIRTH/l1/c1']);
    expect(Number(decodeSparkplug(births[0].payload).seq)).toBe(0);
    expect(decodeSparkplug(births[1].payload).metrics?.every((m) => m.value === 42)).toBe(true);
    await host.endAsync();
    await sub.client.endAsync();
    await output.close();
  });

  it('Sparkplug B: a dropped connection publishes the NDEATH will; the reconnect is a new session (bdSeq + 1)', async () => {
    const cfg = plantConfig({ output: { mqtt: { format: 'sparkplug' } } });
    const model = new PlantModel(cfg);
    const output = new MqttOutput({ ...cfg.output.mqtt, url: broker.url }, model.machines, silentLogger(), () => 1);
    const sub = await subscriber('spBv1.0/s/+/l2/#');
    await output.connect();
    await sub.waitFor((g) => g.some((m) => m.topic === 'spBv1.0/s/NBIRTH/l2'));
    const l2 = output.clients.find((c) => c.options.clientId?.endsWith('-s-l2'))!;
    l2.stream.destroy(); // network failure, not a clean DISCONNECT: the broker sends the will
    await sub.waitFor((g) => g.filter((m) => m.topic === 'spBv1.0/s/NBIRTH/l2').length === 2);
    const bdSeq = (m: Received) => Number(decodeSparkplug(m.payload).metrics?.find((x) => x.name === 'bdSeq')?.value);
    const deaths = sub.got.filter((m) => m.topic === 'spBv1.0/s/NDEATH/l2');
    const births = sub.got.filter((m) => m.topic === 'spBv1.0/s/NBIRTH/l2');
    expect(deaths.map(bdSeq)).toEqual([0]);
    expect(births.map(bdSeq)).toEqual([0, 1]);
    await sub.client.endAsync();
    await output.close();
  });

  it('counts publish errors instead of throwing when the broker goes away', async () => {
    const lonely = await startAedes();
    const cfg = plantConfig();
    const model = new PlantModel(cfg);
    const output = new MqttOutput({ ...cfg.output.mqtt, url: lonely.url }, model.machines, silentLogger());
    await output.connect();
    await lonely.close();
    await new Promise((r) => setTimeout(r, 200));
    output.send(model.generate(T0, T0 + 5000));
    await new Promise((r) => setTimeout(r, 100));
    expect(output.stats.errors).toBeGreaterThan(0);
    expect(output.stats.readings).toBe(0);
    await output.close();
  });

  it('fails to connect with a one-line error naming the URL', async () => {
    const cfg = plantConfig();
    const model = new PlantModel(cfg);
    const output = new MqttOutput({ ...cfg.output.mqtt, url: 'mqtt://127.0.0.1:1' }, model.machines.slice(0, 1), silentLogger());
    await expect(output.connect()).rejects.toThrow(/cannot connect to mqtt:\/\/127.0.0.1:1/);
  });
});

describe('simulators > component start()', () => {
  it('runs the demo plant to the given MQTT url, injects faults on demand, exposes labels and metrics', async () => {
    const sub = await subscriber('plant/demo/#');
    const metrics = createRegistry('simulator');
    const handle = await start(
      SimulatorConfig.parse({ clock: { speed: 20 }, faults: { random: { enabled: false } } }),
      { logger: silentLogger(), metrics, kafka: {} as KafkaClients, dataDir: mkdtempSync(join(tmpdir(), 'sim-comp-')) },
      { mqttUrl: broker.url },
    );
    await sub.waitFor((g) => new Set(g.map((m) => m.topic.split('/').slice(0, 4).join('/'))).size === 5);
    const label = handle.injectFault({ kind: 'stuck', machine: 'pump-1', sensor: 'flow', durationS: 600 });
    expect(label).toMatchObject({ kind: 'stuck', machineKey: 'demo/line-1/pump-1', sensor: 'flow', source: 'injected' });
    expect(handle.labels).toContainEqual(label);
    const n = sub.got.length;
    await sub.waitFor((g) => g.slice(n).filter((m) => m.topic === 'plant/demo/line-1/pump-1/flow').length >= 20);
    const after = sub.got
      .slice(n)
      .filter((m) => m.topic === 'plant/demo/line-1/pump-1/flow')
      .map((m) => JSON.parse(m.payload.toString()) as { ts: number; value: number })
      .filter((r) => r.ts >= label.start);
    expect(after.length).toBeGreaterThan(10);
    expect(new Set(after.map((r) => r.value)).size).toBe(1);
    const text = (await renderMetrics([metrics])).body;
    expect(text).toMatch(/plantwatch_simulator_readings_sent_total(\{[^}]*\})? [1-9]/);
    expect(text).toMatch(/plantwatch_simulator_faults_injected_total\{kind="stuck",source="injected"[^}]*\} 1/);
    await handle.close();
    await handle.close();
    await sub.client.endAsync();
  });

  it('a finite run (fixed start, speed 0, durationS) resolves `done` once every reading is out', async () => {
    const sub = await subscriber('plant/demo/#');
    const handle = await start(
      SimulatorConfig.parse({ clock: { start: '2026-01-05T06:00:00Z', speed: 0, durationS: 120 }, faults: { random: { enabled: false } }, output: { mqtt: { qos: 1, format: 'batch' } } }),
      { logger: silentLogger(), metrics: createRegistry('simulator'), kafka: {} as KafkaClients, dataDir: mkdtempSync(join(tmpdir(), 'sim-done-')) },
      { mqttUrl: broker.url },
    );
    await handle.done;
    expect(handle.stats).toMatchObject({ readings: 120 * 25, errors: 0 });
    const count = (g: Received[]) => g.reduce((a, m) => a + (JSON.parse(m.payload.toString()) as unknown[]).length, 0);
    await sub.waitFor((g) => count(g) >= 120 * 25);
    await handle.close();
    await new Promise((r) => setTimeout(r, 100));
    expect(count(sub.got)).toBe(120 * 25);
    await sub.client.endAsync();
  });
});
