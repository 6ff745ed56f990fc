/**
 * The alert component end to end on the embedded Kafka broker: readings and scores in through
 * Kafka, signed webhooks out to real local HTTP receivers, alert changes on `plantwatch.alerts`,
 * refused records on `plantwatch.deadletter`, the REST API on the component's own port.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { ComponentContext } from '../../common/component.ts';
import type { Consumer, Producer } from '../../common/kafka.ts';
import { silentLogger } from '../../common/logger.ts';
import { Alert, DeadLetter, type Reading, type Score } from '../../common/messages.ts';
import { createRegistry } from '../../common/metrics.ts';
import { TOPICS, machineKey } from '../../common/topics.ts';
import { describeWith } from '../../test/helpers/integration.ts';
import { startTestBroker, type TestBroker } from '../../test/helpers/kafka.ts';
import { startWebhookReceiver, type ReceivedRequest, type WebhookReceiver } from '../../test/helpers/webhook-receiver.ts';
import { AlertsConfig, HttpAlertsApi, start, type AlertsHandle } from './index.ts';
import type { AlertsConfigInput } from './config.schema.ts';
import type { GenericPayload } from './webhook.ts';

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

/** The receiver's side of Standard Webhooks, written out with node:crypto. */
function verified(req: ReceivedRequest): GenericPayload {
  const id = String(req.headers['webhook-id']);
  const ts = String(req.headers['webhook-timestamp']);
  const expected = createHmac('sha256', Buffer.from(SECRET.slice(6), 'base64')).update(`${id}.${ts}.${req.body}`).digest();
  const given = Buffer.from(String(req.headers['webhook-signature']).replace(/^v1,/, ''), 'base64');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new Error(`bad signature on ${id}`);
  if (Math.abs(Date.now() / 1000 - Number(ts)) > 300) throw new Error('stale timestamp');
  return JSON.parse(req.body) as GenericPayload;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitUntil(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

describeWith([], 'services > alerts > component on the embedded Kafka broker', () => {
  let broker: TestBroker;
  let producer: Producer;
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  let n = 0;

  beforeAll(async () => {
    broker = await startTestBroker();
    producer = broker.kafka.producer();
    await producer.connect();
  });
  afterAll(async () => {
    await producer?.disconnect();
    await broker?.close();
  });
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  async function receiver(respond?: WebhookReceiver['respond']): Promise<WebhookReceiver> {
    const r = await startWebhookReceiver(respond);
    cleanups.push(() => r.close());
    return r;
  }

  function context(dataDir: string): ComponentContext {
    return { logger: silentLogger(), metrics: createRegistry('alerts'), kafka: broker.kafka, dataDir };
  }

  function tempDir(): string {
    const d = mkdtempSync(join(tmpdir(), 'plantwatch-alerts-int-'));
    cleanups.push(() => rmSync(d, { recursive: true, force: true }));
    return d;
  }

  /** Each test gets its own consumer group and machine names, so tests on one broker do not mix. */
  function config(rx: WebhookReceiver, extra: AlertsConfigInput = {}): AlertsConfig {
    n++;
    return AlertsConfig.parse({
      rules: [
        { id: 'anomaly', type: 'likelihood', threshold: 0.9, severity: 'critical' },
        { id: 'overheat', type: 'threshold', above: 100, hysteresis: 5, scope: { sensor: 'temp' } },
        { id: 'sensor-offline', type: 'deadman', per: 'sensor', afterMs: 2500 },
      ],
      receivers: [{ name: 'ops', url: rx.url, secret: SECRET, rateLimit: { perSecond: 50, burst: 50 }, retry: { initialDelayMs: 200, maxDelayMs: 2000 } }],
      grouping: { groupWaitMs: 300, groupIntervalMs: 600 },
      evaluationIntervalMs: 100,
      httpHost: '127.0.0.1',
      httpPort: 0,
      kafka: { groupId: `alerts-test-${n}-${Date.now()}`, fromBeginning: false },
      ...extra,
    });
  }

  /**
   * Starts the component and returns once its consumer reads the machine's partitions: the consumer
   * starts at the latest offset, so the test produces only after a probe on each topic (same key,
   * same partition) came through. The probes change no alert state: a warming-up score is ignored
   * and a malformed reading is dead-lettered.
   */
  async function startAlerts(cfg: AlertsConfig, dataDir: string, machine: string): Promise<AlertsHandle> {
    const h = await start(cfg, context(dataDir));
    cleanups.push(() => h.close());
    await h.whenJoined();
    const consumed = async (topic: string) => (await h.service.metrics.recordsConsumed.get()).values.find((v) => v.labels.topic === topic)?.value ?? 0;
    const end = Date.now() + 20_000;
    for (;;) {
      await send(TOPICS.scores, machine, { ...score(machine, 'probe', 0), warmingUp: true });
      await send(TOPICS.readings, machine, '{"probe":true}');
      await sleep(300);
      if ((await consumed(TOPICS.scores)) > 0 && (await consumed(TOPICS.readings)) > 0) return h;
      if (Date.now() > end) throw new Error('alert consumer did not start reading');
    }
  }

  const at = (machine: string) => ({ site: 'north', line: 'l1', machine });
  const reading = (machine: string, sensor: string, value: number): Reading => ({ ...at(machine), sensor, ts: Date.now(), value, receivedAt: Date.now() });
  const score = (machine: string, sensor: string, likelihood: number, ts = Date.now()): Score => ({
    kind: 'sensor', ...at(machine), sensor, ts, value: 1, predicted: 1, lower: 0, upper: 2, rawScore: 1, likelihood, modelVersion: 'v1', warmingUp: false,
  });
  async function send(topic: string, machine: string, value: unknown): Promise<void> {
    await producer.send({ topic, messages: [{ key: machineKey(at(machine)), value: typeof value === 'string' ? value : JSON.stringify(value) }] });
  }

  async function collect(topic: string): Promise<{ values: { key: string; value: string }[]; consumer: Consumer }> {
    const values: { key: string; value: string }[] = [];
    const consumer = broker.kafka.consumer({ groupId: `collect-${topic}-${n}-${Date.now()}`, maxWaitTimeInMs: 200 });
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({ eachMessage: async ({ message }) => void values.push({ key: String(message.key), value: String(message.value) }) });
    cleanups.push(() => consumer.disconnect());
    return { values, consumer };
  }

  it('scores and readings from Kafka become signed notifications, alerts on plantwatch.alerts, dead letters for bad records', async () => {
    const rx = await receiver();
    // No deadman rule here: on a loaded machine the gap between this test's readings could trip it.
    const noDeadman = config(rx).rules.filter((r) => r.type !== 'deadman');
    const h = await startAlerts(config(rx, { rules: noDeadman }), tempDir(), 'kiln');
    const alerts = await collect(TOPICS.alerts);
    const dead = await collect(TOPICS.deadLetter);

    await send(TOPICS.scores, 'kiln', [score('kiln', 'vib', 0.3), score('kiln', 'vib', 0.97)]);
    await send(TOPICS.readings, 'kiln', reading('kiln', 'temp', 120));
    await send(TOPICS.readings, 'kiln', '{"not":"a reading"}');

    const [first] = await rx.waitForAccepted(1, 15_000);
    const p = verified(first);
    expect(p.status).toBe('firing');
    expect(p.alerts.map((a) => a.rule).sort()).toEqual(['anomaly', 'overheat']);
    expect(p.groupLabels).toEqual({ site: 'north', line: 'l1', machine: 'kiln' });

    // Both alerts resolve through Kafka too.
    await send(TOPICS.scores, 'kiln', score('kiln', 'vib', 0.05));
    await send(TOPICS.readings, 'kiln', reading('kiln', 'temp', 90));
    const [, second] = await rx.waitForAccepted(2, 15_000);
    const p2 = verified(second);
    expect(p2.status).toBe('resolved');
    expect(p2.alerts.map((a) => a.status)).toEqual(['resolved', 'resolved']);

    await waitUntil(() => alerts.values.length >= 4, 10_000, 'alerts on the topic');
    const published = alerts.values.map((v) => ({ key: v.key, alert: Alert.parse(JSON.parse(v.value)) }));
    expect(published.every((x) => x.key === 'north/l1/kiln')).toBe(true);
    expect(published.map((x) => `${x.alert.rule}:${x.alert.status}`).sort()).toEqual(['anomaly:firing', 'anomaly:resolved', 'overheat:firing', 'overheat:resolved']);

    const ours = () => dead.values.map((v) => DeadLetter.parse(JSON.parse(v.value))).filter((d) => Buffer.from(d.rawBase64, 'base64').toString() === '{"not":"a reading"}');
    await waitUntil(() => ours().length >= 1, 10_000, 'dead letter');
    expect(ours()[0]).toMatchObject({ code: 'READING_INVALID', component: 'alerts', source: { topic: TOPICS.readings } });
    expect(ours()[0].reason).toMatch(/site/);

    // The REST API on the component's port answers like the handle.
    const api = new HttpAlertsApi(h.url);
    expect(await api.list({ status: ['resolved'] })).toEqual(await h.list({ status: ['resolved'] }));
    const metrics = await (await fetch(`${h.url}/metrics`)).text();
    expect(metrics).toMatch(/plantwatch_alerts_webhook_sent_total\{receiver="ops"[^}]*\} 2/);
    expect(metrics).toMatch(/plantwatch_alerts_records_invalid_total\{topic="plantwatch.readings",code="READING_INVALID"[^}]*\} [1-9]/);
  });

  it('a storm of 1,000 anomaly scores on one machine through Kafka yields one notification', async () => {
    const rx = await receiver();
    await startAlerts(config(rx, { grouping: { groupWaitMs: 1000, groupIntervalMs: 1000 } }), tempDir(), 'mill');
    const t = Date.now();
    await producer.send({
      topic: TOPICS.scores,
      messages: Array.from({ length: 10 }, (_, batch) => ({
        key: machineKey(at('mill')),
        value: JSON.stringify(Array.from({ length: 100 }, (_, i) => score('mill', `s${batch * 100 + i}`, 0.99, t + i))),
      })),
    });
    const [only] = await rx.waitForAccepted(1, 15_000);
    await sleep(2500);
    expect(rx.requests).toHaveLength(1);
    const p = verified(only);
    expect(p.alerts.length + p.truncatedAlerts).toBe(1000);
  });

  it('deadman through Kafka: a silent sensor fires an offline alert after the configured time and resolves when it returns', async () => {
    const rx = await receiver();
    const h = await startAlerts(config(rx), tempDir(), 'pump');
    await send(TOPICS.readings, 'pump', [reading('pump', 'flow', 1), reading('pump', 'rpm', 1)]);
    const started = Date.now();
    let stop = false;
    const feeder = (async () => {
      while (!stop) {
        await send(TOPICS.readings, 'pump', reading('pump', 'rpm', 1)); // rpm keeps talking, flow is silent
        await sleep(200);
      }
    })();
    cleanups.push(async () => {
      stop = true;
      await feeder;
    });
    const [firing] = await rx.waitForAccepted(1, 15_000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2500);
    expect(verified(firing).alerts.map((a) => [a.rule, a.sensor, a.status])).toEqual([['sensor-offline', 'flow', 'firing']]);
    expect((await h.list()).map((a) => a.sensor)).toEqual(['flow']);

    await send(TOPICS.readings, 'pump', reading('pump', 'flow', 1));
    const [, resolved] = await rx.waitForAccepted(2, 15_000);
    expect(verified(resolved).alerts.map((a) => [a.sensor, a.status])).toEqual([['flow', 'resolved']]);
  });

  it('receiver down (500) for 20 s with a service restart in the middle: each notification arrives once, same webhook-id on retries', { timeout: 90_000 }, async () => {
    const downUntil = Date.now() + 20_000;
    const rx = await receiver(() => (Date.now() < downUntil ? { status: 500 } : { status: 200 }));
    const dir = tempDir();
    const cfg = config(rx);
    const a = await startAlerts(cfg, dir, 'lathe');
    await send(TOPICS.scores, 'lathe', score('lathe', 'spindle', 0.98));
    await waitUntil(() => rx.requests.length >= 2, 10_000, 'failed attempts');
    await send(TOPICS.scores, 'lathe', score('lathe', 'spindle', 0.1));
    // The resolved notification queues behind the firing one (per-receiver FIFO keeps their order).
    await waitUntil(() => a.service.outbox.depth() === 2, 10_000, 'resolved notification queued');
    await a.close();

    const b = await startAlerts(cfg, dir, 'lathe');
    const accepted = await rx.waitForAccepted(2, 40_000);
    expect(Date.now()).toBeGreaterThanOrEqual(downUntil);
    await sleep(1500);
    expect(rx.accepted()).toHaveLength(2);
    const ids = new Set(rx.requests.map((r) => String(r.headers['webhook-id'])));
    expect(ids.size).toBe(2);
    expect(accepted.map((r) => verified(r).status)).toEqual(['firing', 'resolved']);
    for (const r of rx.requests) verified(r); // every retry re-signed validly
    expect(await b.list()).toEqual([]);
  });
});
