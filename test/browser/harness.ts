/**
 * A small live plant behind a real gateway, for the browser tests and for looking at the UI by hand
 * (`npx tsx test/browser/harness.ts` prints a sign-in link). Machines publish readings every second,
 * a toy model scores them (predicted value, band, likelihood), a "storage writer" stores them with a
 * delay and a toy alert rule raises a critical alert when a machine's likelihood stays high.
 * `injectFault(machine)` makes one sensor of that machine drift far out of its band.
 */
import type { Alert, Reading, SensorScore, MachineScore } from '../../common/messages.ts';
import { startTestGateway, testAlert, OPERATOR_TOKEN, VIEWER_TOKEN, type TestGateway } from '../../services/gateway/testing.ts';
import type { GatewayConfigInput } from '../../services/gateway/config.schema.ts';

const SENSORS = [
  { sensor: 'temperature', unit: '°C', base: 68, amp: 3, noise: 0.4 },
  { sensor: 'vibration', unit: 'mm/s', base: 2.2, amp: 0.4, noise: 0.08 },
  { sensor: 'pressure', unit: 'bar', base: 6.1, amp: 0.3, noise: 0.05 },
  { sensor: 'current', unit: 'A', base: 14, amp: 1.5, noise: 0.2 },
];

export interface Harness {
  url: string;
  operatorToken: string;
  viewerToken: string;
  machines: string[];
  tg: TestGateway;
  /** Event times of every live tick published so far (all machines share them). */
  publishedTs: number[];
  injectFault(machine: string, sensor?: string): void;
  clearFault(machine: string): void;
  /** Stops publishing (the UI should show the stale banner). */
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

export async function startHarness(opts: { machines?: string[]; periodMs?: number; historyMs?: number; gateway?: GatewayConfigInput } = {}): Promise<Harness> {
  const machines = opts.machines ?? ['press-01', 'press-02', 'lathe-01', 'lathe-02', 'mill-01', 'pump-01'];
  const periodMs = opts.periodMs ?? 1000;
  const tg = await startTestGateway({ ui: { autoBuild: true, dir: '' }, live: { staleAfterMs: 5000, statusIntervalMs: 1000 }, ...opts.gateway });
  // As the storage writer would: every alert state change is stored (the machine view's markers read them).
  const publishAlert = tg.alerts.onChange;
  tg.alerts.onChange = (a) => {
    publishAlert(a);
    void tg.store.writeAlerts([a]);
  };
  const line = (m: string) => (m.startsWith('pump') ? 'utilities' : m.startsWith('press') ? 'stamping' : 'machining');
  const faults = new Map<string, { sensor: string; since: number }>();
  const highSince = new Map<string, number>();
  let paused = false;
  const publishedTs: number[] = [];

  const sample = (m: string, s: (typeof SENSORS)[number], ts: number, i: number): { value: number; predicted: number } => {
    const phase = (machines.indexOf(m) + 1) * 0.7;
    const predicted = s.base + s.amp * Math.sin(ts / 20_000 + phase);
    let value = predicted + s.noise * Math.sin(ts / 1300 + i * 1.7 + phase * 3);
    const f = faults.get(m);
    if (f && f.sensor === s.sensor) value += s.amp * 2 + (s.amp * 4 * Math.min(ts - f.since, 10_000)) / 10_000;
    return { value, predicted };
  };

  const tick = (ts: number, live: boolean) => {
    const readings: Reading[] = [];
    const scores: (SensorScore | MachineScore)[] = [];
    for (const m of machines) {
      let worst = 0;
      SENSORS.forEach((s, i) => {
        const { value, predicted } = sample(m, s, ts, i);
        const band = s.noise * 3;
        const z = Math.abs(value - predicted) / band;
        const likelihood = Math.min(1, Math.max(0, (z - 0.6) / 2));
        worst = Math.max(worst, likelihood);
        readings.push({ site: 'plant1', line: line(m), machine: m, sensor: s.sensor, ts, value, unit: s.unit, quality: 'good', receivedAt: ts });
        scores.push({ kind: 'sensor', site: 'plant1', line: line(m), machine: m, sensor: s.sensor, ts, value, predicted, lower: predicted - band, upper: predicted + band, rawScore: z, likelihood, modelVersion: 'harness-1', warmingUp: false });
      });
      scores.push({ kind: 'machine', site: 'plant1', line: line(m), machine: m, ts, rawScore: worst * 3, likelihood: worst, contributions: {}, modelVersion: 'harness-1', warmingUp: false });
      if (live) evaluateAlert(m, worst, ts);
    }
    return { readings, scores };
  };

  const evaluateAlert = (m: string, worst: number, ts: number) => {
    const fp = `plant1/${line(m)}/${m}/anomaly`;
    const existing = tg.alerts.byFingerprint.get(fp);
    if (worst >= 0.9) {
      if (!highSince.has(m)) highSince.set(m, ts);
      if ((!existing || existing.status === 'resolved') && ts - highSince.get(m)! >= 2 * periodMs) {
        const f = faults.get(m);
        tg.alerts.upsert(testAlert({ fingerprint: fp, site: 'plant1', line: line(m), machine: m, sensor: f?.sensor, rule: 'anomaly-likelihood', summary: `${m}: ${f?.sensor ?? 'machine'} far outside its predicted band`, value: worst, startsAt: ts, updatedAt: ts }));
      }
    } else {
      highSince.delete(m);
      if (existing && existing.status !== 'resolved') tg.alerts.upsert({ ...existing, status: 'resolved', endsAt: ts, updatedAt: Math.max(ts, existing.updatedAt + 1) } as Alert);
    }
  };

  // One hour of history already in the store.
  const now = Date.now();
  const historyMs = opts.historyMs ?? 3600_000;
  for (let ts = now - historyMs; ts < now - 2 * periodMs; ts += Math.max(periodMs, 5000)) {
    const { readings, scores } = tick(ts, false);
    await tg.store.writeReadings(readings);
    await tg.store.writeScores(scores);
  }
  const timer = setInterval(() => {
    if (paused) return;
    const ts = Date.now();
    publishedTs.push(ts);
    const { readings, scores } = tick(ts, true);
    tg.live.readings(readings);
    tg.live.scores(scores);
    // The storage writer lags the live stream a little.
    setTimeout(() => void tg.store.writeReadings(readings).then(() => tg.store.writeScores(scores)), 700);
  }, periodMs);

  return {
    url: tg.gw.url,
    operatorToken: OPERATOR_TOKEN,
    viewerToken: VIEWER_TOKEN,
    machines,
    tg,
    publishedTs,
    injectFault: (m, sensor = 'temperature') => void faults.set(m, { sensor, since: Date.now() }),
    clearFault: (m) => void faults.delete(m),
    pause: () => {
      paused = true;
      tg.live.connected = true;
    },
    resume: () => {
      paused = false;
    },
    close: async () => {
      clearInterval(timer);
      await tg.close();
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const h = await startHarness();
  console.log(`dashboard: ${h.url}/?token=${h.operatorToken}  (viewer: ${h.url}/?token=${h.viewerToken})`);
  process.on('SIGINT', () => void h.close().then(() => process.exit(0)));
}
