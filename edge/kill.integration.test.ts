/**
 * Kill test: 100k QoS 1 readings from several devices into a bridge that runs as its own process
 * (edge/testdata/edge-runner.ts via `npx tsx`). Mid-stream the bridge is SIGKILLed and restarted on
 * the same port and data dir; the devices reconnect and resend what was not acknowledged.
 * Afterwards every reading a device got a PUBACK for must be in Kafka; duplicates are counted.
 */
import { afterAll, describe, expect, it } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Reading } from '../common/messages.ts';
import { startTestBroker, type TestBroker } from '../test/helpers/kafka.ts';
import { readTopic } from './testdata/kafka-read.ts';
import { spawnRunner, type Runner } from './testdata/spawn.ts';
import { freePort } from '../test/helpers/processes.ts';

const DEVICES = 5;
const PER_DEVICE = 20_000;
const WINDOW = 100;

describe('edge > kill test (SIGKILL mid-stream)', () => {
  let kafka: TestBroker;
  const brokers: TestBroker[] = [];
  let runner: Runner | undefined;
  const clients: MqttClient[] = [];
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    await runner?.kill('SIGKILL');
    for (const b of brokers) await b.close();
  });

  it(`${DEVICES}×${PER_DEVICE / 1000}k QoS 1 readings, bridge SIGKILLed and restarted: every PUBACKed reading is in Kafka`, async () => {
    kafka = await startTestBroker();
    brokers.push(kafka);
    const port = await freePort();
    const env = { KAFKA_BROKERS: kafka.brokers.join(','), EDGE_DATA_DIR: mkdtempSync(join(tmpdir(), 'pw-edge-kill-')), EDGE_MQTT_PORT: String(port) };
    runner = await spawnRunner('edge/testdata/edge-runner.ts', env);
    const url = `mqtt://127.0.0.1:${port}`;

    const acked = Array.from({ length: DEVICES }, () => new Set<number>());
    let failedPublishes = 0;
    const publishers = Array.from({ length: DEVICES }, async (_, d) => {
      // clean=false + fixed id: mqtt.js keeps unacknowledged QoS 1 messages and resends them after reconnect.
      const c = await mqtt.connectAsync(url, { clientId: `kill-dev-${d}`, clean: false, reconnectPeriod: 100, connectTimeout: 5000 });
      clients.push(c);
      let next = 0;
      await Promise.all(
        Array.from({ length: WINDOW }, async () => {
          while (next < PER_DEVICE) {
            const seq = next++;
            for (;;) {
              try {
                await c.publishAsync(`plant/kill/l1/dev${d}/seq`, JSON.stringify({ ts: Date.now(), value: seq }), { qos: 1 });
                acked[d].add(seq);
                break;
              } catch {
                // The client gave up on this one (connection closed): the device resends it.
                failedPublishes++;
                await new Promise((r) => setTimeout(r, 100));
              }
            }
          }
        }),
      );
    });

    const total = DEVICES * PER_DEVICE;
    const ackedCount = () => acked.reduce((n, s) => n + s.size, 0);
    while (ackedCount() < total * 0.3) await new Promise((r) => setTimeout(r, 20));
    const ackedBeforeKill = ackedCount();
    await runner.kill('SIGKILL');
    runner = await spawnRunner('edge/testdata/edge-runner.ts', env);
    await Promise.all(publishers);
    expect(ackedCount()).toBe(total);

    const recs = await readTopic(kafka.kafka, 'plantwatch.readings', total, { timeoutMs: 90_000, settleMs: 1000 });
    const seen = Array.from({ length: DEVICES }, () => new Map<number, number>());
    for (const r of recs) {
      const reading = Reading.parse(JSON.parse(r.value));
      const d = Number(reading.machine.slice(3));
      seen[d].set(reading.value, (seen[d].get(reading.value) ?? 0) + 1);
    }
    let lost = 0;
    let duplicates = 0;
    for (let d = 0; d < DEVICES; d++) {
      for (const seq of acked[d]) if (!seen[d].has(seq)) lost++;
      for (const n of seen[d].values()) duplicates += n - 1;
    }
    console.log(`kill test: ${total} readings, ${ackedBeforeKill} acknowledged before SIGKILL, ${recs.length} Kafka records, lost ${lost}, duplicates ${duplicates}, client-side resends ${failedPublishes}`);
    expect(lost).toBe(0);
    expect(recs.length).toBe(total + duplicates);
  }, 300_000);

  it('spool survives SIGKILL: readings acknowledged while Kafka was down reach Kafka after both come back', async () => {
    const kafkaPort = await freePort();
    const kafkaDir = mkdtempSync(join(tmpdir(), 'pw-edge-kill-kafka-'));
    const k1 = await startTestBroker({ port: kafkaPort, dataDir: kafkaDir, keepData: true });
    brokers.push(k1);
    const port = await freePort();
    const env = { KAFKA_BROKERS: k1.brokers.join(','), EDGE_DATA_DIR: mkdtempSync(join(tmpdir(), 'pw-edge-kill2-')), EDGE_MQTT_PORT: String(port), EDGE_CONFIG: JSON.stringify({ kafka: { sendTimeoutMs: 1000, retryMaxMs: 500 } }) };
    await runner?.kill('SIGKILL');
    runner = await spawnRunner('edge/testdata/edge-runner.ts', env);
    await k1.close(); // Kafka down before anything is sent
    const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'spool-dev', reconnectPeriod: 100 });
    clients.push(dev);
    const N = 3000;
    for (let i = 0; i < N; i += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, j) => dev.publishAsync('plant/spool/l1/dev0/seq', JSON.stringify({ ts: Date.now(), value: i + j }), { qos: 1 })));
    }
    // All N acknowledged although Kafka is down: they are in the spool. Now crash the bridge.
    await runner.kill('SIGKILL');
    kafka = await startTestBroker({ port: kafkaPort, dataDir: kafkaDir, keepData: true });
    brokers.push(kafka);
    runner = await spawnRunner('edge/testdata/edge-runner.ts', env);
    const recs = await readTopic(kafka.kafka, 'plantwatch.readings', N, { timeoutMs: 60_000 });
    const values = new Set(recs.map((r) => Reading.parse(JSON.parse(r.value)).value));
    expect(values.size).toBe(N);
    // Replayed in order: the partition holds them as the device sent them.
    expect(recs.map((r) => Reading.parse(JSON.parse(r.value)).value)).toEqual(Array.from({ length: N }, (_, i) => i));
  }, 180_000);
});
