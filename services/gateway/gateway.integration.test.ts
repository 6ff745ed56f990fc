/**
 * The gateway on the embedded Kafka broker: two instances side by side, each with its own consumer
 * group from the latest offset, both deliver everything produced after they started to their own
 * sockets; records that fail validation are counted and skipped without stopping the stream.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { io as connect, type Socket } from 'socket.io-client';
import { startTestBroker, type TestBroker } from '../../test/helpers/kafka.ts';
import { TOPICS } from '../../common/topics.ts';
import type { Producer } from '../../common/kafka.ts';
import { startTestGateway, reading, testAlert, VIEWER_TOKEN, type TestGateway } from './testing.ts';
import type { LivePayload, SubscribeAck } from './protocol.ts';

describe('services > gateway > kafka', () => {
  let broker: TestBroker;
  let a: TestGateway;
  let b: TestGateway;
  let producer: Producer;
  const sockets: Socket[] = [];

  beforeAll(async () => {
    broker = await startTestBroker();
    producer = broker.kafka.producer();
    await producer.connect();
    a = await startTestGateway({ instanceId: 'gw-a' }, { kafka: broker.kafka });
    b = await startTestGateway({ instanceId: 'gw-b' }, { kafka: broker.kafka });
  });
  afterAll(async () => {
    for (const s of sockets) s.disconnect();
    await producer?.disconnect();
    await a?.close();
    await b?.close();
    await broker?.close();
  });

  async function watch(url: string): Promise<LivePayload[]> {
    const s = connect(url, { transports: ['websocket'], auth: { token: VIEWER_TOKEN }, forceNew: true });
    sockets.push(s);
    const got: LivePayload[] = [];
    s.on('live', (p: LivePayload) => got.push(p));
    const ack: SubscribeAck = await s.timeout(10_000).emitWithAck('subscribe', { scope: { site: 'plant1', line: 'lineA', machine: 'm1' } });
    expect(ack.ok).toBe(true);
    return got;
  }

  it('delivers readings, scores and alerts from Kafka through two independent gateways', async () => {
    const [ga, gb] = await Promise.all([watch(a.gw.url), watch(b.gw.url)]);
    // Wait until both consumer groups are live (healthz turns 200 once the group has joined).
    for (const g of [a, b]) await expect.poll(async () => (await fetch(`${g.gw.url}/healthz`)).status, { timeout: 30_000 }).toBe(200);
    const t0 = Date.now();
    const key = 'plant1/lineA/m1';
    const send = async (i: number) =>
      producer.send({ topic: TOPICS.readings, messages: [{ key, value: JSON.stringify([reading('m1', 'temp', t0 + i * 300, i), reading('m1', 'rpm', t0 + i * 300, i * 10)]) }] });
    // Produce until both have seen data (the first fetch position is "latest" when the group joined).
    let i = 0;
    while (!(ga.length > 0 && gb.length > 0) && i < 100) {
      await send(i++);
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(i).toBeLessThan(100);
    const base = i;
    await producer.send({ topic: TOPICS.readings, messages: [{ key, value: 'not json' }, { key, value: JSON.stringify({ site: 'plant1' }) }] });
    for (let j = 0; j < 5; j++) {
      await send(base + j);
      await new Promise((r) => setTimeout(r, 300));
    }
    await producer.send({
      topic: TOPICS.scores,
      messages: [{ key, value: JSON.stringify({ kind: 'machine', site: 'plant1', line: 'lineA', machine: 'm1', ts: t0 + 5000, rawScore: 2, likelihood: 0.8, contributions: {}, modelVersion: 'v', warmingUp: false }) }],
    });
    await producer.send({ topic: TOPICS.alerts, messages: [{ key, value: JSON.stringify(testAlert({ site: 'plant1', line: 'lineA', machine: 'm1', updatedAt: t0 + 5000 })) }] });
    for (const got of [ga, gb]) {
      await expect.poll(() => got.some((p) => p.alerts?.length) && got.some((p) => p.scores?.length), { timeout: 15_000 }).toBe(true);
      const temps = got.flatMap((p) => p.readings ?? []).filter((r) => r.sensor === 'temp').map((r) => r.value);
      // Everything after the first received reading arrives, in order, once (5 readings at 3.3/s < 4/s limit).
      const from = temps[0];
      expect(temps).toEqual(Array.from({ length: base + 5 - from }, (_, k) => from + k));
    }
    for (const g of [a, b]) {
      const m = await (await fetch(`${g.gw.url}/metrics`)).text();
      expect(m).toMatch(/plantwatch_gateway_invalid_records_total\{topic="plantwatch.readings"[^}]*\} 2/);
    }
  });
});
