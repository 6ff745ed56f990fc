/**
 * The small operations HTTP server every component runs on its own port: `/metrics` (Prometheus),
 * `/healthz` (liveness/readiness as JSON). Components may mount extra routes via `routes`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { renderMetrics, type Registry } from './metrics.ts';

export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>;

export interface OpsServerOptions {
  host?: string;
  port: number;
  registries: () => Registry[];
  /** Returns readiness details; `ok: false` answers 503. */
  health?: () => { ok: boolean; [k: string]: unknown };
  /** Tried in order before the built-in routes; return true when handled. */
  routes?: RouteHandler[];
}

export interface OpsServer {
  server: Server;
  port: number;
  url: string;
  close(): Promise<void>;
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export async function startOpsServer(opts: OpsServerOptions): Promise<OpsServer> {
  const server = createServer(async (req, res) => {
    try {
      for (const route of opts.routes ?? []) if (await route(req, res)) return;
      const path = (req.url ?? '/').split('?')[0];
      if (req.method === 'GET' && path === '/metrics') {
        const { contentType, body } = await renderMetrics(opts.registries());
        res.writeHead(200, { 'content-type': contentType });
        res.end(body);
        return;
      }
      if (req.method === 'GET' && path === '/healthz') {
        const h = opts.health?.() ?? { ok: true };
        sendJson(res, h.ok ? 200 : 503, h);
        return;
      }
      sendJson(res, 404, { error: 'NOT_FOUND', message: `no route for ${req.method} ${path}` });
    } catch (err) {
      if (!res.headersSent) sendJson(res, 500, { error: 'INTERNAL', message: (err as Error).message });
      else res.destroy();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
