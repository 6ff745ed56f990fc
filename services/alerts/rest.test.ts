import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PlatformError } from '../../common/errors.ts';
import { startOpsServer, type OpsServer } from '../../common/http.ts';
import { silentLogger } from '../../common/logger.ts';
import type { Score } from '../../common/messages.ts';
import { createRegistry } from '../../common/metrics.ts';
import { AlertsConfig } from './config.schema.ts';
import { alertRoutes, HttpAlertsApi } from './rest.ts';
import { AlertService } from './service.ts';

const TOKEN = 'secret-token-123';
let dir: string;
let svc: AlertService;
let ops: OpsServer;
let client: HttpAlertsApi;
let cfg: AlertsConfig;

function score(machine: string, sensor: string, likelihood: number): Score {
  return { kind: 'sensor', site: 's1', line: 'l1', machine, sensor, ts: Date.now(), value: 1, predicted: 1, lower: 0, upper: 2, rawScore: 1, likelihood, modelVersion: 'v', warmingUp: false };
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'plantwatch-alerts-rest-'));
  cfg = AlertsConfig.parse({ rules: [{ id: 'anom', type: 'likelihood', threshold: 0.9, forMs: 60_000 }, { id: 'hot', type: 'likelihood', threshold: 0.5 }], apiToken: TOKEN });
  svc = new AlertService({
    config: cfg,
    dataDir: dir,
    logger: silentLogger(),
    metrics: createRegistry('alerts'),
  });
  svc.start();
  const registry = createRegistry('alerts');
  ops = await startOpsServer({ host: '127.0.0.1', port: 0, registries: () => [registry], routes: [alertRoutes(svc, { token: TOKEN })] });
  client = new HttpAlertsApi(ops.url, TOKEN);
});

afterEach(async () => {
  await ops.close();
  await svc.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('services > alerts > rest', () => {
  it('the HTTP client and the in-process service give the same answers', async () => {
    svc.ingestScore(score('m1', 'a', 0.95)); // anom pending + hot firing
    svc.ingestScore(score('m2', 'a', 0.6)); // hot firing
    expect(await client.list()).toEqual(await svc.list());
    expect(await client.list({ machine: 'm2' })).toEqual(await svc.list({ machine: 'm2' }));
    expect(await client.list({ status: ['pending'] })).toEqual(await svc.list({ status: ['pending'] }));
    expect(await client.list({ limit: 1 })).toHaveLength(1);
    expect(await client.list({ status: ['resolved'] })).toEqual([]);

    const fp = (await svc.list({ machine: 'm2' }))[0].fingerprint;
    const acked = await client.acknowledge(fp, 'ana', 'on it');
    expect(acked).toMatchObject({ fingerprint: fp, acknowledgedBy: 'ana', status: 'firing' });
    expect((await svc.list({ machine: 'm2' }))[0]).toEqual(acked);
    expect(svc.engine.get(fp)?.ackComment).toBe('on it');

    const until = Date.now() + 600_000;
    const silenced = await client.silence(fp, until, 'ana');
    expect(silenced?.silencedUntil).toBe(until);
    expect(await client.acknowledge('0000', 'ana')).toBeNull();
    expect(await svc.acknowledge('0000', 'ana')).toBeNull();
    expect(await client.silence('0000', until, 'ana')).toBeNull();
  });

  it('silence accepts a duration', async () => {
    svc.ingestScore(score('m1', 'a', 0.6));
    const fp = (await svc.list())[0].fingerprint;
    const before = Date.now();
    const res = await fetch(`${ops.url}/api/alerts/${fp}/silence`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ by: 'ana', durationMs: 60_000 }),
    });
    expect(res.status).toBe(200);
    const { alert } = (await res.json()) as { alert: { silencedUntil: number } };
    expect(alert.silencedUntil).toBeGreaterThanOrEqual(before + 60_000);
  });

  it('requires the bearer token on /api only', async () => {
    expect((await fetch(`${ops.url}/api/alerts`)).status).toBe(401);
    expect((await fetch(`${ops.url}/api/alerts`, { headers: { authorization: 'Bearer wrong-token-000' } })).status).toBe(401);
    expect((await fetch(`${ops.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${ops.url}/metrics`)).status).toBe(200);
    await expect(new HttpAlertsApi(ops.url).list()).rejects.toMatchObject({ code: 'ALERTS_API_ERROR', retriable: false });
  });

  it('rule CRUD: create, conflict, replace, read, delete, and validation errors', async () => {
    const h = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
    const post = (body: unknown) => fetch(`${ops.url}/api/rules`, { method: 'POST', headers: h, body: JSON.stringify(body) });
    const created = await post({ id: 'hot-oil', type: 'threshold', above: 90, hysteresis: 2, scope: { sensor: 'oil_temp' } });
    expect(created.status).toBe(201);
    expect(((await created.json()) as { rule: unknown }).rule).toMatchObject({ id: 'hot-oil', severity: 'warning', scope: { site: '*', sensor: 'oil_temp' } });
    expect((await post({ id: 'hot-oil', type: 'threshold', above: 1 })).status).toBe(409);
    const invalid = await post({ id: 'x', type: 'threshold' });
    expect(invalid.status).toBe(400);
    expect(await invalid.json()).toMatchObject({ error: 'RULE_INVALID' });
    expect((await post({ id: 'y', type: 'nope' })).status).toBe(400);

    const replaced = await client.putRule({ id: 'hot-oil', type: 'threshold', above: 95 });
    expect(replaced).toMatchObject({ id: 'hot-oil', above: 95 });
    expect((await client.listRules()).map((r) => r.id)).toEqual(['anom', 'hot', 'hot-oil']);
    const one = await fetch(`${ops.url}/api/rules/hot-oil`, { headers: h });
    expect(((await one.json()) as { rule: { above: number } }).rule.above).toBe(95);
    expect(await client.deleteRule('anom')).toBe(true);
    expect(await client.deleteRule('anom')).toBe(false);
    expect((await client.listRules()).map((r) => r.id)).toEqual(['hot', 'hot-oil']);
    expect((await fetch(`${ops.url}/api/rules/nope`, { headers: h })).status).toBe(404);
  });

  it('rule changes made over the API survive a restart', async () => {
    await client.putRule({ id: 'extra', type: 'rate', maxPerSecond: 3 });
    await client.deleteRule('hot');
    await svc.close();
    const again = new AlertService({ config: cfg, dataDir: dir, logger: silentLogger(), metrics: createRegistry('alerts') });
    expect(again.rules().map((r) => r.id)).toEqual(['anom', 'extra']);
    await again.close();
  });

  it('answers bad requests with a code and a message', async () => {
    const h = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
    const bad = await fetch(`${ops.url}/api/alerts?status=burning`, { headers: h });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: 'BAD_REQUEST' });
    const notJson = await fetch(`${ops.url}/api/alerts/abc/ack`, { method: 'POST', headers: h, body: '{' });
    expect(notJson.status).toBe(400);
    const noBy = await fetch(`${ops.url}/api/alerts/abc/ack`, { method: 'POST', headers: h, body: '{}' });
    expect(await noBy.json()).toMatchObject({ error: 'BAD_REQUEST' });
    expect((await fetch(`${ops.url}/api/nothing`, { headers: h })).status).toBe(404);
    expect((await fetch(`${ops.url}/api/rules/%E0%A4%A`, { headers: h })).status).toBe(400);
  });

  it('the HTTP client reports an unreachable service as retriable', async () => {
    const dead = new HttpAlertsApi('http://127.0.0.1:1', TOKEN, 2000);
    const err = await dead.list().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PlatformError);
    expect(err).toMatchObject({ code: 'ALERTS_API_UNAVAILABLE', retriable: true });
  });
});
