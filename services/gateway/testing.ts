/**
 * In-memory stand-ins for the gateway's dependencies, for the gateway's own tests, the browser
 * test harness and the dashboard benchmark. They honour the interfaces' contracts (event-time
 * ordering, newest wins, maxPoints), not the storage engines' performance.
 */
import type { Alert, MachineScore, Reading, SensorScore } from '../../common/messages.ts';
import type { LatestValue, MachineInfo, ScoreSeriesPoint, Series, SeriesQuery, TimeSeriesStore, WriteResult } from '../storage/store.ts';
import type { AlertFilter, AlertsApi } from '../alerts/api.ts';

const mkey = (m: { site: string; line: string; machine: string }) => `${m.site}/${m.line}/${m.machine}`;

function downsample<P extends { ts: number }>(points: P[], q: SeriesQuery, merge: (bucket: P[]) => P): { resolution: string; points: P[] } {
  if (points.length <= q.maxPoints) return { resolution: 'raw', points };
  const bucketMs = Math.ceil((q.to - q.from) / q.maxPoints);
  const out: P[] = [];
  let cur: P[] = [];
  let curB = NaN;
  for (const p of points) {
    const b = Math.floor((p.ts - q.from) / bucketMs);
    if (b !== curB && cur.length) out.push(merge(cur)), (cur = []);
    curB = b;
    cur.push(p);
  }
  if (cur.length) out.push(merge(cur));
  return { resolution: `${bucketMs}ms`, points: out };
}

export class MemoryStore implements TimeSeriesStore {
  readonly kind = 'embedded' as const;
  readonly readings = new Map<string, Reading[]>();
  readonly scores = new Map<string, SensorScore[]>();
  readonly alerts: Alert[] = [];
  /** Makes every query fail (outage tests). */
  failing = false;
  /** Makes every query this slow (a busy database). */
  queryDelayMs = 0;

  async init(): Promise<void> {}
  private async check(): Promise<void> {
    if (this.queryDelayMs > 0) await new Promise((r) => setTimeout(r, this.queryDelayMs));
    if (this.failing) throw new Error('memory store: simulated outage');
  }
  async writeReadings(readings: Reading[]): Promise<WriteResult> {
    for (const r of readings) {
      const k = `${mkey(r)}/${r.sensor}`;
      let arr = this.readings.get(k);
      if (!arr) this.readings.set(k, (arr = []));
      const i = arr.findIndex((p) => p.ts >= r.ts);
      if (i < 0) arr.push(r);
      else if (arr[i].ts === r.ts) arr[i] = r;
      else arr.splice(i, 0, r);
    }
    return { written: readings.length, rejected: [] };
  }
  async writeScores(scores: (SensorScore | MachineScore)[]): Promise<WriteResult> {
    let n = 0;
    for (const s of scores) {
      if (s.kind !== 'sensor') continue;
      const k = `${mkey(s)}/${s.sensor}`;
      let arr = this.scores.get(k);
      if (!arr) this.scores.set(k, (arr = []));
      arr.push(s);
      arr.sort((a, b) => a.ts - b.ts);
      n++;
    }
    return { written: n, rejected: [] };
  }
  async writeAlerts(alerts: Alert[]): Promise<WriteResult> {
    this.alerts.push(...alerts);
    return { written: alerts.length, rejected: [] };
  }
  private matching<T extends { site: string; line: string; machine: string; sensor: string }>(m: Map<string, T[]>, q: SeriesQuery): T[][] {
    return [...m.values()].filter((arr) => arr.length > 0 && arr[0].machine === q.machine && (!q.site || arr[0].site === q.site) && (!q.line || arr[0].line === q.line) && (!q.sensor || arr[0].sensor === q.sensor));
  }
  async querySeries(q: SeriesQuery): Promise<Series[]> {
    await this.check();
    return this.matching(this.readings, q).map((arr) => {
      const pts = arr.filter((r) => r.ts >= q.from && r.ts < q.to).map((r) => ({ ts: r.ts, value: r.value }));
      const d = downsample(pts, q, (b) => ({ ts: b[0].ts, value: b.reduce((s, p) => s + p.value, 0) / b.length, min: Math.min(...b.map((p) => p.value)), max: Math.max(...b.map((p) => p.value)) }));
      return { site: arr[0].site, line: arr[0].line, machine: arr[0].machine, sensor: arr[0].sensor, resolution: d.resolution, points: d.points };
    });
  }
  async queryScores(q: SeriesQuery): Promise<{ sensor: string; resolution: string; points: ScoreSeriesPoint[] }[]> {
    await this.check();
    return this.matching(this.scores, q).map((arr) => {
      const pts = arr.filter((s) => s.ts >= q.from && s.ts < q.to).map((s) => ({ ts: s.ts, value: s.value, predicted: s.predicted, lower: s.lower, upper: s.upper, likelihood: s.likelihood }));
      const d = downsample(pts, q, (b) => ({ ...b[b.length - 1], likelihood: Math.max(...b.map((p) => p.likelihood)) }));
      return { sensor: arr[0].sensor, resolution: d.resolution, points: d.points };
    });
  }
  async queryAlerts(q: { machine?: string; from: number; to: number; limit: number }): Promise<Alert[]> {
    await this.check();
    return this.alerts.filter((a) => (!q.machine || a.machine === q.machine) && a.updatedAt >= q.from && a.updatedAt < q.to).slice(-q.limit);
  }
  async latest(f: { site?: string; line?: string; machine?: string }): Promise<LatestValue[]> {
    await this.check();
    const out: LatestValue[] = [];
    for (const arr of this.readings.values()) {
      const r = arr[arr.length - 1];
      if (!r || (f.site && r.site !== f.site) || (f.line && r.line !== f.line) || (f.machine && r.machine !== f.machine)) continue;
      out.push({ site: r.site, line: r.line, machine: r.machine, sensor: r.sensor, ts: r.ts, value: r.value, unit: r.unit, quality: r.quality });
    }
    return out;
  }
  async machines(): Promise<MachineInfo[]> {
    await this.check();
    const m = new Map<string, MachineInfo>();
    for (const arr of this.readings.values()) {
      const r = arr[arr.length - 1];
      if (!r) continue;
      const e = m.get(mkey(r)) ?? { site: r.site, line: r.line, machine: r.machine, sensors: [], lastSeen: 0 };
      e.sensors.push(r.sensor);
      e.lastSeen = Math.max(e.lastSeen, r.ts);
      m.set(mkey(r), e);
    }
    return [...m.values()];
  }
  async close(): Promise<void> {}
}

/** Alert service stand-in: `onChange` receives every state change, as Kafka would carry it. */
export class MemoryAlerts implements AlertsApi {
  readonly byFingerprint = new Map<string, Alert>();
  onChange: (a: Alert) => void = () => undefined;
  failing = false;
  constructor(private readonly now: () => number = Date.now) {}

  upsert(a: Alert): Alert {
    this.byFingerprint.set(a.fingerprint, a);
    this.onChange(a);
    return a;
  }
  async list(f: AlertFilter = {}): Promise<Alert[]> {
    if (this.failing) throw new Error('memory alerts: simulated outage');
    const status = f.status ?? ['pending', 'firing'];
    return [...this.byFingerprint.values()]
      .filter((a) => status.includes(a.status) && (!f.site || a.site === f.site) && (!f.line || a.line === f.line) && (!f.machine || a.machine === f.machine))
      .slice(0, f.limit ?? 500);
  }
  async acknowledge(fingerprint: string, by: string): Promise<Alert | null> {
    const a = this.byFingerprint.get(fingerprint);
    if (!a) return null;
    const t = Math.max(this.now(), a.updatedAt + 1);
    return this.upsert({ ...a, acknowledgedBy: by, acknowledgedAt: t, updatedAt: t });
  }
  async silence(fingerprint: string, untilMs: number): Promise<Alert | null> {
    const a = this.byFingerprint.get(fingerprint);
    if (!a) return null;
    const t = Math.max(this.now(), a.updatedAt + 1);
    return this.upsert({ ...a, silencedUntil: untilMs, updatedAt: t });
  }
}

export function testAlert(over: Partial<Alert> & Pick<Alert, 'site' | 'line' | 'machine'>): Alert {
  const t = over.updatedAt ?? Date.now();
  return {
    fingerprint: `${over.site}/${over.line}/${over.machine}/${over.sensor ?? '*'}/${over.rule ?? 'anomaly'}`,
    rule: 'anomaly',
    severity: 'critical',
    status: 'firing',
    labels: {},
    summary: 'anomaly score above 0.9',
    value: 0.95,
    startsAt: t,
    endsAt: null,
    acknowledgedBy: null,
    acknowledgedAt: null,
    silencedUntil: null,
    updatedAt: t,
    ...over,
  };
}

// ---- a gateway on an ephemeral port fed directly (no Kafka) ----

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger, type Logger } from '../../common/logger.ts';
import { createRegistry } from '../../common/metrics.ts';
import type { KafkaClients } from '../../common/kafka.ts';
import type { ComponentContext } from '../../common/component.ts';
import { GatewayConfig, type GatewayConfigInput } from './config.schema.ts';
import { DirectLiveSource } from './live-source.ts';
import { start, type GatewayHandle } from './index.ts';

export const OPERATOR_TOKEN = 'operator-token-0123456789';
export const VIEWER_TOKEN = 'viewer-token-0123456789';

const noKafka: KafkaClients = {
  brokers: [],
  producer: () => {
    throw new Error('no Kafka in this test');
  },
  consumer: () => {
    throw new Error('no Kafka in this test');
  },
  admin: () => {
    throw new Error('no Kafka in this test');
  },
};

export interface TestGateway {
  gw: GatewayHandle;
  live: DirectLiveSource;
  store: MemoryStore;
  alerts: MemoryAlerts;
  close(): Promise<void>;
}

export async function startTestGateway(over: GatewayConfigInput = {}, opts: { kafka?: KafkaClients; logger?: Logger; direct?: boolean } = {}): Promise<TestGateway> {
  const config = GatewayConfig.parse({
    host: '127.0.0.1',
    port: 0,
    ui: { autoBuild: false, dir: mkdtempSync(join(tmpdir(), 'pw-gw-ui-')) },
    ...over,
    auth: {
      tokens: [
        { token: OPERATOR_TOKEN, role: 'operator', name: 'olga' },
        { token: VIEWER_TOKEN, role: 'viewer', name: 'victor' },
      ],
      users: [{ username: 'olga', password: 'operator-pass', role: 'operator' }],
      ...(over.auth ?? {}),
    },
  });
  const ctx: ComponentContext = { logger: opts.logger ?? silentLogger(), metrics: createRegistry('gateway'), kafka: opts.kafka ?? noKafka, dataDir: mkdtempSync(join(tmpdir(), 'pw-gw-')) };
  const store = new MemoryStore();
  const alerts = new MemoryAlerts();
  const live = new DirectLiveSource();
  const direct = opts.direct ?? !opts.kafka;
  const gw = await start(config, ctx, { store, alerts, ...(direct ? { live } : {}) });
  // The alert service publishes every change; with no Kafka the test feed carries it.
  if (direct) alerts.onChange = (a) => live.alerts([a]);
  return { gw, live, store, alerts, close: () => gw.close() };
}

export function reading(machine: string, sensor: string, ts: number, value: number, over: Partial<Reading> = {}): Reading {
  return { site: 'plant1', line: 'lineA', machine, sensor, ts, value, unit: 'C', receivedAt: ts, ...over };
}
