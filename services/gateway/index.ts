/**
 * The gateway: one HTTP port serving the dashboard UI, the REST API (/api, openapi.yaml), Socket.IO
 * live updates (/socket.io) and Prometheus metrics (/metrics merged, /metrics/<component>).
 * It consumes the live topics itself (its own consumer group), so instances run side by side
 * behind a load balancer without shared state.
 */
import { hostname } from 'node:os';
import { readFile } from 'node:fs/promises';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Server as IoServer } from 'socket.io';
import type { ComponentContext, ComponentHandle } from '../../common/component.ts';
import { onceClose } from '../../common/component.ts';
import { startOpsServer } from '../../common/http.ts';
import { ensureTopics } from '../../common/kafka.ts';
import { renderMetrics, type Registry } from '../../common/metrics.ts';
import { TOPICS } from '../../common/topics.ts';
import type { TimeSeriesStore } from '../storage/store.ts';
import type { AlertsApi } from '../alerts/api.ts';
import { DASHBOARD_DIST, ensureDashboardBuilt } from '../../dashboards/build.ts';
import { Authenticator, generateDemoToken, generateSessionSecret } from './auth.ts';
import type { GatewayConfig } from './config.schema.ts';
import { LiveHub, createHubMetrics } from './hub.ts';
import { KafkaLiveSource, type LiveSource } from './live-source.ts';
import { restRoutes } from './rest.ts';
import { staticRoutes } from './static.ts';

export { GatewayConfig } from './config.schema.ts';
export { DirectLiveSource, KafkaLiveSource, type LiveSource } from './live-source.ts';
export type * from './protocol.ts';

export interface GatewayDeps {
  store: TimeSeriesStore;
  alerts: AlertsApi;
  /**
   * Other components' registries, served merged with the gateway's on `/metrics` and alone on
   * `/metrics/<component>`. A record names them; in an array the `component` default label does.
   */
  registries?: () => Registry[] | Record<string, Registry>;
  /** Replaces the Kafka consumer (tests, benchmarks). */
  live?: LiveSource;
}

export interface GatewayHandle extends ComponentHandle {
  readonly url: string;
  readonly port: number;
  readonly instanceId: string;
  /** The generated operator token when no credentials are configured (printed by `npm start`). */
  readonly demoToken?: string;
  /** URL that logs a browser in with the demo token. */
  readonly loginUrl: string;
  readonly hub: LiveHub;
  readonly io: IoServer;
}

const OPENAPI = new URL('./openapi.yaml', import.meta.url);

function registryName(r: Registry): string | undefined {
  // prom-client keeps default labels privately; the platform sets `component` on every registry.
  return (r as unknown as { _defaultLabels?: Record<string, string> })._defaultLabels?.component;
}

/**
 * A generated secret kept in `<dataDir>/gateway/<name>` (mode 0600), so restarts keep the demo link and
 * sessions valid. Unwritable data dir: a fresh value for this run only.
 */
function persistedSecret(dataDir: string, name: string, make: () => string, log: { warn: (o: object, m: string) => void }): string {
  const file = join(dataDir, 'gateway', name);
  try {
    if (existsSync(file)) {
      const v = readFileSync(file, 'utf8').trim();
      if (v.length >= 16) return v;
    }
    const v = make();
    mkdirSync(join(dataDir, 'gateway'), { recursive: true });
    writeFileSync(file, v + '\n', { mode: 0o600 });
    chmodSync(file, 0o600);
    return v;
  } catch (err) {
    log.warn({ err, file }, 'cannot keep a generated secret in the data dir; it changes on restart');
    return make();
  }
}

export async function start(config: GatewayConfig, ctx: ComponentContext, deps: GatewayDeps): Promise<GatewayHandle> {
  const log = ctx.logger.child({ component: 'gateway' });
  const instanceId = config.instanceId || `${hostname()}-${process.pid}`.replace(/[^A-Za-z0-9_.-]/g, '_');
  const uiDir = config.ui.dir || DASHBOARD_DIST;
  if (config.ui.autoBuild && !config.ui.dir) {
    const b = await ensureDashboardBuilt(uiDir);
    if (b.built) log.info({ ms: b.ms, dir: uiDir }, 'dashboard UI built');
  }

  const needsDemo = config.auth.tokens.length === 0 && config.auth.users.length === 0;
  const auth = new Authenticator(config.auth, Date.now, {
    demoToken: needsDemo ? persistedSecret(ctx.dataDir, 'demo-token', generateDemoToken, log) : undefined,
    sessionSecret: config.auth.sessionSecret ? undefined : persistedSecret(ctx.dataDir, 'session-secret', generateSessionSecret, log),
  });
  const metrics = createHubMetrics(ctx.metrics);
  const source: LiveSource = deps.live ?? new KafkaLiveSource(ctx.kafka, `plantwatch-gateway-${instanceId}`, log);

  const named = (): Map<string, Registry> => {
    const m = new Map<string, Registry>([['gateway', ctx.metrics]]);
    const extra = deps.registries?.() ?? [];
    if (Array.isArray(extra)) extra.forEach((r, i) => m.set(registryName(r) ?? `registry${i}`, r));
    else for (const [k, r] of Object.entries(extra)) m.set(k, r);
    return m;
  };
  const metricsRoute = async (req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/metrics') {
      const { contentType, body } = await renderMetrics([...new Set(named().values())]);
      res.writeHead(200, { 'content-type': contentType });
      res.end(body);
      return true;
    }
    const m = /^\/metrics\/([A-Za-z0-9_-]+)$/.exec(path);
    if (req.method !== 'GET' || !m) return false;
    const reg = named().get(m[1]);
    if (!reg) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'GATEWAY_NOT_FOUND', message: `no metrics for component ${m[1]}`, details: { components: [...named().keys()] } }));
      return true;
    }
    const { contentType, body } = await renderMetrics([reg]);
    res.writeHead(200, { 'content-type': contentType });
    res.end(body);
    return true;
  };
  const openapiRoute = async (req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/api/openapi.yaml') return false;
    const text = await readFile(OPENAPI);
    res.writeHead(200, { 'content-type': 'application/yaml; charset=utf-8' });
    res.end(text);
    return true;
  };

  let hub: LiveHub | undefined;
  const restHandler = (req: IncomingMessage, res: ServerResponse) =>
    restRoutes({ config, store: deps.store, alerts: deps.alerts, auth, hub: hub!, onAuthFailure: () => metrics.authFailures.inc({ transport: 'http' }) })(req, res);
  const ops = await startOpsServer({
    host: config.host,
    port: config.port,
    registries: () => [...named().values()],
    health: () => {
      const s = hub?.status();
      return { ok: !!s && s.live.connected, instanceId, live: s?.live ?? null, store: deps.store.kind };
    },
    routes: [metricsRoute, openapiRoute, restHandler, staticRoutes(uiDir)],
  });
  const io = new IoServer(ops.server, { serveClient: false, transports: ['websocket', 'polling'] });
  hub = new LiveHub(io, { config, instanceId, store: deps.store, alerts: deps.alerts, auth, logger: log, metrics, source });
  hub.start();
  try {
    if (!deps.live) await ensureTopics(ctx.kafka, [{ topic: TOPICS.readings, numPartitions: 6 }, { topic: TOPICS.scores, numPartitions: 6 }, { topic: TOPICS.alerts, numPartitions: 1 }]);
    await source.start(hub);
  } catch (err) {
    await hub.close();
    io.disconnectSockets(true);
    await ops.close();
    throw err;
  }
  const url = ops.url;
  const loginUrl = auth.demoToken ? `${url}/?token=${encodeURIComponent(auth.demoToken)}` : `${url}/`;
  log.info({ url, instanceId, consumerGroup: deps.live ? null : `plantwatch-gateway-${instanceId}`, demoToken: auth.demoToken ?? undefined }, 'gateway listening');

  const h = hub;
  return {
    name: 'gateway',
    url,
    port: ops.port,
    instanceId,
    demoToken: auth.demoToken,
    loginUrl,
    hub: h,
    io,
    close: onceClose(async () => {
      await source.close(); // stop intake first
      h.flush(); // what was already accepted goes out
      await h.close();
      io.disconnectSockets(true);
      await ops.close();
    }),
  };
}
