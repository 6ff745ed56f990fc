/**
 * Dashboard fan-out benchmark (`npm run bench:dashboard`).
 *
 * 200 Socket.IO clients each watch one machine while 5,000 sensors (250 machines × 20 sensors)
 * report at 1 Hz. Each role runs in its own process (broker, gateway, publisher, clients) so the
 * gateway's CPU is its own. Three scenarios in the same run:
 *   raw      socket.io only: the publisher's process emits each machine's readings to its room
 *            (no Kafka, no gateway logic) — the floor;
 *   direct   the gateway fed in-process (DirectLiveSource): coalescing, rooms, payloads, no Kafka;
 *   kafka    publisher → embedded Kafka broker (own process) → gateway consumer → sockets;
 *   platform the whole platform in one process as `npm start` runs it (embedded broker, edge + aedes,
 *            anomaly, storage, alerts, gateway), fed over MQTT: one message per sensor per second
 *            (`plant/<site>/<line>/<machine>/<sensor>`), "server CPU" is that whole process.
 * Latency = client receipt time − the reading's event time (set at publish, same clock).
 *
 * Options (env): BENCH_SECONDS (measure, default 20), BENCH_WARMUP (default 5), BENCH_CLIENTS (200),
 * BENCH_MACHINES (250), BENCH_SENSORS (20), BENCH_SCENARIOS (raw,direct,kafka,platform),
 * BENCH_PLATFORM_COMPONENTS (default all but the simulator, e.g. broker,edge,storage,alerts,gateway).
 * A platform scenario may name the platform's `isolation` after `@` (`+` between components), so one
 * run interleaves placements: BENCH_SCENARIOS=platform@anomaly=inline,platform,platform@edge=worker+broker=worker
 * (plain `platform` = the config defaults: anomaly in a worker thread).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const SELF = fileURLToPath(import.meta.url);
const env = (k: string, d: number) => (process.env[k] ? Number(process.env[k]) : d);
const SECONDS = env('BENCH_SECONDS', 20);
const WARMUP = env('BENCH_WARMUP', 5);
const CLIENTS = env('BENCH_CLIENTS', 200);
const MACHINES = env('BENCH_MACHINES', 250);
const SENSORS = env('BENCH_SENSORS', 20);
const TOKEN = 'bench-token-0123456789';

type Msg = { type: string; [k: string]: unknown };
/** `platform@<component>=<inline|worker>+…` runs the platform scenario with that `isolation`. */
type Mode = 'raw' | 'direct' | 'kafka' | 'platform' | `platform@${string}`;
const isPlatform = (m: Mode) => m === 'platform' || m.startsWith('platform@');
function isolationOf(m: Mode): Record<string, string> {
  const spec = m.split('@')[1] ?? '';
  return Object.fromEntries(spec.split('+').filter(Boolean).map((kv) => kv.split('=') as [string, string]));
}
const send = (m: Msg) => process.send!(m);
const machineName = (i: number) => `m${String(i).padStart(4, '0')}`;
const lineOf = (i: number) => `line${i % 10}`;

function readingsOf(i: number, ts: number) {
  const out = [];
  for (let s = 0; s < SENSORS; s++) out.push({ site: 'bench', line: lineOf(i), machine: machineName(i), sensor: `s${s}`, ts, value: Math.sin(ts / 1000 + s), unit: 'u', receivedAt: ts });
  return out;
}

/** Calls fn(i) for every machine once per second, spread evenly over the second. */
function pace(fn: (i: number, now: number) => void | Promise<void>): () => void {
  const started = Date.now();
  let next = 0;
  const timer = setInterval(() => {
    const due = Math.floor(((Date.now() - started) / 1000) * MACHINES);
    while (next < due) {
      void fn(next % MACHINES, Date.now());
      next++;
    }
  }, 5);
  return () => clearInterval(timer);
}

function cpuMeter() {
  let c0 = process.cpuUsage();
  let t0 = process.hrtime.bigint();
  const eld = monitorEventLoopDelay({ resolution: 10 });
  eld.enable();
  return {
    reset() {
      c0 = process.cpuUsage();
      t0 = process.hrtime.bigint();
      eld.reset();
    },
    read() {
      const c = process.cpuUsage(c0);
      const wallUs = Number(process.hrtime.bigint() - t0) / 1000;
      return { cpuPct: ((c.user + c.system) / wallUs) * 100, loopP99Ms: eld.percentile(99) / 1e6, rssMb: process.memoryUsage().rss / 2 ** 20 };
    },
  };
}

function histogramBuckets(text: string, name: string): { le: number; n: number }[] {
  return [...text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"[^}]*\\} (\\d+(?:\\.\\d+)?)`, 'gm'))].map((m) => ({ le: m[1] === '+Inf' ? Infinity : Number(m[1]), n: Number(m[2]) }));
}

/** Upper bound of the bucket holding quantile q of a Prometheus histogram between two scrapes. */
function histogramQuantile(before: string, after: string, name: string, q: number): number | undefined {
  const b0 = histogramBuckets(before, name);
  const buckets = histogramBuckets(after, name).map((b, i) => ({ le: b.le, n: b.n - (b0[i]?.n ?? 0) }));
  const total = buckets.at(-1)?.n ?? 0;
  if (!total) return undefined;
  return buckets.find((b) => b.n >= q * total)?.le;
}

// ---------------- roles (child processes) ----------------

async function roleBroker() {
  const { startTestBroker } = await import('../test/helpers/kafka.ts');
  const b = await startTestBroker();
  send({ type: 'ready', brokers: b.brokers });
  process.on('message', async (m: Msg) => {
    if (m.type === 'stop') {
      await b.close();
      process.exit(0);
    }
  });
}

async function roleGateway(mode: Mode, brokers: string[]) {
  const meter = cpuMeter();
  let stopFeed = () => {};
  let close: () => Promise<void>;
  let url: string;
  let token = TOKEN;
  let mqttUrl: string | undefined;
  if (isPlatform(mode)) {
    // Everything but the simulator in this one process, as `npm start` runs it.
    const { freePortsConfig } = await import('../test/e2e/harness.ts');
    const { startPlatform } = await import('../platform/index.ts');
    const { silentLogger } = await import('../common/logger.ts');
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const dataDir = mkdtempSync(join(tmpdir(), 'pw-bench-'));
    const components = process.env.BENCH_PLATFORM_COMPONENTS?.split(',') as Parameters<typeof startPlatform>[0] extends infer O ? (O extends { components?: infer C } ? C : never) : never;
    const overrides = { ...freePortsConfig(dataDir), isolation: isolationOf(mode) } as Parameters<typeof startPlatform>[0] extends infer O ? (O extends { overrides?: infer C } ? C : never) : never;
    const p = await startPlatform({ env: {}, overrides, logger: silentLogger(), ...(components ? { components } : {}) });
    url = p.components.gateway!.url;
    token = p.components.gateway!.demoToken!;
    mqttUrl = p.mqttUrl;
    close = async () => {
      await p.close();
      rmSync(dataDir, { recursive: true, force: true });
    };
  } else if (mode === 'raw') {
    const { Server } = await import('socket.io');
    const http = createServer();
    const io = new Server(http, { serveClient: false, transports: ['websocket'] });
    io.use((s, next) => (s.handshake.auth?.token === TOKEN ? next() : next(new Error('unauthorized'))));
    io.on('connection', (s) => {
      s.on('subscribe', (req: { scope: { site: string; line: string; machine: string } }, ack: (r: unknown) => void) => {
        void s.join(`m:${req.scope.site}/${req.scope.line}/${req.scope.machine}`);
        ack({ ok: true });
      });
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    stopFeed = pace((i, now) => {
      io.to(`m:bench/${lineOf(i)}/${machineName(i)}`).emit('live', { t: now, readings: readingsOf(i, now) });
    });
    close = async () => {
      io.close();
    };
  } else {
    const { startTestGateway } = await import('../services/gateway/testing.ts');
    const { createKafkaClients } = await import('../common/kafka.ts');
    const { KafkaClientConfig } = await import('../common/config/fragments.ts');
    const { silentLogger } = await import('../common/logger.ts');
    const kafka = mode === 'kafka' ? createKafkaClients({ ...KafkaClientConfig.parse({}), clientId: 'bench-gw', brokers }, silentLogger()) : undefined;
    const tg = await startTestGateway({ instanceId: `bench-${mode}`, auth: { tokens: [{ token: TOKEN, role: 'viewer', name: 'bench' }], users: [] } }, { kafka });
    url = tg.gw.url;
    if (mode === 'direct') stopFeed = pace((i, now) => tg.live.readings(readingsOf(i, now)));
    else await new Promise<void>((resolve) => {
      const t = setInterval(async () => {
        if ((await fetch(`${url}/healthz`)).status === 200) clearInterval(t), resolve();
      }, 100);
    });
    close = () => tg.close();
  }
  send({ type: 'ready', url, token, mqttUrl });
  let scrapeAtMeasure = '';
  const scrape = async () => (mode === 'raw' ? '' : await (await fetch(`${url}/metrics`)).text().catch(() => ''));
  process.on('message', async (m: Msg) => {
    if (m.type === 'measure') {
      meter.reset();
      scrapeAtMeasure = await scrape();
    }
    if (m.type === 'report') {
      const r = meter.read();
      // Where the whole platform stands: counters of the stages, to find the bottleneck.
      let stages: string[] = [];
      let ingestP99: number | undefined;
      if (mode !== 'raw') {
        // The gateway's own view: event time → arrival at the gateway (the pipeline before fan-out).
        ingestP99 = histogramQuantile(scrapeAtMeasure, await scrape(), 'plantwatch_gateway_ingest_lag_seconds', 0.99);
      }
      if (isPlatform(mode)) {
        const text = await (await fetch(`${url}/metrics`)).text().catch(() => '');
        stages = text.split('\n').filter((l) => /^plantwatch_(edge_(received_messages|forwarded_records)_total|gateway_live_in_total\{kind="reading"|anomaly_\w*(readings|scored)\w*_total|storage_\w*written\w*_total)/.test(l));
      }
      // Other work on the machine shows here: figures measured at a high load average are upper bounds.
      send({ type: 'gateway', ...r, loadAvg1m: loadavg()[0], stages, ingestP99Ms: ingestP99 === undefined ? undefined : ingestP99 * 1000 });
    }
    if (m.type === 'stop') {
      stopFeed();
      await close();
      process.exit(0);
    }
  });
}

async function rolePublisher(brokers: string[]) {
  const { createKafkaClients } = await import('../common/kafka.ts');
  const { KafkaClientConfig } = await import('../common/config/fragments.ts');
  const { silentLogger } = await import('../common/logger.ts');
  const { TOPICS } = await import('../common/topics.ts');
  const kafka = createKafkaClients({ ...KafkaClientConfig.parse({}), clientId: 'bench-pub', brokers }, silentLogger());
  const producer = kafka.producer();
  await producer.connect();
  const meter = cpuMeter();
  // Collect what is due every 5 ms and send it as one request (a real edge bridge batches too).
  let pending: { key: string; value: string }[] = [];
  let inFlight = false;
  let sent = 0;
  const stop = pace((i, now) => {
    pending.push({ key: `bench/${lineOf(i)}/${machineName(i)}`, value: JSON.stringify(readingsOf(i, now)) });
  });
  const flusher = setInterval(async () => {
    if (inFlight || pending.length === 0) return;
    const batch = pending;
    pending = [];
    inFlight = true;
    try {
      await producer.send({ topic: TOPICS.readings, acks: 1, messages: batch });
      sent += batch.length;
    } finally {
      inFlight = false;
    }
  }, 5);
  send({ type: 'ready' });
  process.on('message', async (m: Msg) => {
    if (m.type === 'measure') meter.reset();
    if (m.type === 'report') send({ type: 'publisher', sent, ...meter.read() });
    if (m.type === 'stop') {
      stop();
      clearInterval(flusher);
      await producer.disconnect();
      process.exit(0);
    }
  });
}

async function roleMqttPublisher(mqttUrl: string) {
  const mqtt = await import('mqtt');
  const meter = cpuMeter();
  // A few connections, like edge gateways; one message per sensor per second (JSON array of one).
  const clients = await Promise.all(Array.from({ length: 10 }, (_, k) => mqtt.connectAsync(mqttUrl, { clientId: `bench-pub-${k}` })));
  let sent = 0;
  const stop = pace((i, now) => {
    const c = clients[i % clients.length];
    for (const r of readingsOf(i, now)) {
      c.publish(`plant/${r.site}/${r.line}/${r.machine}/${r.sensor}`, JSON.stringify({ ts: r.ts, value: r.value, unit: r.unit }), { qos: 0 });
      sent++;
    }
  });
  send({ type: 'ready' });
  process.on('message', async (m: Msg) => {
    if (m.type === 'measure') meter.reset();
    if (m.type === 'report') send({ type: 'publisher', sent, ...meter.read() });
    if (m.type === 'stop') {
      stop();
      await Promise.all(clients.map((c) => c.endAsync()));
      process.exit(0);
    }
  });
}

async function roleClients(url: string, token: string) {
  const { io } = await import('socket.io-client');
  let measuring = false;
  const lat: number[] = [];
  let msgs = 0;
  let items = 0;
  let t0 = 0;
  const sockets: { disconnect(): void }[] = [];
  for (let c = 0; c < CLIENTS; c++) {
    const i = c % MACHINES;
    const s = io(url, { transports: ['websocket'], auth: { token }, forceNew: true, reconnection: false });
    s.on('live', (p: { readings?: { ts: number }[] }) => {
      if (!measuring) return;
      const now = Date.now();
      msgs++;
      for (const r of p.readings ?? []) {
        lat.push(now - r.ts);
        items++;
      }
    });
    await new Promise<void>((resolve, reject) => {
      s.once('connect', () => resolve());
      s.once('connect_error', reject);
    });
    const ack = (await s.timeout(30_000).emitWithAck('subscribe', { scope: { site: 'bench', line: lineOf(i), machine: machineName(i) } })) as { ok: boolean };
    if (!ack.ok) throw new Error('subscribe refused');
    sockets.push(s);
  }
  const meter = cpuMeter();
  send({ type: 'ready' });
  process.on('message', (m: Msg) => {
    if (m.type === 'measure') {
      measuring = true;
      t0 = Date.now();
      meter.reset();
    }
    if (m.type === 'report') {
      measuring = false;
      const secs = (Date.now() - t0) / 1000;
      lat.sort((a, b) => a - b);
      const q = (p: number) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : NaN);
      send({ type: 'clients', n: lat.length, p50: q(0.5), p90: q(0.9), p99: q(0.99), max: lat[lat.length - 1] ?? NaN, msgsPerClientS: msgs / CLIENTS / secs, readingsPerClientS: items / CLIENTS / secs, ...meter.read() });
    }
    if (m.type === 'stop') {
      for (const s of sockets) s.disconnect();
      process.exit(0);
    }
  });
}

// ---------------- orchestration ----------------

function spawn(role: string, ...args: string[]): { child: ChildProcess; next(type: string): Promise<Msg> } {
  const child = fork(SELF, [role, ...args], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const queue: Msg[] = [];
  const waiters: ((m: Msg) => void)[] = [];
  child.on('message', (m: Msg) => {
    const w = waiters.shift();
    if (w) w(m);
    else queue.push(m);
  });
  child.on('exit', (code) => {
    if (code) console.error(`bench role ${role} exited with ${code}`);
  });
  return {
    child,
    next: (type) =>
      new Promise((resolve, reject) => {
        const take = (m: Msg) => (m.type === type ? resolve(m) : reject(new Error(`${role}: expected ${type}, got ${m.type}`)));
        const m = queue.shift();
        if (m) take(m);
        else waiters.push(take);
      }),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function scenario(mode: Mode, brokers: string[]) {
  const gw = spawn('gateway', mode, brokers.join(','));
  const { url, token, mqttUrl } = (await gw.next('ready')) as unknown as { url: string; token: string; mqttUrl?: string };
  // The platform's pipeline only learns machines from data: publish first, then subscribe.
  const pub = mode === 'kafka' ? spawn('publisher', brokers.join(',')) : isPlatform(mode) ? spawn('mqttpub', mqttUrl!) : null;
  if (pub) await pub.next('ready');
  const cl = spawn('clients', url, token);
  await cl.next('ready');
  await sleep(WARMUP * 1000);
  for (const p of [gw, cl, pub]) p?.child.send({ type: 'measure' });
  await sleep(SECONDS * 1000);
  for (const p of [gw, cl, pub]) p?.child.send({ type: 'report' });
  const g = await gw.next('gateway');
  const c = await cl.next('clients');
  const p = pub ? await pub.next('publisher') : null;
  for (const x of [pub, cl, gw]) x?.child.send({ type: 'stop' });
  await sleep(500);
  return { mode, g, c, p };
}

async function main() {
  const modes = (process.env.BENCH_SCENARIOS ?? 'raw,direct,kafka,platform').split(',') as Mode[];
  console.log(`dashboard bench: ${CLIENTS} clients, ${MACHINES} machines × ${SENSORS} sensors at 1 Hz (${MACHINES * SENSORS} readings/s), warm-up ${WARMUP} s, measure ${SECONDS} s`);
  let broker: ReturnType<typeof spawn> | null = null;
  let brokers: string[] = [];
  if (modes.includes('kafka')) {
    broker = spawn('broker');
    brokers = ((await broker.next('ready')) as unknown as { brokers: string[] }).brokers;
  }
  const results = [];
  for (const m of modes) {
    console.log(`… running ${m}`);
    results.push(await scenario(m, brokers));
  }
  broker?.child.send({ type: 'stop' });
  const base = results.find((r) => r.mode === 'raw') ?? results[0];
  const f = (v: unknown, d = 1) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(d) : '—');
  const ratio = (v: unknown, b: unknown) => (typeof v === 'number' && typeof b === 'number' && b > 0 ? `${(v / b).toFixed(2)}×` : '—');
  const rows = results.map((r) => {
    const c = r.c as Record<string, number>;
    const g = r.g as Record<string, number>;
    const bc = base.c as Record<string, number>;
    return {
      scenario: r.mode,
      'p50 ms': f(c.p50, 0),
      'p99 ms': f(c.p99, 0),
      'p99 vs raw': ratio(c.p99, bc.p99),
      'max ms': f(c.max, 0),
      'server CPU %': f(g.cpuPct),
      'CPU vs raw': ratio(g.cpuPct, (base.g as Record<string, number>).cpuPct),
      'server loop p99 ms': f(g.loopP99Ms),
      'msgs/client/s': f(c.msgsPerClientS, 2),
      'readings/client/s': f(c.readingsPerClientS, 1),
      'server RSS MB': f(g.rssMb, 0),
      'gateway ingest lag p99 ≤ ms': f(g.ingestP99Ms, 0),
      'load avg 1m': f(g.loadAvg1m),
      'p99 < 250 ms': typeof c.p99 === 'number' && c.p99 < 250 ? 'yes' : 'NO',
    };
  });
  console.table(rows);
  for (const r of results) for (const line of ((r.g as { stages?: string[] }).stages ?? [])) console.log(`  ${r.mode}: ${line}`);
  for (const r of results) if (r.p) console.log(`publisher (${r.mode}): ${f((r.p as Record<string, number>).cpuPct)} % CPU, ${(r.p as Record<string, number>).sent} records sent`);
  const dir = join(fileURLToPath(new URL('.', import.meta.url)), 'results');
  mkdirSync(dir, { recursive: true });
  const header = Object.keys(rows[0]);
  writeFileSync(join(dir, 'dashboard.csv'), [header.join(','), ...rows.map((r) => header.map((h) => (r as Record<string, string>)[h]).join(','))].join('\n') + '\n');
  console.log(`csv: bench/results/dashboard.csv`);
  process.exit(0);
}

const [role, a1, a2] = process.argv.slice(2) as [string, string, string];
if (role === 'broker') await roleBroker();
else if (role === 'gateway') await roleGateway(a1 as Mode, (a2 ?? '').split(',').filter(Boolean));
else if (role === 'publisher') await rolePublisher(a1.split(','));
else if (role === 'mqttpub') await roleMqttPublisher(a1);
else if (role === 'clients') await roleClients(a1, a2);
else await main();
