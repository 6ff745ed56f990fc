/**
 * Profiles the bridge under load: Kafka broker and bridge in their own processes, 4 publishers here.
 *   QOS=0 BATCH=10 N=30000 npx tsx edge/testdata/profile-edge.ts
 * Writes /tmp/edge.cpuprofile (open in Chrome DevTools) and prints the top functions by self time
 * plus the bridge's Kafka counters. EDGE_CONFIG (JSON) is passed to the bridge.
 */
import mqtt from 'mqtt';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnRunner } from './spawn.ts';
import { createKafkaClients, ensureTopics } from '../../common/kafka.ts';
import { KafkaClientConfig } from '../../common/config/fragments.ts';
import { silentLogger } from '../../common/logger.ts';

const qos = Number(process.env.QOS ?? 1) as 0 | 1;
const batch = Number(process.env.BATCH ?? 1);
const N = Number(process.env.N ?? 60_000);
const profilePath = process.env.PROFILE ?? '/tmp/edge.cpuprofile';

rmSync(profilePath, { force: true });
const k = await spawnRunner('edge/testdata/kafka-runner.ts', { KAFKA_DATA_DIR: mkdtempSync(join(tmpdir(), 'pw-prof-kafka-')), KAFKA_PORT: '0' });
const kafka = createKafkaClients({ ...KafkaClientConfig.parse({}), brokers: [k.ready[0]] }, silentLogger());
await ensureTopics(kafka);
const e = await spawnRunner('edge/testdata/edge-runner.ts', {
  KAFKA_BROKERS: k.ready[0],
  EDGE_DATA_DIR: mkdtempSync(join(tmpdir(), 'pw-prof-edge-')),
  EDGE_MQTT_PORT: '0',
  EDGE_HTTP_PORT: '0',
  EDGE_CPU_PROFILE: profilePath,
  EDGE_CONFIG: process.env.EDGE_CONFIG ?? '{}',
  NODE_OPTIONS: process.env.EDGE_NODE_OPTIONS ?? '',
});
const url = `mqtt://127.0.0.1:${e.ready[0]}`;
const clients = await Promise.all([0, 1, 2, 3].map((i) => mqtt.connectAsync(url, { clientId: `prof-${i}` })));
const payload = (i: number) => {
  const one = (j: number) => ({ ts: Date.now(), value: i + j / 100 });
  return JSON.stringify(batch === 1 ? one(0) : Array.from({ length: batch }, (_, j) => one(j)));
};
const t0 = performance.now();
await Promise.all(
  clients.map(async (c, p) => {
    let next = p;
    await Promise.all(
      Array.from({ length: qos === 1 ? 500 : 64 }, async () => {
        while (next < N) {
          const i = next;
          next += clients.length;
          await c.publishAsync(`plant/s1/l1/m${i % 20}/t`, payload(i), { qos });
        }
      }),
    );
  }),
);
const metricsUrl = `http://127.0.0.1:${e.ready[1]}/metrics`;
const forwarded = async () => {
  const m = await (await fetch(metricsUrl)).text();
  return Number(/plantwatch_edge_forwarded_records_total\{topic="plantwatch.readings"\} (\d+)/.exec(m)?.[1] ?? 0);
};
while ((await forwarded()) < N && performance.now() - t0 < 120_000) await new Promise((r) => setTimeout(r, 20));
const secs = (performance.now() - t0) / 1000;
console.log(`QoS ${qos}, ${batch} readings/msg: ${Math.round((N * batch) / secs)} readings/s (${N} messages in ${secs.toFixed(2)} s)`);
const m = await (await fetch(metricsUrl)).text();
console.log(m.split('\n').filter((l) => /kafka_send_seconds_(sum|count)|kafka_errors|spooled/.test(l) && !l.startsWith('#')).join('\n'));
await Promise.all(clients.map((c) => c.endAsync()));
await e.kill('SIGTERM');
await k.kill('SIGTERM');

// Top functions by self time.
const prof = JSON.parse(readFileSync(profilePath, 'utf8')) as { nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[]; samples: number[]; timeDeltas: number[] };
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const self = new Map<string, number>();
let total = 0;
prof.samples.forEach((id, i) => {
  const cf = byId.get(id)!.callFrame;
  const mod = /node_modules\/([^/]+)/.exec(cf.url)?.[1] ?? cf.url.split('/').slice(-2).join('/');
  const key = `${cf.functionName || '(anonymous)'} ${mod}:${cf.lineNumber}`;
  self.set(key, (self.get(key) ?? 0) + (prof.timeDeltas[i] ?? 0));
  total += prof.timeDeltas[i] ?? 0;
});
for (const [key, t] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`${((100 * t) / total).toFixed(1).padStart(5)}%  ${key}`);
