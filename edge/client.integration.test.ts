/**
 * Client mode against a real Mosquitto (started per file by test/helpers/mosquitto.ts), Kafka side
 * in memory. The Kafka-backed version of the same relay is in kafka.integration.test.ts.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { silentLogger } from '../common/logger.ts';
import { createRegistry } from '../common/metrics.ts';
import { Reading } from '../common/messages.ts';
import { describeWith } from '../test/helpers/integration.ts';
import { startTestBroker } from '../test/helpers/kafka.ts';
import { readTopic } from './testdata/kafka-read.ts';
import { startMosquitto, type MosquittoHandle } from '../test/helpers/mosquitto.ts';
import { start } from './index.ts';
import type { EdgeConfigInput } from './config.schema.ts';
import { MemorySink, testContext } from './testing.ts';

describeWith(['mosquitto', 'mosquitto_pub'], 'edge > client mode (Mosquitto)', () => {
  let broker: MosquittoHandle;
  beforeAll(async () => {
    broker = await startMosquitto();
  });
  afterAll(async () => {
    await broker?.close();
  });

  const cfg = (clientId: string, extra: EdgeConfigInput = {}): EdgeConfigInput => ({ httpPort: null, client: { url: broker.url, clientId, reconnectPeriodMs: 200 }, ...extra });

  async function publishAll(n: number, topic = (i: number) => `plant/s1/l1/m${i % 3}/temp`) {
    const dev = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    for (let i = 0; i < n; i++) await dev.publishAsync(topic(i), JSON.stringify({ ts: Date.now(), value: i }), { qos: 1 });
    await dev.endAsync();
  }

  it('mosquitto_pub → Mosquitto → bridge → Kafka (embedded Kafka-protocol broker)', async () => {
    const k = await startTestBroker();
    try {
      const edge = await start(cfg('pw-edge-kafka'), { logger: silentLogger(), metrics: createRegistry('edge'), kafka: k.kafka, dataDir: mkdtempSync(join(tmpdir(), 'pw-edge-')) });
      const lines = Array.from({ length: 200 }, (_, i) => JSON.stringify({ ts: Date.now(), value: i })).join('\n') + '\n';
      execFileSync('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.port), '-q', '1', '-t', 'plant/site9/line2/mixer/speed', '-l'], { input: lines });
      execFileSync('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.port), '-q', '1', '-t', 'plant/site9/line2/mixer/speed', '-m', 'garbage']);
      const recs = await readTopic(k.kafka, 'plantwatch.readings', 200);
      expect(recs).toHaveLength(200);
      expect(recs.map((r) => Reading.parse(JSON.parse(r.value)).value).sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i));
      expect(new Set(recs.map((r) => r.key))).toEqual(new Set(['site9/line2/mixer']));
      const dead = await readTopic(k.kafka, 'plantwatch.deadletter', 1);
      expect(dead.map((d) => JSON.parse(d.value).code)).toEqual(['PAYLOAD_NOT_DECODABLE']);
      await edge.close();
    } finally {
      await k.close();
    }
  });

  it('relays device messages from Mosquitto to Kafka records with key and headers', async () => {
    const sink = new MemorySink();
    const edge = await start(cfg('pw-edge-relay'), testContext(), { sink });
    expect(edge.mode).toBe('client');
    await publishAll(30);
    await sink.waitFor(30);
    const values = sink.records.map((r) => JSON.parse(r.value).value).sort((a, b) => a - b);
    expect(values).toEqual(Array.from({ length: 30 }, (_, i) => i));
    expect(sink.records[0].headers?.['mqtt.client_id']).toBe('pw-edge-relay');
    expect(new Set(sink.records.map((r) => r.key))).toEqual(new Set(['s1/l1/m0', 's1/l1/m1', 's1/l1/m2']));
    await edge.close();
  });

  it('MQTT 5: device user properties arrive as Kafka headers', async () => {
    const sink = new MemorySink();
    const edge = await start(cfg('pw-edge-v5', { client: { url: broker.url, clientId: 'pw-edge-v5', protocolVersion: 5 } }), testContext(), { sink });
    const dev = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0, protocolVersion: 5 });
    await dev.publishAsync('plant/s1/l1/m1/temp', JSON.stringify({ ts: Date.now(), value: 1 }), { qos: 1, properties: { userProperties: { firmware: '2.1', batch: 'A7' } } });
    await dev.endAsync();
    await sink.waitFor(1);
    expect(sink.records[0].headers).toMatchObject({ 'mqtt.topic': 'plant/s1/l1/m1/temp', 'mqtt.qos': '1', 'mqtt.user.firmware': '2.1', 'mqtt.user.batch': 'A7' });
    await edge.close();
  });

  it('persistent session: messages published while the bridge is down arrive after it comes back', async () => {
    const ctx = testContext();
    const first = await start(cfg('pw-edge-session'), ctx, { sink: new MemorySink() });
    await first.close();
    await publishAll(50);
    const sink = new MemorySink();
    const second = await start(cfg('pw-edge-session'), testContext(), { sink });
    await sink.waitFor(50);
    expect(sink.records).toHaveLength(50);
    await second.close();
  });

  it('holds the PUBACK until the record is durable: unacknowledged messages are redelivered to the next bridge', async () => {
    // Kafka down and a spool too small for anything: nothing can become durable, nothing is acked.
    const stuck = new MemorySink();
    stuck.down = true;
    const first = await start(cfg('pw-edge-held', { spool: { maxBytes: 10 }, kafka: { sendTimeoutMs: 100 } }), testContext(), { sink: stuck });
    await publishAll(20);
    await new Promise((r) => setTimeout(r, 500));
    expect(stuck.records).toHaveLength(0);
    await first.close();

    const sink = new MemorySink();
    const second = await start(cfg('pw-edge-held'), testContext(), { sink });
    await sink.waitFor(20);
    await second.close();
    // Everything the second bridge got was acknowledged: a third one sees no redelivery.
    const after = new MemorySink();
    const third = await start(cfg('pw-edge-held'), testContext(), { sink: after });
    await new Promise((r) => setTimeout(r, 500));
    expect(after.records).toHaveLength(0);
    await third.close();
  });

  it('survives a Mosquitto restart (reconnects and resubscribes)', async () => {
    const sink = new MemorySink();
    const edge = await start(cfg('pw-edge-restart'), testContext(), { sink });
    await publishAll(5);
    await sink.waitFor(5);
    await broker.restart();
    // persistence false: the restarted broker has no session, the bridge must subscribe again.
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && sink.records.length < 10) {
      await publishAll(5);
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(sink.records.length).toBeGreaterThanOrEqual(10);
    await edge.close();
  });

  it('rejects a broker it cannot reach at start with a clear error', async () => {
    const dead = `mqtt://127.0.0.1:1`;
    await expect(start({ httpPort: null, client: { url: dead, reconnectPeriodMs: 100 } }, { ...testContext(), dataDir: mkdtempSync(join(tmpdir(), 'pw-edge-')) }, { sink: new MemorySink() })).rejects.toThrow(/ECONNREFUSED/);
  });
});
