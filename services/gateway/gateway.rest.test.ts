import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { parse as parseYaml } from 'yaml';
import { createRegistry, prom } from '../../common/metrics.ts';
import { startTestGateway, reading, testAlert, OPERATOR_TOKEN, VIEWER_TOKEN, type TestGateway } from './testing.ts';
import { GATEWAY_ERRORS } from './errors.ts';
import { GatewayConfig } from './config.schema.ts';
import { start } from './index.ts';
import { silentLogger } from '../../common/logger.ts';
import { MemoryAlerts, MemoryStore } from './testing.ts';
import { DirectLiveSource } from './live-source.ts';

let tg: TestGateway;
const t0 = Date.now() - 60_000;

async function api(path: string, opts: { token?: string; cookie?: string; method?: string; body?: unknown } = {}) {
  const headers: Record<string, string> = {};
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.cookie) headers.cookie = opts.cookie;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${tg.gw.url}${path}`, { method: opts.method ?? 'GET', headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json, headers: res.headers };
}

describe('services > gateway > rest', () => {
  beforeAll(async () => {
    tg = await startTestGateway();
    for (let i = 0; i < 600; i++) await tg.store.writeReadings([reading('m1', 'temp', t0 + i * 100, i), reading('m1', 'rpm', t0 + i * 100, 1000 + i)]);
    await tg.store.writeReadings([reading('m2', 'temp', t0, 5, { line: 'lineB' })]);
    tg.alerts.upsert(testAlert({ site: 'plant1', line: 'lineA', machine: 'm1', updatedAt: t0 }));
    tg.alerts.upsert(testAlert({ site: 'plant1', line: 'lineB', machine: 'm2', severity: 'warning', updatedAt: t0 }));
    // Newer than the store: arrived live, not yet written.
    tg.live.readings([reading('m1', 'temp', Date.now(), 42), reading('m3', 'flow', Date.now(), 7, { line: 'lineC' })]);
  });
  afterAll(() => tg.close());

  it('refuses requests without credentials with a JSON error code', async () => {
    const r = await api('/api/machines');
    expect(r.status).toBe(401);
    expect(r.json).toEqual({ error: 'GATEWAY_UNAUTHORIZED', message: 'missing or invalid token/session' });
    expect((await api('/api/machines', { token: 'nope-nope-nope' })).status).toBe(401);
  });

  it('lists machines from the store and from live data', async () => {
    const r = await api('/api/machines', { token: VIEWER_TOKEN });
    expect(r.status).toBe(200);
    const keys = r.json.machines.map((m: any) => `${m.line}/${m.machine}`).sort();
    expect(keys).toEqual(['lineA/m1', 'lineB/m2', 'lineC/m3']);
    expect(r.json.machines.find((m: any) => m.machine === 'm1').sensors.sort()).toEqual(['rpm', 'temp']);
  });

  it('validates series queries and answers with at most maxPoints per series', async () => {
    const missing = await api('/api/series', { token: VIEWER_TOKEN });
    expect(missing.status).toBe(400);
    expect(missing.json.error).toBe('GATEWAY_BAD_REQUEST');
    expect(missing.json.details[0].path).toEqual(['machine']);
    const bad = await api(`/api/series?machine=m1&from=${t0 + 10}&to=${t0}`, { token: VIEWER_TOKEN });
    expect(bad.status).toBe(400);
    expect(bad.json.message).toContain('from must be before to');
    // `to` defaults to now: a `from` in the future is still the caller's mistake, not a store outage.
    const future = await api(`/api/series?machine=m1&from=${Date.now() + 3600_000}`, { token: VIEWER_TOKEN });
    expect(future.status).toBe(400);
    expect(future.json.error).toBe('GATEWAY_BAD_REQUEST');
    expect((await api('/api/series?machine=m1&maxPoints=lots', { token: VIEWER_TOKEN })).status).toBe(400);
    expect((await api('/api/series?machine=m1&bogus=1', { token: VIEWER_TOKEN })).json.error).toBe('GATEWAY_BAD_REQUEST');
    expect((await api('/api/series?machine=m%2F1', { token: VIEWER_TOKEN })).status).toBe(400);

    const raw = await api(`/api/series?machine=m1&sensor=temp&from=${t0}&to=${t0 + 10_000}`, { token: VIEWER_TOKEN });
    expect(raw.status).toBe(200);
    expect(raw.json.series).toHaveLength(1);
    expect(raw.json.series[0].resolution).toBe('raw');
    expect(raw.json.series[0].points).toHaveLength(100);
    const rolled = await api(`/api/series?machine=m1&from=${t0}&to=${t0 + 60_000}&maxPoints=50&scores=true`, { token: VIEWER_TOKEN });
    expect(rolled.json.series).toHaveLength(2);
    for (const s of rolled.json.series) expect(s.points.length).toBeLessThanOrEqual(50);
    expect(rolled.json.scores).toEqual([]);
  });

  it('answers the newest value per sensor by event time', async () => {
    const r = await api('/api/latest?machine=m1', { token: VIEWER_TOKEN });
    const temp = r.json.latest.find((l: any) => l.sensor === 'temp');
    expect(temp.value).toBe(42); // live beats the older stored value
    expect(r.json.latest.find((l: any) => l.sensor === 'rpm').value).toBe(1599);
  });

  it('lists alerts with filters and validates status', async () => {
    expect((await api('/api/alerts', { token: VIEWER_TOKEN })).json.alerts).toHaveLength(2);
    expect((await api('/api/alerts?line=lineB', { token: VIEWER_TOKEN })).json.alerts.map((a: any) => a.machine)).toEqual(['m2']);
    const bad = await api('/api/alerts?status=open', { token: VIEWER_TOKEN });
    expect(bad.status).toBe(400);
    expect(bad.json.message).toContain('status');
  });

  it('lets operators acknowledge; viewers get 403 and unknown alerts 404', async () => {
    const fp = encodeURIComponent('plant1/lineA/m1/*/anomaly');
    const v = await api(`/api/alerts/${fp}/ack`, { token: VIEWER_TOKEN, method: 'POST', body: {} });
    expect(v.status).toBe(403);
    expect(v.json.error).toBe('GATEWAY_FORBIDDEN');
    const o = await api(`/api/alerts/${fp}/ack`, { token: OPERATOR_TOKEN, method: 'POST', body: { comment: 'checking' } });
    expect(o.status).toBe(200);
    expect(o.json.alert.acknowledgedBy).toBe('olga');
    expect((await api('/api/alerts/nope/ack', { token: OPERATOR_TOKEN, method: 'POST', body: {} })).json.error).toBe('GATEWAY_NOT_FOUND');
    const badBody = await api(`/api/alerts/${fp}/ack`, { token: OPERATOR_TOKEN, method: 'POST', body: { comment: 1 } });
    expect(badBody.status).toBe(400);
    const s = await api(`/api/alerts/${fp}/silence`, { token: OPERATOR_TOKEN, method: 'POST', body: { durationMs: 60_000 } });
    expect(s.json.alert.silencedUntil).toBeGreaterThan(Date.now());
  });

  it('exchanges a token or user/password for a session cookie', async () => {
    const bad = await api('/api/login', { method: 'POST', body: { token: 'wrong-wrong-wrong' } });
    expect(bad.status).toBe(401);
    expect(bad.json.error).toBe('GATEWAY_LOGIN_FAILED');
    const ok = await api('/api/login', { method: 'POST', body: { token: VIEWER_TOKEN } });
    const cookie = ok.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^pw_session=[^;]+; Path=\/; HttpOnly; SameSite=Strict/);
    const me = await api('/api/me', { cookie: cookie.split(';')[0] });
    expect(me.json).toEqual({ name: 'victor', role: 'viewer' });
    const tampered = cookie.split(';')[0].replace(/.$/, (c) => (c === 'A' ? 'B' : 'A'));
    expect((await api('/api/me', { cookie: tampered })).status).toBe(401);
    const pw = await api('/api/login', { method: 'POST', body: { username: 'olga', password: 'operator-pass' } });
    expect(pw.json).toEqual({ name: 'olga', role: 'operator' });
    expect((await api('/api/login', { method: 'POST', body: { username: 'olga', password: 'x' } })).status).toBe(401);
  });

  it('answers 503 with a code when the store is down', async () => {
    tg.store.failing = true;
    try {
      const r = await api('/api/machines', { token: VIEWER_TOKEN });
      expect(r.status).toBe(503);
      expect(r.json.error).toBe('GATEWAY_STORE_UNAVAILABLE');
    } finally {
      tg.store.failing = false;
    }
  });

  it('routes every path of openapi.yaml, and its error codes match errors.ts', async () => {
    const doc = parseYaml(readFileSync(new URL('./openapi.yaml', import.meta.url), 'utf8'));
    expect([...doc.components.schemas.Error.properties.error.enum].sort()).toEqual(Object.keys(GATEWAY_ERRORS).sort());
    for (const [path, ops] of Object.entries<Record<string, unknown>>(doc.paths)) {
      for (const method of Object.keys(ops)) {
        const concrete = path.replace('{fingerprint}', 'nope').replace('{component}', 'gateway');
        const r = await api(concrete, { token: OPERATOR_TOKEN, method: method.toUpperCase(), body: method === 'post' ? {} : undefined });
        const notRouted = r.status === 404 && typeof r.json === 'object' && /no route|no file/.test(r.json.message);
        expect(notRouted, `${method} ${path}`).toBe(false);
      }
    }
  });

  it('documents every error code in the README', () => {
    const readme = readFileSync(new URL('./README.md', import.meta.url), 'utf8');
    for (const code of Object.keys(GATEWAY_ERRORS)) expect(readme).toContain(code);
  });
});

describe('services > gateway > http', () => {
  it('serves the UI folder, falls back to index.html for routes, never leaves the folder', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pw-ui-'));
    writeFileSync(join(dir, 'index.html'), '<!doctype html><title>ui</title>');
    const extra = createRegistry('storage');
    new prom.Counter({ name: 'plantwatch_storage_points_written_total', help: 'x', registers: [extra] }).inc(3);
    const gw = await start(
      GatewayConfig.parse({ host: '127.0.0.1', port: 0, ui: { autoBuild: false, dir } }),
      { logger: silentLogger(), metrics: createRegistry('gateway'), kafka: undefined as never, dataDir: dir },
      { store: new MemoryStore(), alerts: new MemoryAlerts(), live: new DirectLiveSource(), registries: () => [extra] },
    );
    try {
      expect(gw.demoToken).toMatch(/^demo-/);
      expect(gw.loginUrl).toBe(`${gw.url}/?token=${gw.demoToken}`);
      expect(await (await fetch(`${gw.url}/`)).text()).toContain('<title>ui</title>');
      expect(await (await fetch(`${gw.url}/machine/x`)).text()).toContain('<title>ui</title>');
      expect((await fetch(`${gw.url}/nope.js`)).status).toBe(404);
      const traversal = await new Promise<number>((resolve, reject) => {
        request(`${gw.url}/..%2F..%2Fpackage.json`, (res) => resolve(res.statusCode ?? 0)).on('error', reject).end();
      });
      expect(traversal).toBe(404);
      expect((await fetch(`${gw.url}/%E0%A4%A`)).status).toBe(400);
      const merged = await (await fetch(`${gw.url}/metrics`)).text();
      expect(merged).toContain('plantwatch_storage_points_written_total');
      expect(merged).toContain('plantwatch_gateway_sockets');
      const one = await (await fetch(`${gw.url}/metrics/storage`)).text();
      expect(one).toContain('plantwatch_storage_points_written_total');
      expect(one).not.toContain('plantwatch_gateway_sockets');
      expect((await fetch(`${gw.url}/metrics/nope`)).status).toBe(404);
      expect((await fetch(`${gw.url}/api/me`, { headers: { authorization: `Bearer ${gw.demoToken}` } }).then((r) => r.json()))).toEqual({ name: 'demo', role: 'operator' });
    } finally {
      await gw.close();
      await gw.close(); // idempotent
    }
  });

  it('keeps the generated demo token and session key across restarts with the same data dir', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pw-gw-data-'));
    const boot = () =>
      start(
        GatewayConfig.parse({ host: '127.0.0.1', port: 0, ui: { autoBuild: false, dir } }),
        { logger: silentLogger(), metrics: createRegistry('gateway'), kafka: undefined as never, dataDir: dir },
        { store: new MemoryStore(), alerts: new MemoryAlerts(), live: new DirectLiveSource() },
      );
    const a = await boot();
    const login = await fetch(`${a.url}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: a.demoToken }) });
    const cookie = login.headers.get('set-cookie')!.split(';')[0];
    await a.close();
    const b = await boot();
    try {
      expect(b.demoToken).toBe(a.demoToken);
      expect((await fetch(`${b.url}/api/me`, { headers: { cookie } })).status).toBe(200);
    } finally {
      await b.close();
    }
  });

  it('rejects bad config with the key named', () => {
    expect(() => GatewayConfig.parse({ port: 'x' })).toThrow(/port/);
    expect(() => GatewayConfig.parse({ live: { maxUpdatesPerSecond: 0 } })).toThrow();
    expect(() => GatewayConfig.parse({ auth: { tokens: [{ token: 'short', role: 'viewer' }] } })).toThrow(/at least 8/);
    expect(() => GatewayConfig.parse({ bogus: 1 })).toThrow();
    expect(GatewayConfig.parse({}).port).toBe(8080);
  });
});
