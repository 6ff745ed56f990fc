/**
 * The alert service end to end without Kafka: the engine is fed directly, notifications go to real
 * local HTTP receivers, and every receiver checks the Standard Webhooks signature the way a
 * receiver in the field would (node:crypto only, not our own verify function).
 */
import { spawn } from 'node:child_process';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../common/logger.ts';
import type { Alert, Reading, Score } from '../../common/messages.ts';
import { createRegistry } from '../../common/metrics.ts';
import { startWebhookReceiver, type ReceivedRequest, type WebhookReceiver } from '../../test/helpers/webhook-receiver.ts';
import { AlertsConfig, type AlertsConfigInput } from './config.schema.ts';
import { AlertService } from './service.ts';
import type { GenericPayload } from './webhook.ts';
import { TOPICS } from '../../common/topics.ts';

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

/** What a receiver does with a request: check the signature and the timestamp, then parse. */
function receiverVerify(req: ReceivedRequest, secret = SECRET): GenericPayload {
  const id = String(req.headers['webhook-id']);
  const ts = String(req.headers['webhook-timestamp']);
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  const expected = createHmac('sha256', key).update(`${id}.${ts}.${req.body}`).digest();
  const ok = String(req.headers['webhook-signature'])
    .split(' ')
    .some((s) => {
      const sig = Buffer.from(s.split(',')[1] ?? '', 'base64');
      return s.startsWith('v1,') && sig.length === expected.length && timingSafeEqual(sig, expected);
    });
  if (!ok) throw new Error(`bad signature on ${id}`);
  if (Math.abs(Date.now() / 1000 - Number(ts)) > 300) throw new Error('stale timestamp');
  return JSON.parse(req.body) as GenericPayload;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'plantwatch-alerts-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function receiver(respond?: WebhookReceiver['respond']): Promise<WebhookReceiver> {
  const r = await startWebhookReceiver(respond);
  cleanups.push(() => r.close());
  return r;
}

function config(receivers: WebhookReceiver[], extra: AlertsConfigInput = {}): AlertsConfig {
  return AlertsConfig.parse({
    rules: [
      { id: 'anomaly', type: 'likelihood', threshold: 0.9, severity: 'critical' },
      { id: 'sensor-silent', type: 'deadman', per: 'sensor', afterMs: 1000, severity: 'warning' },
    ],
    receivers: receivers.map((r, i) => ({
      name: `r${i}`,
      url: r.url,
      secret: SECRET,
      rateLimit: { perSecond: 100, burst: 100 },
      retry: { initialDelayMs: 100, maxDelayMs: 800, deadlineMs: 60_000 },
    })),
    grouping: { groupWaitMs: 200, groupIntervalMs: 400, repeatIntervalMs: 3_600_000 },
    evaluationIntervalMs: 100,
    dashboardUrl: 'http://dash.test',
    ...extra,
  });
}

function service(cfg: AlertsConfig, dataDir: string, publish?: (a: Alert[]) => Promise<void>): AlertService {
  const s = new AlertService({ config: cfg, dataDir, logger: silentLogger(), metrics: createRegistry('alerts'), publish });
  s.start();
  cleanups.push(() => s.close());
  return s;
}

const machine = { site: 'plant1', line: 'l1', machine: 'press' };
function score(sensor: string, likelihood: number, ts = Date.now()): Score {
  return { kind: 'sensor', ...machine, sensor, ts, value: 1, predicted: 1, lower: 0, upper: 2, rawScore: 1, likelihood, modelVersion: 'v1', warmingUp: false };
}
function reading(sensor: string, value = 1): Reading {
  return { ...machine, sensor, ts: Date.now(), value, receivedAt: Date.now() };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitUntil(cond: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('services > alerts > service (real HTTP receivers)', () => {
  it('delivers a firing and then a resolved notification, both validly signed', async () => {
    const rx = await receiver();
    const published: Alert[] = [];
    const svc = service(config([rx]), tempDir(), async (a) => void published.push(...a));
    svc.ingestScore(score('temp', 0.97));
    const [firing] = await rx.waitForAccepted(1);
    const p1 = receiverVerify(firing);
    expect(p1.status).toBe('firing');
    expect(p1.alerts).toHaveLength(1);
    expect(p1.alerts[0]).toMatchObject({ rule: 'anomaly', status: 'firing', sensor: 'temp', severity: 'critical', values: { value: 0.97, threshold: 0.9 }, endsAt: null });
    expect(p1.alerts[0].dashboardUrl).toBe('http://dash.test/#/machine/plant1/l1/press');
    expect(firing.headers['content-type']).toBe('application/json');

    svc.ingestScore(score('temp', 0.1));
    const accepted = await rx.waitForAccepted(2);
    const p2 = receiverVerify(accepted[1]);
    expect(p2.status).toBe('resolved');
    expect(p2.alerts[0]).toMatchObject({ fingerprint: p1.alerts[0].fingerprint, status: 'resolved' });
    expect(p2.alerts[0].endsAt).not.toBeNull();
    expect(accepted[1].headers['webhook-id']).not.toBe(firing.headers['webhook-id']);
    // Every state change was also published for dashboards and storage.
    await waitUntil(() => published.length === 2, 5000, 'publish');
    expect(published.map((a) => a.status)).toEqual(['firing', 'resolved']);
  });

  it('a receiver that fails with 500 for a while gets each notification exactly once, same webhook-id on retries', async () => {
    const downUntil = Date.now() + 3000;
    const rx = await receiver(() => (Date.now() < downUntil ? { status: 500, body: 'down' } : { status: 200 }));
    const svc = service(config([rx]), tempDir());
    svc.ingestScore(score('temp', 0.97));
    await sleep(700); // the firing notification is being retried by now
    svc.ingestScore(score('temp', 0.1));
    const accepted = await rx.waitForAccepted(2, 15_000);
    await sleep(1000); // nothing more may arrive
    expect(rx.accepted()).toHaveLength(2);
    const ids = rx.requests.map((r) => String(r.headers['webhook-id']));
    const acceptedIds = accepted.map((r) => String(r.headers['webhook-id']));
    expect(new Set(acceptedIds).size).toBe(2);
    // Every attempt belongs to one of the two notifications: retries reuse the id.
    expect(new Set(ids)).toEqual(new Set(acceptedIds));
    expect(rx.requests.length).toBeGreaterThan(2);
    // Retried requests carry the same body and a fresh, valid signature.
    for (const r of rx.requests) receiverVerify(r);
    expect(accepted.map((r) => receiverVerify(r).status)).toEqual(['firing', 'resolved']);
    const retries = (await svc.metrics.webhookRetries.get()).values.find((v) => v.labels.receiver === 'r0');
    expect(retries?.value).toBeGreaterThan(0);
  });

  it('a service restart in the middle loses nothing: queued notification, alert state and unpublished changes survive', async () => {
    let up = false;
    const rx = await receiver(() => (up ? { status: 204 } : { status: 503 }));
    const dir = tempDir();
    const cfg = config([rx]);
    const a = service(cfg, dir, async () => {
      throw new Error('kafka down');
    });
    a.ingestScore(score('temp', 0.97));
    a.ingestScore(score('vib', 0.95));
    await waitUntil(() => rx.requests.length >= 1, 5000, 'first attempt');
    const firstId = String(rx.requests[0].headers['webhook-id']);
    const fps = (await a.list()).map((x) => x.fingerprint).sort();
    await a.close();

    up = true;
    const published: Alert[] = [];
    const b = service(cfg, dir, async (x) => void published.push(...x));
    expect((await b.list()).map((x) => x.fingerprint).sort()).toEqual(fps);
    const [delivered] = await rx.waitForAccepted(1);
    expect(String(delivered.headers['webhook-id'])).toBe(firstId);
    expect(receiverVerify(delivered).alerts.map((x) => x.fingerprint).sort()).toEqual(fps);
    await waitUntil(() => published.length === 2, 5000, 'publish after restart');
    expect(published.every((x) => x.status === 'firing')).toBe(true);

    // The restarted service still knows what it told the receiver: the resolution follows.
    b.ingestScore(score('temp', 0.1));
    b.ingestScore(score('vib', 0.1));
    const all = await rx.waitForAccepted(2);
    const resolved = receiverVerify(all[1]);
    expect(resolved.status).toBe('resolved');
    expect(resolved.alerts.map((x) => x.fingerprint).sort()).toEqual(fps);
    await sleep(600);
    expect(rx.accepted()).toHaveLength(2);
  });

  it('survives a hard crash (SIGKILL) while the receiver is down: the queued notification and the alerts come back', async () => {
    let up = false;
    const rx = await receiver(() => (up ? { status: 200 } : { status: 500 }));
    const dir = tempDir();
    const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'testdata/crash-runner.ts')], {
      cwd: join(import.meta.dirname, '../..'),
      env: { ...process.env, ALERTS_DIR: dir, RECEIVER_URL: rx.url, WEBHOOK_SECRET: SECRET },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    cleanups.push(() => void child.kill('SIGKILL'));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    await waitUntil(() => rx.requests.length >= 2, 20_000, 'the child to try (and fail) delivering');
    const tried = String(rx.requests[0].headers['webhook-id']);
    child.kill('SIGKILL');
    await exited;

    up = true;
    const b = service(AlertsConfig.parse({ ...config([rx]), receivers: [{ name: 'ops', url: rx.url, secret: SECRET }], stateDir: dir }), '/nonexistent');
    expect((await b.list()).map((a) => a.sensor).sort()).toEqual(['bearing', 'spindle']);
    const [delivered] = await rx.waitForAccepted(1);
    expect(String(delivered.headers['webhook-id'])).toBe(tried);
    expect(receiverVerify(delivered).alerts.map((a) => a.sensor).sort()).toEqual(['bearing', 'spindle']);
    await sleep(500);
    expect(rx.accepted()).toHaveLength(1);
  });

  it('a storm of 1,000 anomalies on one machine yields one grouped notification', async () => {
    const rx = await receiver();
    const svc = service(config([rx], { grouping: { groupWaitMs: 300, groupIntervalMs: 500, maxAlertsPerNotification: 100 } }), tempDir());
    const t = Date.now();
    for (let i = 0; i < 1000; i++) svc.ingestScore(score(`s${i}`, 0.99, t + i));
    // The anomaly goes on: the same sensors keep scoring high.
    for (let i = 0; i < 1000; i++) svc.ingestScore(score(`s${i}`, 0.995, t + 2000 + i));
    const [only] = await rx.waitForAccepted(1);
    await sleep(1200); // more than two group intervals
    expect(rx.requests).toHaveLength(1);
    const p = receiverVerify(only);
    expect(p.status).toBe('firing');
    expect(p.alerts).toHaveLength(100);
    expect(p.truncatedAlerts).toBe(900);
    expect(p.groupLabels).toEqual({ site: 'plant1', line: 'l1', machine: 'press' });
    expect((await svc.list({ limit: 5000 })).length).toBe(1000);
  });

  it('deadman: a sensor that stops publishing fires an offline alert after the configured time and resolves when it returns', async () => {
    const rx = await receiver();
    const svc = service(config([rx]), tempDir());
    const started = Date.now();
    svc.ingestReading(reading('temp'));
    // rpm keeps publishing, temp goes silent.
    const feed = setInterval(() => svc.ingestReading(reading('rpm')), 100);
    cleanups.push(() => clearInterval(feed));
    const [firing] = await rx.waitForAccepted(1, 5000);
    const p1 = receiverVerify(firing);
    expect(p1.alerts).toHaveLength(1);
    expect(p1.alerts[0]).toMatchObject({ rule: 'sensor-silent', sensor: 'temp', status: 'firing' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect((await svc.list()).map((x) => x.sensor)).toEqual(['temp']);

    svc.ingestReading(reading('temp'));
    const all = await rx.waitForAccepted(2, 5000);
    const p2 = receiverVerify(all[1]);
    expect(p2.alerts[0]).toMatchObject({ rule: 'sensor-silent', sensor: 'temp', status: 'resolved' });
    expect(await svc.list()).toEqual([]);
  });

  it('4xx other than 408/429 is not retried; 429 honours Retry-After', async () => {
    const rejecting = await receiver(() => ({ status: 400, body: 'schema mismatch' }));
    let calls = 0;
    const throttling = await receiver(() => (++calls === 1 ? { status: 429, headers: { 'retry-after': '1' } } : { status: 200 }));
    const outcomes: string[] = [];
    const svc = new AlertService({
      config: config([rejecting, throttling]),
      dataDir: tempDir(),
      logger: silentLogger(),
      metrics: createRegistry('alerts'),
      onDelivery: (d, outcome) => outcomes.push(`${d.receiver}:${outcome}`),
    });
    svc.start();
    cleanups.push(() => svc.close());
    svc.ingestScore(score('temp', 0.97));
    await throttling.waitForAccepted(1, 5000);
    await sleep(500);
    expect(rejecting.requests).toHaveLength(1);
    expect(throttling.requests).toHaveLength(2);
    expect(throttling.requests[1].receivedAt - throttling.requests[0].receivedAt).toBeGreaterThanOrEqual(950);
    expect(outcomes.sort()).toEqual(['r0:rejected', 'r1:sent']);
    expect(svc.outbox.depth()).toBe(0);
    const failed = await svc.metrics.webhookFailed.get();
    expect(failed.values.find((v) => v.labels.receiver === 'r0')).toMatchObject({ value: 1, labels: { reason: 'rejected' } });
  });

  it('gives up at the configured deadline and counts the notification as expired', async () => {
    const rx = await receiver(() => ({ status: 502 }));
    const cfg = config([rx]);
    const svc = service(AlertsConfig.parse({ ...cfg, receivers: [{ ...cfg.receivers[0], retry: { initialDelayMs: 100, maxDelayMs: 200, deadlineMs: 800 } }] }), tempDir());
    svc.ingestScore(score('temp', 0.97));
    await waitUntil(() => svc.outbox.depth() === 0 && rx.requests.length > 0, 5000, 'expiry');
    expect(rx.requests.length).toBeGreaterThanOrEqual(2);
    const failed = await svc.metrics.webhookFailed.get();
    expect(failed.values[0]).toMatchObject({ value: 1, labels: { receiver: 'r0', reason: 'expired' } });
  });

  it('rate-limits each receiver', async () => {
    const rx = await receiver();
    const cfg = config([rx], { grouping: { groupWaitMs: 0, groupIntervalMs: 400 } });
    const svc = service(AlertsConfig.parse({ ...cfg, receivers: [{ ...cfg.receivers[0], rateLimit: { perSecond: 4, burst: 1 } }] }), tempDir());
    for (let m = 0; m < 4; m++) svc.ingestScore({ ...score('temp', 0.97), machine: `m${m}` });
    const got = await rx.waitForAccepted(4, 5000);
    const span = got[3].receivedAt - got[0].receivedAt;
    expect(span).toBeGreaterThanOrEqual(700); // 3 gaps of 250 ms, minus timer slack
  });

  it('Slack and Teams receivers get their templates; minSeverity filters; without a secret only webhook-id is sent', async () => {
    const slack = await receiver();
    const teams = await receiver();
    const pager = await receiver();
    const base = config([]);
    const svc = service(
      AlertsConfig.parse({
        ...base,
        rules: [
          { id: 'warn', type: 'likelihood', threshold: 0.5, severity: 'warning' },
          { id: 'crit', type: 'likelihood', threshold: 0.9, severity: 'critical' },
        ],
        receivers: [
          { name: 'slack', type: 'slack', url: slack.url },
          { name: 'teams', type: 'teams', url: teams.url },
          { name: 'pager', url: pager.url, minSeverity: 'critical' },
        ],
      }),
      tempDir(),
    );
    svc.ingestScore(score('temp', 0.6)); // warning only
    svc.ingestScore({ ...score('temp', 0.95), machine: 'saw' }); // warning + critical on another machine
    const [s1, s2] = await slack.waitForAccepted(2);
    const slackTexts = [s1, s2].map((r) => (JSON.parse(r.body) as { text: string }).text).sort();
    expect(slackTexts).toEqual(['[FIRING:1] plant1/l1/press', '[FIRING:2] plant1/l1/saw']);
    const [t1] = await teams.waitForAccepted(2);
    expect(JSON.parse(t1.body).attachments[0].content.type).toBe('AdaptiveCard');
    const [p1] = await pager.waitForAccepted(1);
    await sleep(300);
    expect(pager.requests).toHaveLength(1); // the warning-only machine never reached the pager
    const paged = JSON.parse(p1.body) as GenericPayload;
    expect(paged.alerts.map((a) => a.rule)).toEqual(['crit']);
    expect(p1.headers['webhook-id']).toMatch(/^msg_/);
    expect(p1.headers['webhook-signature']).toBeUndefined();
  });

  it('refuses bad records with a dead letter and goes on', () => {
    const svc = service(config([]), tempDir());
    const src = { topic: TOPICS.scores, partition: 0, offset: '7' };
    expect(svc.ingestRecord(TOPICS.scores, Buffer.from('{nope'), src)).toMatchObject({ code: 'PAYLOAD_NOT_JSON', component: 'alerts', source: src });
    const bad = svc.ingestRecord(TOPICS.scores, Buffer.from(JSON.stringify({ ...score('t', 0.5), likelihood: 3 })), src);
    expect(bad).toMatchObject({ code: 'SCORE_INVALID' });
    expect(bad!.reason).toContain('likelihood');
    expect(Buffer.from(bad!.rawBase64, 'base64').toString()).toContain('"likelihood":3');
    expect(svc.ingestRecord(TOPICS.readings, Buffer.from(JSON.stringify([reading('t'), reading('u')])), src)).toBeNull();
    expect(svc.ingestRecord(TOPICS.scores, Buffer.from(JSON.stringify([score('t', 0.95)])), src)).toBeNull();
    expect(svc.engine.list()).toHaveLength(1);
  });
});
