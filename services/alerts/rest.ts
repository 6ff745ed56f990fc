/**
 * The alert service's REST API (mounted on its ops server) and `HttpAlertsApi`, the client a
 * separately deployed gateway uses. Both sides speak the same JSON, so the in-process handle and
 * the HTTP client behave the same.
 *
 *   GET    /api/alerts?site=&line=&machine=&status=pending,firing&limit=
 *   POST   /api/alerts/:fingerprint/ack       {"by": "...", "comment"?: "..."}
 *   POST   /api/alerts/:fingerprint/silence   {"by": "...", "untilMs": <epoch ms>} or {"by", "durationMs"}
 *   GET    /api/rules            GET /api/rules/:id
 *   POST   /api/rules            (409 if the id exists)
 *   PUT    /api/rules/:id        (create or replace)
 *   DELETE /api/rules/:id
 * Errors answer `{"error": CODE, "message": "..."}`.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { PlatformError } from '../../common/errors.ts';
import { sendJson, type RouteHandler } from '../../common/http.ts';
import { Alert, AlertStatus, describeZodError } from '../../common/messages.ts';
import type { AlertFilter, AlertsApi } from './api.ts';
import { Rule, type RuleInput } from './rules.ts';
import type { AlertService } from './service.ts';
import { ALERTS_ERRORS, ALERTS_REST_ERRORS as R } from './errors.ts';

const MAX_BODY = 64 * 1024;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, R.bodyTooLarge, `request body over ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, R.badRequest, `body is not JSON: ${(err as Error).message}`);
  }
}

const AckBody = z.strictObject({ by: z.string().min(1).max(200), comment: z.string().max(2000).optional() });
const SilenceBody = z
  .strictObject({
    by: z.string().min(1).max(200),
    untilMs: z.number().int().nonnegative().optional(),
    durationMs: z.number().int().positive().optional(),
  })
  .refine((b) => (b.untilMs === undefined) !== (b.durationMs === undefined), { message: 'give exactly one of untilMs, durationMs' });

function parseBody<T>(schema: z.ZodType<T>, body: unknown, code: string = R.badRequest): T {
  const r = schema.safeParse(body);
  if (!r.success) throw new HttpError(400, code, describeZodError(r.error));
  return r.data;
}

const STATUSES = AlertStatus.options;

export function parseAlertQuery(params: URLSearchParams): AlertFilter {
  const filter: AlertFilter = {};
  for (const k of ['site', 'line', 'machine'] as const) {
    const v = params.get(k);
    if (v) filter[k] = v;
  }
  const status = params.get('status');
  if (status) {
    const list = status.split(',').map((s) => s.trim()).filter(Boolean);
    const bad = list.find((s) => !(STATUSES as readonly string[]).includes(s));
    if (bad) throw new HttpError(400, R.badRequest, `status: unknown value ${JSON.stringify(bad)} (expected ${STATUSES.join(', ')})`);
    filter.status = list as AlertFilter['status'];
  }
  const limit = params.get('limit');
  if (limit !== null) {
    const n = Number(limit);
    if (!Number.isInteger(n) || n < 0) throw new HttpError(400, R.badRequest, 'limit: expected a non-negative integer');
    filter.limit = n;
  }
  return filter;
}

function tokenMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer (.+)$/.exec(header ?? '');
  if (!m) return false;
  const a = Buffer.from(m[1]);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function alertRoutes(service: AlertService, opts: { token?: string; now?: () => number } = {}): RouteHandler {
  const now = opts.now ?? Date.now;
  return async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (!url.pathname.startsWith('/api/')) return false;
    try {
      if (opts.token && !tokenMatches(req.headers.authorization, opts.token)) {
        res.setHeader('www-authenticate', 'Bearer');
        throw new HttpError(401, R.unauthorized, 'missing or wrong bearer token');
      }
      let parts: string[]; // ['api', ...]
      try {
        parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
      } catch {
        throw new HttpError(400, R.badRequest, 'malformed percent-encoding in the path');
      }
      const method = req.method ?? 'GET';
      if (parts[1] === 'alerts') {
        if (parts.length === 2 && method === 'GET') {
          sendJson(res, 200, { alerts: await service.list(parseAlertQuery(url.searchParams)) });
          return true;
        }
        if (parts.length === 4 && method === 'POST' && parts[3] === 'ack') {
          const body = parseBody(AckBody, await readJson(req));
          const alert = await service.acknowledge(parts[2], body.by, body.comment);
          if (!alert) throw new HttpError(404, R.alertNotFound, `no alert with fingerprint ${parts[2]}`);
          sendJson(res, 200, { alert });
          return true;
        }
        if (parts.length === 4 && method === 'POST' && parts[3] === 'silence') {
          const body = parseBody(SilenceBody, await readJson(req));
          const until = body.untilMs ?? now() + body.durationMs!;
          const alert = await service.silence(parts[2], until, body.by);
          if (!alert) throw new HttpError(404, R.alertNotFound, `no alert with fingerprint ${parts[2]}`);
          sendJson(res, 200, { alert });
          return true;
        }
      }
      if (parts[1] === 'rules') {
        const engine = service.engine;
        if (parts.length === 2 && method === 'GET') {
          sendJson(res, 200, { rules: engine.rules() });
          return true;
        }
        if (parts.length === 2 && method === 'POST') {
          const rule = parseBody(Rule, await readJson(req), R.ruleInvalid);
          if (engine.rule(rule.id)) throw new HttpError(409, R.ruleExists, `rule ${rule.id} exists; PUT /api/rules/${rule.id} replaces it`);
          engine.upsertRule(rule);
          sendJson(res, 201, { rule });
          return true;
        }
        if (parts.length === 3) {
          const id = parts[2];
          if (method === 'GET') {
            const rule = engine.rule(id);
            if (!rule) throw new HttpError(404, R.ruleNotFound, `no rule ${id}`);
            sendJson(res, 200, { rule });
            return true;
          }
          if (method === 'PUT') {
            const body = await readJson(req);
            const withId = body && typeof body === 'object' && !Array.isArray(body) ? { id, ...(body as object) } : body;
            const rule = parseBody(Rule, withId, R.ruleInvalid);
            if (rule.id !== id) throw new HttpError(400, R.ruleInvalid, `id in body (${rule.id}) differs from the path (${id})`);
            const existed = engine.rule(id) !== undefined;
            engine.upsertRule(rule);
            sendJson(res, existed ? 200 : 201, { rule });
            return true;
          }
          if (method === 'DELETE') {
            if (!engine.deleteRule(id)) throw new HttpError(404, R.ruleNotFound, `no rule ${id}`);
            res.writeHead(204).end();
            return true;
          }
        }
      }
      throw new HttpError(404, R.notFound, `no route for ${method} ${url.pathname}`);
    } catch (err) {
      if (err instanceof HttpError) sendJson(res, err.status, { error: err.code, message: err.message });
      else throw err;
      return true;
    }
  };
}

/** `AlertsApi` over the alert service's REST API (for a gateway deployed apart). */
export class HttpAlertsApi implements AlertsApi {
  private readonly base: string;

  constructor(
    baseUrl: string,
    private readonly token?: string,
    private readonly timeoutMs = 10_000,
  ) {
    this.base = baseUrl.replace(/\/+$/, '');
  }

  private async call(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
    let res: Response;
    try {
      res = await fetch(this.base + path, {
        method,
        headers: {
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw new PlatformError(ALERTS_ERRORS.apiUnavailable, `alert service at ${this.base} unreachable: ${(err as Error).message}`, { retriable: true, cause: err });
    }
    const text = await res.text();
    let json: unknown = null;
    if (text) {
      try {
        json = JSON.parse(text);
      } catch {
        json = { message: text.slice(0, 200) };
      }
    }
    return { status: res.status, json };
  }

  private fail(status: number, json: unknown, what: string): never {
    const j = (json ?? {}) as { error?: string; message?: string };
    throw new PlatformError(ALERTS_ERRORS.apiError, `${what}: HTTP ${status} ${j.error ?? ''} ${j.message ?? ''}`.trim(), {
      retriable: status >= 500 || status === 429,
      context: { status, code: j.error },
    });
  }

  async list(filter: AlertFilter = {}): Promise<Alert[]> {
    const q = new URLSearchParams();
    for (const k of ['site', 'line', 'machine'] as const) if (filter[k]) q.set(k, filter[k]!);
    if (filter.status) q.set('status', filter.status.join(','));
    if (filter.limit !== undefined) q.set('limit', String(filter.limit));
    const qs = q.toString();
    const { status, json } = await this.call('GET', `/api/alerts${qs ? `?${qs}` : ''}`);
    if (status !== 200) this.fail(status, json, 'list alerts');
    return z.object({ alerts: z.array(Alert) }).parse(json).alerts;
  }

  async acknowledge(fingerprint: string, by: string, comment?: string): Promise<Alert | null> {
    const { status, json } = await this.call('POST', `/api/alerts/${encodeURIComponent(fingerprint)}/ack`, { by, ...(comment !== undefined ? { comment } : {}) });
    if (status === 404) return null;
    if (status !== 200) this.fail(status, json, 'acknowledge');
    return z.object({ alert: Alert }).parse(json).alert;
  }

  async silence(fingerprint: string, untilMs: number, by: string): Promise<Alert | null> {
    const { status, json } = await this.call('POST', `/api/alerts/${encodeURIComponent(fingerprint)}/silence`, { by, untilMs });
    if (status === 404) return null;
    if (status !== 200) this.fail(status, json, 'silence');
    return z.object({ alert: Alert }).parse(json).alert;
  }

  async listRules(): Promise<Rule[]> {
    const { status, json } = await this.call('GET', '/api/rules');
    if (status !== 200) this.fail(status, json, 'list rules');
    return z.object({ rules: z.array(Rule) }).parse(json).rules;
  }

  async putRule(rule: RuleInput): Promise<Rule> {
    const { status, json } = await this.call('PUT', `/api/rules/${encodeURIComponent(rule.id)}`, rule);
    if (status !== 200 && status !== 201) this.fail(status, json, 'put rule');
    return z.object({ rule: Rule }).parse(json).rule;
  }

  async deleteRule(id: string): Promise<boolean> {
    const { status, json } = await this.call('DELETE', `/api/rules/${encodeURIComponent(id)}`);
    if (status === 404) return false;
    if (status !== 204) this.fail(status, json, 'delete rule');
    return true;
  }
}
