import mqtt from 'mqtt';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnRunner } from './testdata/spawn.ts';
import { createKafkaClients, ensureTopics } from '../common/kafka.ts';
import { KafkaClientConfig } from '../common/config/fragments.ts';
import { silentLogger } from '../common/logger.ts';
const qos = Number(process.env.QOS ?? 1) as 0 | 1;
const k = await spawnRunner('edge/testdata/kafka-runner.ts', { KAFKA_DATA_DIR: mkdtempSync(join(tmpdir(), 'pk-')), KAFKA_PORT: '0' });
const kafka = createKafkaClients({ ...KafkaClientConfig.parse({}), brokers: [k.ready[0]] }, silentLogger());
await ensureTopics(kafka);
const e = await spawnRunner('edge/testdata/edge-runner.ts', { KAFKA_BROKERS: k.ready[0], EDGE_DATA_DIR: mkdtempSync(join(tmpdir(), 'pe-')), EDGE_MQTT_PORT: '0', EDGE_HTTP_PORT: '0', EDGE_CPU_PROFILE: '/tmp/edge.cpuprofile', EDGE_CONFIG: process.env.EDGE_CONFIG ?? '{}' });
const url = `mqtt://127.0.0.1:${e.ready[0]}`;
const clients = await Promise.all([0, 1, 2, 3].map((i) => mqtt.connectAsync(url, { clientId: 'p' + i })));
const N = 60000;
const t0 = performance.now();
await Promise.all(clients.map(async (c, p) => {
  let next = p;
  await Promise.all(Array.from({ length: 500 }, async () => {
    while (next < N) { const i = next; next += 4; await c.publishAsync(`plant/s1/l1/m${i % 20}/t`, JSON.stringify({ ts: Date.now(), value: i }), { qos }); }
  }));
}));
console.log('rate', N / ((performance.now() - t0) / 1000));
await new Promise((r) => setTimeout(r, 1000));
const m = await (await fetch(`http://127.0.0.1:${e.ready[1]}/metrics`)).text();
console.log(m.split('\n').filter((l) => /kafka_send_seconds_(sum|count)|forwarded|errors|spool|pending|readings_total/.test(l)).join('\n'));
await Promise.all(clients.map((c) => c.endAsync()));
await e.kill('SIGTERM');
await k.kill('SIGTERM');
