/**
 * npm run bench:edge — MQTT → Kafka relay throughput of the edge bridge, beside the two raw rates
 * measured in the same run:
 *   - raw MQTT: the same aedes broker module with allow-all hooks and no Kafka, publishers → broker
 *     → one subscriber (readings/s received);
 *   - raw kafkajs: sendBatch of the records the bridge writes (Reading JSON + MQTT headers; 1000 per
 *     request, gzip, acks=-1, one request in flight, as the bridge does) to the Kafka-protocol broker.
 * Topology: Kafka broker, MQTT broker / bridge each in their own process (edge/testdata/*-runner.ts);
 * publishers, subscriber and raw producer in this process. Payloads are the default contract:
 * `{"ts","value"}` (batch 1) or an array of 10 of them (batched JSON).
 *
 * Latency: QoS 1 = publish → PUBACK at the device, which the bridge sends only after Kafka acked,
 * so it is publish → Kafka ack. QoS 0 has no ack: p50/p99 come from the bridge's histogram
 * `plantwatch_edge_ack_delay_seconds` (receipt → Kafka ack), interpolated within buckets.
 *
 * Options: --quick (fewer messages), PLANTWATCH_LONG=1 adds the 30 s Kafka outage scenario
 * (0 lost, per-key order) of issue 4. Figures on this shared 2-core machine are noisy.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { createKafkaClients, ensureTopics, CompressionTypes, PLATFORM_TOPICS } from '../common/kafka.ts';
import { KafkaClientConfig } from '../common/config/fragments.ts';
import { silentLogger } from '../common/logger.ts';
import { spawnRunner, type Runner } from '../edge/testdata/spawn.ts';
import { readTopic } from '../edge/testdata/kafka-read.ts';

const quick = process.argv.includes('--quick');
const long = process.env.PLANTWATCH_LONG === '1' || process.argv.includes('--outage');
const PUBLISHERS = 4;
const MACHINES = 20;
const runners: Runner[] = [];
const tmpDirs: string[] = [];

function tmp(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tmpDirs.push(d);
  return d;
}

function payload(batch: number, i: number): string {
  const now = Date.now();
  if (batch === 1) return JSON.stringify({ ts: now, value: i });
  return JSON.stringify(Array.from({ length: batch }, (_, j) => ({ ts: now + j, value: i + j / 100 })));
}

/** The record the bridge writes for one device message: Reading JSON (or an array) plus MQTT headers. */
function bridgeRecord(batch: number, i: number): { key: string; value: string; headers: Record<string, string> } {
  const now = Date.now();
  const m = `m${i % MACHINES}`;
  const reading = (j: number) => ({ site: 's1', line: 'l1', machine: m, sensor: 'temp', ts: now + j, value: i + j / 100, receivedAt: now });
  return {
    key: `s1/l1/${m}`,
    value: JSON.stringify(batch === 1 ? reading(0) : Array.from({ length: batch }, (_, j) => reading(j))),
    headers: { 'mqtt.topic': `plant/s1/l1/${m}/temp`, 'mqtt.client_id': 'bench-dev-0', 'mqtt.qos': '1' },
  };
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

interface Row {
  name: string;
  qos: number | '-';
  batch: number;
  readingsPerSec: number;
  p50: number;
  p99: number;
  baseline?: number;
  baselineName?: string;
}

async function connectPublishers(url: string, prefix: string): Promise<MqttClient[]> {
  return Promise.all(Array.from({ length: PUBLISHERS }, (_, p) => mqtt.connectAsync(url, { clientId: `${prefix}-${p}-${process.pid}`, reconnectPeriod: 0 })));
}

/** Each publisher sends its share with `window` publishes outstanding; returns per-message latencies (ms). */
async function publishAll(clients: MqttClient[], messages: number, batch: number, qos: 0 | 1, window: number, topicPrefix: string): Promise<number[]> {
  const lat: number[] = [];
  await Promise.all(
    clients.map(async (c, p) => {
      let next = p;
      await Promise.all(
        Array.from({ length: window }, async () => {
          while (next < messages) {
            const i = next;
            next += clients.length;
            const t0 = performance.now();
            await c.publishAsync(`${topicPrefix}/s1/l1/m${i % MACHINES}/temp`, payload(batch, i), { qos });
            if (qos === 1) lat.push(performance.now() - t0);
          }
        }),
      );
    }),
  );
  return lat.sort((a, b) => a - b);
}

async function rawMqtt(url: string, qos: 0 | 1, batch: number, messages: number): Promise<Row> {
  const sub = await mqtt.connectAsync(url, { clientId: `bench-sub-${process.pid}`, reconnectPeriod: 0 });
  await sub.subscribeAsync('raw/#', { qos });
  const sendTimes = new Float64Array(messages);
  const lat: number[] = [];
  let received = 0;
  let lastAt = 0;
  const done = new Promise<void>((resolve) => {
    sub.on('message', (_t, buf) => {
      const doc = JSON.parse(buf.toString()) as { value: number } | { value: number }[];
      const i = Math.round(Array.isArray(doc) ? doc[0].value : doc.value);
      lat.push(performance.now() - sendTimes[i]);
      received++;
      lastAt = performance.now();
      if (received === messages) resolve();
    });
  });
  const pubs = await connectPublishers(url, 'bench-raw');
  const started = performance.now();
  await Promise.all(
    pubs.map(async (c, p) => {
      let next = p;
      await Promise.all(
        Array.from({ length: qos === 1 ? 500 : 64 }, async () => {
          while (next < messages) {
            const i = next;
            next += pubs.length;
            sendTimes[i] = performance.now();
            await c.publishAsync(`raw/s1/l1/m${i % MACHINES}/temp`, payload(batch, i), { qos });
          }
        }),
      );
    }),
  );
  // QoS 0 may drop under load; measure what arrived within 10 s after the last publish.
  await Promise.race([done, new Promise((r) => setTimeout(r, 10_000))]);
  const elapsed = (lastAt - started) / 1000;
  await Promise.all([...pubs, sub].map((c) => c.endAsync(true)));
  lat.sort((a, b) => a - b);
  return { name: `raw MQTT (aedes) pub→sub${received < messages ? ` [${messages - received} lost]` : ''}`, qos, batch, readingsPerSec: (received * batch) / elapsed, p50: pct(lat, 50), p99: pct(lat, 99) };
}

async function rawKafka(kafka: ReturnType<typeof createKafkaClients>, batch: number, messages: number): Promise<Row> {
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  const lat: number[] = [];
  const started = performance.now();
  for (let i = 0; i < messages; i += 1000) {
    const n = Math.min(1000, messages - i);
    const msgs = Array.from({ length: n }, (_, j) => bridgeRecord(batch, i + j));
    const t0 = performance.now();
    await producer.sendBatch({ acks: -1, compression: CompressionTypes.GZIP, topicMessages: [{ topic: 'bench.raw', messages: msgs }] });
    lat.push(performance.now() - t0);
  }
  const elapsed = (performance.now() - started) / 1000;
  await producer.disconnect();
  lat.sort((a, b) => a - b);
  return { name: 'raw kafkajs sendBatch(1000)', qos: '-', batch, readingsPerSec: (messages * batch) / elapsed, p50: pct(lat, 50), p99: pct(lat, 99) };
}

async function scrape(httpUrl: string): Promise<string> {
  return (await fetch(`${httpUrl}/metrics`)).text();
}

function metricValue(text: string, name: string, labelFilter = ''): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || line.startsWith('#')) continue;
    if (labelFilter && !line.includes(labelFilter)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== '{' && rest[0] !== ' ') continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

function histogram(text: string, name: string): { le: number; count: number }[] {
  const out: { le: number; count: number }[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}_bucket`)) continue;
    const le = /le="([^"]+)"/.exec(line)?.[1] ?? '+Inf';
    out.push({ le: le === '+Inf' ? Infinity : Number(le), count: Number(line.slice(line.lastIndexOf(' ') + 1)) });
  }
  return out.sort((a, b) => a.le - b.le);
}

/** Quantile (ms) of the difference of two cumulative histograms, linear within a bucket. */
function histQuantile(before: { le: number; count: number }[], after: { le: number; count: number }[], q: number): number {
  const diff = after.map((b, i) => ({ le: b.le, count: b.count - (before[i]?.count ?? 0) }));
  const total = diff[diff.length - 1]?.count ?? 0;
  if (total === 0) return NaN;
  const target = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const b of diff) {
    if (b.count >= target) {
      if (!Number.isFinite(b.le)) return prevLe * 1000;
      const frac = b.count === prevCount ? 0 : (target - prevCount) / (b.count - prevCount);
      return (prevLe + frac * (b.le - prevLe)) * 1000;
    }
    prevLe = b.le;
    prevCount = b.count;
  }
  return NaN;
}

async function bridgeRun(mqttUrl: string, httpUrl: string, qos: 0 | 1, batch: number, messages: number): Promise<Row> {
  const pubs = await connectPublishers(mqttUrl, 'bench-dev');
  const before = await scrape(httpUrl);
  const fwdBefore = metricValue(before, 'plantwatch_edge_forwarded_records_total', 'topic="plantwatch.readings"');
  const histBefore = histogram(before, 'plantwatch_edge_ack_delay_seconds');
  const started = performance.now();
  const lat = await publishAll(pubs, messages, batch, qos, qos === 1 ? 500 : 64, 'plant');
  let fwd = 0;
  let after = '';
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    after = await scrape(httpUrl);
    fwd = metricValue(after, 'plantwatch_edge_forwarded_records_total', 'topic="plantwatch.readings"') - fwdBefore;
    if (fwd >= messages) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const elapsed = (performance.now() - started) / 1000;
  await Promise.all(pubs.map((c) => c.endAsync(true)));
  const histAfter = histogram(after, 'plantwatch_edge_ack_delay_seconds');
  const p50 = qos === 1 ? pct(lat, 50) : histQuantile(histBefore, histAfter, 0.5);
  const p99 = qos === 1 ? pct(lat, 99) : histQuantile(histBefore, histAfter, 0.99);
  return { name: `edge bridge MQTT→Kafka${fwd < messages ? ` [${messages - fwd} missing]` : ''}`, qos, batch, readingsPerSec: (Math.min(fwd, messages) * batch) / elapsed, p50, p99 };
}

async function outageScenario(): Promise<string> {
  // Kafka in its own process on a fixed port, stopped for 30 s while 4 devices keep publishing QoS 1.
  const kDir = tmp('pw-bench-outage-kafka-');
  let k = await spawnRunner('edge/testdata/kafka-runner.ts', { KAFKA_DATA_DIR: kDir, KAFKA_PORT: '0' });
  runners.push(k);
  const broker = k.ready[0];
  const port = broker.split(':')[1];
  const kafka = createKafkaClients({ ...KafkaClientConfig.parse({}), clientId: 'bench-outage', brokers: [broker] }, silentLogger());
  await ensureTopics(kafka, PLATFORM_TOPICS);
  const edge = await spawnRunner('edge/testdata/edge-runner.ts', { KAFKA_BROKERS: broker, EDGE_DATA_DIR: tmp('pw-bench-outage-edge-'), EDGE_MQTT_PORT: '0', EDGE_CONFIG: JSON.stringify({ kafka: { sendTimeoutMs: 2000 } }) });
  runners.push(edge);
  const url = `mqtt://127.0.0.1:${edge.ready[0]}`;
  const devs = await Promise.all([0, 1, 2, 3].map((d) => mqtt.connectAsync(url, { clientId: `outage-${d}`, reconnectPeriod: 200 })));
  const acked = devs.map(() => [] as number[]);
  let stop = false;
  const pubs = devs.map(async (c, d) => {
    for (let seq = 0; !stop; seq++) {
      await c.publishAsync(`plant/out/l1/dev${d}/seq`, JSON.stringify({ ts: Date.now(), value: seq }), { qos: 1 });
      acked[d].push(seq);
      if (seq % 50 === 0) await new Promise((r) => setTimeout(r, 5));
    }
  });
  await new Promise((r) => setTimeout(r, 3000));
  await k.kill('SIGTERM');
  const atStop = acked.reduce((n, a) => n + a.length, 0);
  await new Promise((r) => setTimeout(r, 30_000));
  const during = acked.reduce((n, a) => n + a.length, 0) - atStop;
  k = await spawnRunner('edge/testdata/kafka-runner.ts', { KAFKA_DATA_DIR: kDir, KAFKA_PORT: port });
  runners.push(k);
  await new Promise((r) => setTimeout(r, 3000));
  stop = true;
  await Promise.all(pubs);
  await Promise.all(devs.map((c) => c.endAsync()));
  const total = acked.reduce((n, a) => n + a.length, 0);
  const recs = await readTopic(kafka, 'plantwatch.readings', total, { timeoutMs: 120_000, settleMs: 1000 });
  const seen = devs.map(() => new Set<number>());
  const firstSeenOrder = new Map<string, number[]>();
  for (const r of recs.sort((a, b) => a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset)))) {
    const v = JSON.parse(r.value) as { machine: string; value: number };
    const d = Number(v.machine.slice(3));
    if (!seen[d].has(v.value)) {
      seen[d].add(v.value);
      if (!firstSeenOrder.has(r.key)) firstSeenOrder.set(r.key, []);
      firstSeenOrder.get(r.key)!.push(v.value);
    }
  }
  const lost = acked.reduce((n, a, d) => n + a.filter((s) => !seen[d].has(s)).length, 0);
  let orderBreaks = 0;
  for (const list of firstSeenOrder.values()) for (let i = 1; i < list.length; i++) if (list[i] < list[i - 1]) orderBreaks++;
  await edge.kill('SIGTERM');
  await k.kill('SIGTERM');
  return `Kafka outage 30 s: ${total} QoS 1 readings acknowledged (${during} during the outage, spooled), ${recs.length} Kafka records, lost ${lost}, duplicates ${recs.length - (total - lost)}, per-key order breaks ${orderBreaks}`;
}

async function main(): Promise<void> {
  const n = (full: number) => (quick ? Math.round(full / 5) : full);
  console.log(`edge benchmark${quick ? ' (--quick)' : ''}: ${PUBLISHERS} publishers, ${MACHINES} machines; Kafka broker, MQTT broker and bridge in their own processes`);

  const kafkaRunner = await spawnRunner('edge/testdata/kafka-runner.ts', { KAFKA_DATA_DIR: tmp('pw-bench-kafka-'), KAFKA_PORT: '0' });
  runners.push(kafkaRunner);
  const brokers = [kafkaRunner.ready[0]];
  const kafka = createKafkaClients({ ...KafkaClientConfig.parse({}), clientId: 'bench', brokers }, silentLogger());
  await ensureTopics(kafka, [...PLATFORM_TOPICS, { topic: 'bench.raw', numPartitions: 6 }]);

  const rows: Row[] = [];
  const progress = (r: Row) => console.error(`  … ${r.name} QoS ${r.qos} ×${r.batch}: ${Math.round(r.readingsPerSec)} readings/s`);
  const rawK1 = await rawKafka(kafka, 1, n(100_000));
  progress(rawK1);
  const rawK10 = await rawKafka(kafka, 10, n(30_000));
  progress(rawK10);
  rows.push(rawK1, rawK10);

  const mqttRunner = await spawnRunner('edge/testdata/mqtt-runner.ts', { MQTT_PORT: '0' });
  runners.push(mqttRunner);
  const rawUrl = `mqtt://127.0.0.1:${mqttRunner.ready[0]}`;
  const rawM: Record<string, Row> = {};
  for (const [qos, batch, msgs] of [
    [0, 1, n(100_000)],
    [1, 1, n(60_000)],
    [0, 10, n(30_000)],
    [1, 10, n(20_000)],
  ] as const) {
    const r = await rawMqtt(rawUrl, qos, batch, msgs);
    progress(r);
    rawM[`${qos}/${batch}`] = r;
    rows.push(r);
  }
  await mqttRunner.kill('SIGTERM');

  const edge = await spawnRunner('edge/testdata/edge-runner.ts', { KAFKA_BROKERS: brokers.join(','), EDGE_DATA_DIR: tmp('pw-bench-edge-'), EDGE_MQTT_PORT: '0', EDGE_HTTP_PORT: '0' });
  runners.push(edge);
  const mqttUrl = `mqtt://127.0.0.1:${edge.ready[0]}`;
  const httpUrl = `http://127.0.0.1:${edge.ready[1]}`;
  for (const [qos, batch, msgs] of [
    [0, 1, n(100_000)],
    [1, 1, n(60_000)],
    [0, 10, n(30_000)],
    [1, 10, n(20_000)],
  ] as const) {
    const r = await bridgeRun(mqttUrl, httpUrl, qos, batch, msgs);
    progress(r);
    const rm = rawM[`${qos}/${batch}`];
    const rk = batch === 1 ? rawK1 : rawK10;
    const slower = rm.readingsPerSec < rk.readingsPerSec ? rm : rk;
    r.baseline = slower.readingsPerSec;
    r.baselineName = slower === rm ? 'raw MQTT' : 'raw kafkajs';
    rows.push(r);
  }
  await edge.kill('SIGTERM');

  const fmt = (x: number, d = 0) => (Number.isFinite(x) ? x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : '-');
  console.log('');
  console.log('| scenario | QoS | readings/msg | readings/s | p50 ms | p99 ms | vs slower raw (same QoS, batch) |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const ratio = r.baseline ? `${fmt((100 * r.readingsPerSec) / r.baseline)}% of ${r.baselineName} ${fmt(r.baseline)}/s` : '(baseline)';
    console.log(`| ${r.name} | ${r.qos} | ${r.batch} | ${fmt(r.readingsPerSec)} | ${fmt(r.p50, 1)} | ${fmt(r.p99, 1)} | ${ratio} |`);
  }
  console.log('');
  console.log('csv: scenario,qos,batch,readings_per_s,p50_ms,p99_ms,baseline_readings_per_s');
  for (const r of rows) console.log(`csv: "${r.name}",${r.qos},${r.batch},${r.readingsPerSec.toFixed(0)},${r.p50.toFixed(2)},${r.p99.toFixed(2)},${r.baseline?.toFixed(0) ?? ''}`);
  const bridge = rows.filter((r) => r.baseline);
  const q0 = bridge.find((r) => r.qos === 0 && r.batch === 10)!;
  const q1 = bridge.find((r) => r.qos === 1 && r.batch === 10)!;
  console.log('');
  console.log(`goal ≥70% of the slower raw rate: ${bridge.map((r) => `QoS${r.qos}×${r.batch} ${fmt((100 * r.readingsPerSec) / (r.baseline as number))}%`).join(', ')}`);
  console.log(`goal ≥50k readings/s QoS 0 batched: ${fmt(q0.readingsPerSec)}/s ${q0.readingsPerSec >= 50_000 ? 'met' : 'NOT met'}; ≥20k/s QoS 1 batched: ${fmt(q1.readingsPerSec)}/s ${q1.readingsPerSec >= 20_000 ? 'met' : 'NOT met'}`);

  if (long) {
    console.log('');
    console.log(await outageScenario());
  }
}

async function cleanup(): Promise<void> {
  for (const r of runners.reverse()) await r.kill('SIGKILL');
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
}

main()
  .then(cleanup, async (err) => {
    console.error(err);
    for (const r of runners) if (r.stderr()) console.error(`runner stderr: ${r.stderr().slice(-2000)}`);
    await cleanup();
    process.exitCode = 1;
  })
  .finally(() => setTimeout(() => process.exit(), 100).unref());
