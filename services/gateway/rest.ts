/**
 * The REST API (documented in openapi.yaml): the same data as the sockets, for scripts and other
 * tools. Query parameters are validated with zod; every error is JSON `{ error, message, details? }`
 * with a stable code (errors.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { sendJson } from '../../common/http.ts';
import { Identifier } from '../../common/messages.ts';
import type { TimeSeriesStore } from '../storage/store.ts';
import type { AlertsApi } from '../alerts/api.ts';
import type { Authenticator, Principal } from './auth.ts';
import type { GatewayConfig } from './config.schema.ts';
import { GatewayError } from './errors.ts';
import type { LiveHub } from './hub.ts';

const int = () => z.coerce.number().int();

const ScopeQuery = z.strictObject({ site: Identifier.optional(), line: Identifier.optional(), machine: Identifier.optional() });
const SeriesQuery = z
  .strictObject({
    site: Identifier.optional(),
    line: Identifier.optional(),
    machine: Identifier,
    sensor: Identifier.optional(),
    /** Epoch ms; default: one hour before `to`. */
    from: int().nonnegative().optional(),
    /** Epoch ms (exclusive); default: now. */
    to: int().nonnegative().optional(),
    maxPoints: int().positive().default(1000),
    scores: z.enum(['true', 'false']).default('false'),
  })
  .refine((q) => q.from === undefined || q.to === undefined || q.from < q.to, { message: 'from must be before to', path: ['from'] });
const AlertsQuery = z.strictObject({
  site: Identifier.optional(),
  line: Identifier.optional(),
  machine: Identifier.optional(),
  status: z
    .string()
    .regex(/^(pending|firing|resolved)(,(pending|firing|resolved))*$/, 'comma list of pending, firing, resolved')
    .optional(),
  limit: int().positive().max(10_000).default(500),
});
const AckBody = z.strictObject({ comment: z.string().max(1000).optional() });
const SilenceBody = z.strictObject({ untilMs: z.number().int().positive().optional(), durationMs: z.number().int().positive().max(30 * 86400_000).optional() }).refine((b) => (b.untilMs === undefined) !== (b.durationMs === undefined), 'give exactly one of untilMs, durationMs');
const LoginBody = z.union([z.strictObject({ token: z.string().min(1) }), z.strictObject({ username: z.string().min(1), password: z.string().min(1) })]);

function parse<T extends z.ZodType>(schema: T, input: unknown): z.infer<T> {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  throw new GatewayError('GATEWAY_BAD_REQUEST', r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; '), {
    details: r.error.issues.map((i) => ({ path: i.path.map(String), message: i.message })),
  });
}

async function readJson(req: IncomingMessage, limit = 64 * 1024): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > limit) throw new GatewayError('GATEWAY_BAD_REQUEST', `body larger than ${limit} bytes`);
    chunks.push(c);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new GatewayError('GATEWAY_BAD_REQUEST', 'body is not valid JSON');
  }
}

async function fromStore<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    throw new GatewayError('GATEWAY_STORE_UNAVAILABLE', `store: ${(err as Error).message}`, { cause: err, retriable: true });
  }
}

async function fromAlerts<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    throw new GatewayError('GATEWAY_ALERTS_UNAVAILABLE', `alert service: ${(err as Error).message}`, { cause: err, retriable: true });
  }
}

export interface RestDeps {
  config: GatewayConfig;
  store: TimeSeriesStore;
  alerts: AlertsApi;
  auth: Authenticator;
  hub: LiveHub;
  onAuthFailure: () => void;
  now?: () => number;
}

/** Returns a route handler for `/api/*`; true when it handled the request. */
export function restRoutes(d: RestDeps): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  const now = d.now ?? Date.now;
  const requireUser = (req: IncomingMessage): Principal => {
    const p = d.auth.fromHeaders(req.headers);
    if (!p) {
      d.onAuthFailure();
      throw new GatewayError('GATEWAY_UNAUTHORIZED');
    }
    return p;
  };

  return async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    if (!path.startsWith('/api/')) return false;
    const query = Object.fromEntries(url.searchParams);
    const method = req.method ?? 'GET';
    try {
      if (path === '/api/login' && method === 'POST') {
        const body = parse(LoginBody, await readJson(req));
        const p = 'token' in body ? d.auth.fromToken(body.token) : d.auth.fromPassword(body.username, body.password);
        if (!p) {
          d.onAuthFailure();
          throw new GatewayError('GATEWAY_LOGIN_FAILED');
        }
        const s = d.auth.issueSession(p);
        res.setHeader('set-cookie', d.auth.cookieHeader(s.value, s.maxAgeS));
        sendJson(res, 200, { name: p.name, role: p.role });
        return true;
      }
      if (path === '/api/logout' && method === 'POST') {
        res.setHeader('set-cookie', d.auth.clearCookieHeader());
        sendJson(res, 200, { ok: true });
        return true;
      }
      const user = requireUser(req);
      if (method === 'GET' && path === '/api/me') {
        sendJson(res, 200, { name: user.name, role: user.role });
        return true;
      }
      if (method === 'GET' && path === '/api/machines') {
        parse(z.strictObject({}), query);
        const stored = await fromStore(d.store.machines());
        const byKey = new Map(stored.map((m) => [`${m.site}/${m.line}/${m.machine}`, { ...m }]));
        for (const m of d.hub.recent.machinesIn({})) {
          const k = `${m.site}/${m.line}/${m.machine}`;
          const prev = byKey.get(k);
          if (!prev) byKey.set(k, { ...m, lastSeen: m.lastSeen ?? 0 });
          else {
            prev.sensors = [...new Set([...prev.sensors, ...m.sensors])];
            prev.lastSeen = Math.max(prev.lastSeen, m.lastSeen ?? 0);
          }
        }
        sendJson(res, 200, { machines: [...byKey.values()] });
        return true;
      }
      if (method === 'GET' && path === '/api/series') {
        const q = parse(SeriesQuery, query);
        const to = q.to ?? now();
        const from = q.from ?? to - 3600_000;
        // A reversed range is the caller's mistake (400), not a store outage (503).
        if (from >= to) throw new GatewayError('GATEWAY_BAD_REQUEST', `from must be before to (from ${from}, to ${to})`);
        const maxPoints = Math.min(q.maxPoints, d.config.maxSeriesPoints);
        const sq = { site: q.site, line: q.line, machine: q.machine, sensor: q.sensor, from, to, maxPoints };
        const [series, scores] = await Promise.all([fromStore(d.store.querySeries(sq)), q.scores === 'true' ? fromStore(d.store.queryScores(sq)) : Promise.resolve(undefined)]);
        sendJson(res, 200, { from, to, maxPoints, series, ...(scores ? { scores } : {}) });
        return true;
      }
      if (method === 'GET' && path === '/api/latest') {
        const q = parse(ScopeQuery, query);
        const stored = await fromStore(d.store.latest(q));
        const byKey = new Map(stored.map((l) => [`${l.site}/${l.line}/${l.machine}/${l.sensor}`, l]));
        for (const r of d.hub.recent.latestIn(q)) {
          const k = `${r.site}/${r.line}/${r.machine}/${r.sensor}`;
          const prev = byKey.get(k);
          if (!prev || r.ts > prev.ts) byKey.set(k, r);
        }
        sendJson(res, 200, { latest: [...byKey.values()] });
        return true;
      }
      if (method === 'GET' && path === '/api/alerts') {
        const q = parse(AlertsQuery, query);
        const status = q.status ? (q.status.split(',') as ('pending' | 'firing' | 'resolved')[]) : undefined;
        const alerts = await fromAlerts(d.alerts.list({ site: q.site, line: q.line, machine: q.machine, status, limit: q.limit }));
        sendJson(res, 200, { alerts });
        return true;
      }
      const ackMatch = /^\/api\/alerts\/([^/]+)\/(ack|silence)$/.exec(path);
      if (ackMatch && method === 'POST') {
        const fingerprint = decodeURIComponent(ackMatch[1]);
        if (ackMatch[2] === 'ack') {
          const body = parse(AckBody, await readJson(req));
          const alert = await d.hub.acknowledge(user, fingerprint, body.comment);
          sendJson(res, 200, { alert });
        } else {
          if (user.role !== 'operator') throw new GatewayError('GATEWAY_FORBIDDEN', `role ${user.role} cannot silence alerts`);
          const body = parse(SilenceBody, await readJson(req));
          const until = body.untilMs ?? now() + (body.durationMs ?? 0);
          const alert = await fromAlerts(d.alerts.silence(fingerprint, until, user.name));
          if (!alert) throw new GatewayError('GATEWAY_NOT_FOUND', `no alert with fingerprint ${fingerprint}`);
          d.hub.alerts([alert]);
          sendJson(res, 200, { alert });
        }
        return true;
      }
      throw new GatewayError('GATEWAY_NOT_FOUND', `no route for ${method} ${path}`);
    } catch (err) {
      const ge = err instanceof GatewayError ? err : new GatewayError('GATEWAY_INTERNAL', (err as Error)?.message, { cause: err });
      if (!res.headersSent) sendJson(res, ge.status, ge.toJSON());
      else res.destroy();
      return true;
    }
  };
}
