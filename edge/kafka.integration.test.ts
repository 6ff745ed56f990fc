/**
 * The edge bridge against the real embedded Kafka-protocol broker (test/helpers/kafka.ts):
 * relay, dead letters under fuzz, and a Kafka outage with 0 loss and per-key order.
 * The 30 s outage of the issue runs with PLANTWATCH_LONG=1 (and in `npm run bench:edge`).
 */
import { afterEach, describe, expect, it } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../common/logger.ts';
import { createRegistry } from '../common/metrics.ts';
import { DeadLetter, Reading } from '../common/messages.ts';
import { startTestBroker, type TestBroker } from '../test/helpers/kafka.ts';
import { start, type EdgeHandle } from './index.ts';
import type { EdgeConfigInput } from './config.schema.ts';
import { readTopic } from './testdata/kafka-read.ts';
import { freePort } from '../test/helpers/processes.ts';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f().catch(() => undefined);
});

async function kafkaBroker(opts: Parameters<typeof startTestBroker>[0] = {}): Promise<TestBroker> {
  const k = await startTestBroker(opts);
  cleanup.push(() => k.close());
  return k;
}

async function edgeOn(k: TestBroker, cfg: EdgeConfigInput = {}): Promise<EdgeHandle> {
  const edge = await start(
    { httpPort: null, ...cfg, embedded: { host: '127.0.0.1', port: 0, ...cfg.embedded } },
    { logger: silentLogger(), metrics: createRegistry('edge'), kafka: k.kafka, dataDir: mkdtempSync(join(tmpdir(), 'pw-edge-')) },
  );
  cleanup.push(() => edge.close());
  return edge;
}

async function device(url: string, opts: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, { reconnectPeriod: 200, ...opts });
  cleanup.push(() => c.endAsync(true));
  return c;
}

/** Publishes with up to `window` QoS 1 messages in flight; resolves when all are acknowledged. */
async function publishWindowed(c: MqttClient, items: { topic: string; payload: string }[], window = 200): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: window }, async () => {
      while (next < items.length) {
        const it = items[next++];
        await c.publishAsync(it.topic, it.payload, { qos: 1 });
      }
    }),
  );
}

describe('edge > Kafka (embedded Kafka-protocol broker)', () => {
  it('relays readings with key, headers and gzip batches; values parse as Reading / Reading[]', async () => {
    const k = await kafkaBroker();
    const edge = await edgeOn(k);
    const dev = await device(edge.mqttUrl, { clientId: 'press-7' });
    await dev.publishAsync('plant/s1/l1/m1/temp', JSON.stringify({ ts: Date.now(), value: 20.5, unit: 'degC' }), { qos: 1 });
    await dev.publishAsync('plant/s1/l1/m1/rpm', JSON.stringify([{ ts: Date.now(), value: 1 }, { ts: Date.now(), value: 2 }]), { qos: 1 });
    const recs = await readTopic(k.kafka, 'plantwatch.readings', 2);
    expect(recs).toHaveLength(2);
    expect(recs.every((r) => r.key === 's1/l1/m1')).toBe(true);
    const single = recs.find((r) => !r.value.startsWith('['))!;
    expect(Reading.parse(JSON.parse(single.value))).toMatchObject({ sensor: 'temp', value: 20.5, unit: 'degC' });
    expect(single.headers).toMatchObject({ 'mqtt.topic': 'plant/s1/l1/m1/temp', 'mqtt.client_id': 'press-7', 'mqtt.qos': '1' });
    const batch = recs.find((r) => r.value.startsWith('['))!;
    expect((JSON.parse(batch.value) as unknown[]).map((x) => Reading.parse(x).value)).toEqual([1, 2]);
  });

  it('fuzz: 10k hostile payloads mixed with 10k good ones: bridge stays up, all good ones forwarded, bad ones dead-lettered with reasons', async () => {
    const k = await kafkaBroker();
    const edge = await edgeOn(k, { validation: { maxPayloadBytes: 16 * 1024 } });
    const dev = await device(edge.mqttUrl);
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const bad = [
      () => Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 64) }, () => Math.floor(rand() * 256))).toString('latin1'),
      () => '{"ts":',
      () => 'NaN',
      () => JSON.stringify({ ts: Date.now(), value: 'high' }),
      () => JSON.stringify({ value: 3 }),
      () => JSON.stringify({ ts: 1, value: 3 }),
      () => JSON.stringify({ ts: Date.now() + 86_400_000, value: 3 }),
      () => 'x'.repeat(20_000),
      () => '[' .repeat(5000),
      () => JSON.stringify([{ ts: Date.now(), value: null }]),
    ];
    const items: { topic: string; payload: string }[] = [];
    for (let i = 0; i < 10_000; i++) {
      items.push({ topic: `plant/s1/l1/m${i % 5}/t`, payload: JSON.stringify({ ts: Date.now(), value: i }) });
      items.push({ topic: `plant/s1/l1/m${i % 5}/t`, payload: bad[i % bad.length]() });
    }
    await publishWindowed(dev, items);
    const good = await readTopic(k.kafka, 'plantwatch.readings', 10_000);
    expect(good).toHaveLength(10_000);
    expect(new Set(good.map((r) => Reading.parse(JSON.parse(r.value)).value)).size).toBe(10_000);
    const dead = await readTopic(k.kafka, 'plantwatch.deadletter', 10_000);
    expect(dead).toHaveLength(10_000);
    const codes = new Map<string, number>();
    for (const d of dead) {
      const dl = DeadLetter.parse(JSON.parse(d.value));
      expect(dl.reason.length).toBeGreaterThan(0);
      codes.set(dl.code, (codes.get(dl.code) ?? 0) + 1);
    }
    expect(Object.fromEntries(codes)).toEqual({ PAYLOAD_NOT_DECODABLE: 3000, READING_INVALID: 4000, TIMESTAMP_OUT_OF_RANGE: 2000, PAYLOAD_OVERSIZE: 1000 });
    expect(dev.connected).toBe(true);
  }, 120_000);

  const outageMs = process.env.PLANTWATCH_LONG === '1' ? 30_000 : 5_000;
  it(`Kafka stopped for ${outageMs / 1000} s while devices keep publishing: 0 lost, per-key order kept`, async () => {
    const port = await freePort();
    const dataDir = mkdtempSync(join(tmpdir(), 'pw-edge-kafka-'));
    let k = await startTestBroker({ port, dataDir, keepData: true });
    const first = k;
    cleanup.push(() => first.close());
    const edge = await edgeOn(k, { kafka: { sendTimeoutMs: 1000, retryInitialMs: 100, retryMaxMs: 500 } });
    const devices = await Promise.all([0, 1, 2, 3].map((d) => device(edge.mqttUrl, { clientId: `dev-${d}` })));
    const acked: number[][] = devices.map(() => []);
    let stop = false;
    const publishers = devices.map(async (dev, d) => {
      for (let seq = 0; !stop; seq++) {
        await dev.publishAsync(`plant/s1/l1/dev${d}/seq`, JSON.stringify({ ts: Date.now(), value: seq }), { qos: 1 });
        acked[d].push(seq);
        if (seq % 20 === 0) await new Promise((r) => setTimeout(r, 2));
      }
    });
    await new Promise((r) => setTimeout(r, 1000));
    await k.close(); // Kafka gone
    const ackedAtStop = acked.reduce((n, a) => n + a.length, 0);
    await new Promise((r) => setTimeout(r, outageMs));
    const ackedDuringOutage = acked.reduce((n, a) => n + a.length, 0) - ackedAtStop;
    expect(edge.forwarderMode()).toBe('spool');
    k = await startTestBroker({ port, dataDir, keepData: true });
    const second = k;
    cleanup.push(() => second.close());
    await new Promise((r) => setTimeout(r, 1000));
    stop = true;
    await Promise.all(publishers);
    const total = acked.reduce((n, a) => n + a.length, 0);
    const recs = await readTopic(k.kafka, 'plantwatch.readings', total, { timeoutMs: 60_000 });
    const seen = devices.map(() => new Set<number>());
    const lastPerKey = new Map<string, number>();
    let orderViolations = 0;
    for (const r of recs) {
      const reading = Reading.parse(JSON.parse(r.value));
      const d = Number(reading.machine.slice(3));
      seen[d].add(reading.value);
      const prev = lastPerKey.get(r.key) ?? -1;
      // A duplicate (at-least-once) may repeat an older value; a new value must never jump back.
      if (reading.value < prev && !seen[d].has(reading.value)) orderViolations++;
      if (reading.value > prev) lastPerKey.set(r.key, reading.value);
    }
    const lost = acked.reduce((n, a, d) => n + a.filter((s) => !seen[d].has(s)).length, 0);
    const unique = seen.reduce((n, s) => n + s.size, 0);
    console.log(`outage ${outageMs / 1000} s: ${total} readings acknowledged (${ackedDuringOutage} during the outage), ${recs.length} Kafka records, lost ${lost}, duplicates ${recs.length - unique}, order violations ${orderViolations}`);
    expect(ackedDuringOutage).toBeGreaterThan(100); // devices kept going: their data went to the spool
    expect(lost).toBe(0);
    expect(orderViolations).toBe(0);
    // Within one key the partition order equals the device order (duplicates aside).
    for (const [key, list] of groupBy(recs)) {
      const values = list.map((r) => (JSON.parse(r.value) as Reading).value);
      const firstSeen = values.filter((v, i) => values.indexOf(v) === i);
      expect(firstSeen, key).toEqual([...firstSeen].sort((a, b) => a - b));
    }
    expect(edge.forwarderMode()).toBe('direct');
  }, 120_000);
});

function groupBy(recs: { key: string; value: string; partition: number; offset: string }[]) {
  const m = new Map<string, typeof recs>();
  for (const r of recs) {
    if (!m.has(r.key)) m.set(r.key, []);
    m.get(r.key)!.push(r);
  }
  for (const list of m.values()) list.sort((a, b) => Number(BigInt(a.offset) - BigInt(b.offset)));
  return m;
}
