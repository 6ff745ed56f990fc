/**
 * `npm run bench:alerts` — cost of the alert service's hot paths, each beside a baseline measured
 * in the same run (compare the ratios; the machine is shared and noisy):
 *  1. readings intake: `ingestRecord` (JSON + validation + default rules + a threshold and a rate
 *     rule + deadman bookkeeping) vs JSON.parse + zod validation alone of the same records;
 *  2. score intake: the same for anomaly scores (likelihood rules);
 *  3. alert state changes: opening N alerts (journal op + publish queue + grouping) vs appending
 *     the same number of ops to a bare journal;
 *  4. webhook delivery: N signed notifications through the outbox to a local receiver vs the same
 *     bodies POSTed with plain sequential fetch;
 *  5. outage: the receiver answers 503 for --outage seconds while --machines machines fire and then
 *     resolve, with a service restart in the middle; delivered / lost / duplicated notifications and
 *     the drain time after recovery, beside the same scenario with the receiver up.
 * Options: --records 20000 --sensors 10 --alerts 10000 --deliveries 300 --rounds 3 --outage 20 --machines 50
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { silentLogger } from '../common/logger.ts';
import { ReadingRecord, ScoreRecord, type Reading, type Score } from '../common/messages.ts';
import { createRegistry } from '../common/metrics.ts';
import { TOPICS } from '../common/topics.ts';
import { AlertsConfig } from '../services/alerts/config.schema.ts';
import { Journal } from '../services/alerts/journal.ts';
import { AlertService } from '../services/alerts/service.ts';
import { DEFAULT_RULES } from '../services/alerts/rules.ts';
import { startWebhookReceiver } from '../test/helpers/webhook-receiver.ts';

const { values: args } = parseArgs({
  options: {
    records: { type: 'string', default: '20000' },
    sensors: { type: 'string', default: '10' },
    alerts: { type: 'string', default: '10000' },
    deliveries: { type: 'string', default: '300' },
    rounds: { type: 'string', default: '3' },
    outage: { type: 'string', default: '20' },
    machines: { type: 'string', default: '50' },
  },
});
const RECORDS = Number(args.records);
const SENSORS = Number(args.sensors);
const ALERTS = Number(args.alerts);
const DELIVERIES = Number(args.deliveries);
const ROUNDS = Number(args.rounds);
const OUTAGE_S = Number(args.outage);
const MACHINES = Number(args.machines);

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'plantwatch-bench-alerts-'));
  dirs.push(d);
  return d;
};

/** Default rules plus a threshold and a rate rule, unless `extra.rules` replaces them. */
function service(extra: Record<string, unknown> = {}): AlertService {
  return new AlertService({
    config: AlertsConfig.parse({
      rules: [...DEFAULT_RULES, { id: 'hot', type: 'threshold', above: 1e9, hysteresis: 1, scope: { sensor: 's0' } }, { id: 'jump', type: 'rate', maxPerSecond: 1e9 }],
      ...extra,
    }),
    dataDir: tmp(),
    logger: silentLogger(),
    metrics: createRegistry('alerts'),
  });
}

function best(fn: () => number): number {
  let b = Infinity;
  for (let i = 0; i < ROUNDS; i++) b = Math.min(b, fn());
  return b;
}
async function bestAsync(fn: () => Promise<number>): Promise<number> {
  let b = Infinity;
  for (let i = 0; i < ROUNDS; i++) b = Math.min(b, await fn());
  return b;
}

const t0 = Date.now();
const readingRecords = Array.from({ length: RECORDS }, (_, i) => {
  const machine = `m${i % 100}`;
  const ts = t0 + Math.floor(i / 100) * 1000;
  const batch: Reading[] = Array.from({ length: SENSORS }, (_, s) => ({ site: 'p', line: 'l', machine, sensor: `s${s}`, ts, value: Math.sin(i + s), receivedAt: ts }));
  return Buffer.from(JSON.stringify(batch));
});
const scoreRecords = Array.from({ length: RECORDS }, (_, i) => {
  const machine = `m${i % 100}`;
  const ts = t0 + Math.floor(i / 100) * 1000;
  const batch: Score[] = Array.from({ length: SENSORS }, (_, s) => ({
    kind: 'sensor', site: 'p', line: 'l', machine, sensor: `s${s}`, ts, value: 1, predicted: 1, lower: 0, upper: 2, rawScore: 0.1, likelihood: 0.2, modelVersion: 'v', warmingUp: false,
  }));
  return Buffer.from(JSON.stringify(batch));
});

const rows: string[][] = [['measure', 'alert service', 'baseline', 'baseline is', 'service / baseline']];
const fmt = (n: number) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1));

// 1 + 2: intake
for (const [name, topic, records, schema] of [
  ['readings/s intake', TOPICS.readings, readingRecords, ReadingRecord],
  ['scores/s intake', TOPICS.scores, scoreRecords, ScoreRecord],
] as const) {
  const svc = service();
  const src = { topic, partition: 0, offset: 0 };
  const baseMs = best(() => {
    const s = performance.now();
    // The same validation the service does (array branch of the record union).
    for (const r of records) schema.options[1].safeParse(JSON.parse(r.toString('utf8')));
    return performance.now() - s;
  });
  const svcMs = best(() => {
    const s = performance.now();
    for (const r of records) svc.ingestRecord(topic, r, src);
    return performance.now() - s;
  });
  await svc.close();
  const n = RECORDS * SENSORS;
  rows.push([name, fmt(n / (svcMs / 1000)), fmt(n / (baseMs / 1000)), 'JSON.parse + zod', `${((baseMs / svcMs) * 100).toFixed(0)}%`]);
}

// 3: state changes
{
  const svcMs = best(() => {
    const svc = service({ rules: [{ id: 'anom', type: 'likelihood', threshold: 0.9 }], grouping: { groupWaitMs: 3_600_000 } });
    const s = performance.now();
    for (let i = 0; i < ALERTS; i++) {
      svc.ingestScore({ kind: 'sensor', site: 'p', line: 'l', machine: `m${i % 10}`, sensor: `x${i}`, ts: t0, value: 1, predicted: 1, lower: 0, upper: 2, rawScore: 9, likelihood: 0.95, modelVersion: 'v', warmingUp: false });
    }
    const ms = performance.now() - s;
    void svc.close();
    return ms;
  });
  const baseMs = best(() => {
    const j = new Journal(tmp());
    j.load();
    const s = performance.now();
    for (let i = 0; i < ALERTS; i++) j.append({ t: 'alert', record: { fingerprint: `${i}`, payload: 'x'.repeat(400) } });
    const ms = performance.now() - s;
    j.close();
    return ms;
  });
  rows.push(['alert state changes/s', fmt(ALERTS / (svcMs / 1000)), fmt(ALERTS / (baseMs / 1000)), 'bare journal append', `${((baseMs / svcMs) * 100).toFixed(0)}%`]);
}

// 4: delivery
{
  const rx = await startWebhookReceiver();
  const body = JSON.stringify({ version: '1', alerts: [{ summary: 'x'.repeat(300) }] });
  const baseMs = await bestAsync(async () => {
    const s = performance.now();
    for (let i = 0; i < DELIVERIES; i++) {
      const res = await fetch(rx.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      await res.text();
    }
    return performance.now() - s;
  });
  const svcMs = await bestAsync(async () => {
    const before = rx.accepted().length;
    const svc = service({
      rules: [{ id: 'anom', type: 'likelihood', threshold: 0.9 }],
      receivers: [{ name: 'bench', url: rx.url, secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', rateLimit: { perSecond: 1e6, burst: 1e6 } }],
      grouping: { groupWaitMs: 0, groupIntervalMs: 1000 },
    });
    svc.start();
    const s = performance.now();
    // One machine per notification: each becomes its own group → its own signed delivery.
    for (let i = 0; i < DELIVERIES; i++) {
      svc.ingestScore({ kind: 'sensor', site: 'p', line: 'l', machine: `d${i}`, sensor: 'x', ts: t0, value: 1, predicted: 1, lower: 0, upper: 2, rawScore: 9, likelihood: 0.999, modelVersion: 'v', warmingUp: false });
    }
    await rx.waitForAccepted(before + DELIVERIES, 120_000);
    const ms = performance.now() - s;
    await svc.close();
    return ms;
  });
  await rx.close();
  rows.push(['webhook deliveries/s', fmt(DELIVERIES / (svcMs / 1000)), fmt(DELIVERIES / (baseMs / 1000)), 'plain sequential fetch', `${((baseMs / svcMs) * 100).toFixed(0)}%`]);
}

// 5: outage — receiver down for --outage seconds while --machines machines fire, then resolve (with a
// service restart in the middle); after recovery every notification must arrive exactly once.
// Baseline: the same scenario with the receiver up. Figures: time from recovery to the last delivery.
async function outageRun(downMs: number): Promise<{ drainMs: number; sent: number; lost: number; duplicates: number }> {
  const downUntil = Date.now() + downMs;
  const rx = await startWebhookReceiver(() => (Date.now() < downUntil ? { status: 503 } : { status: 204 }));
  const dir = tmp();
  const cfg = {
    stateDir: dir,
    rules: [{ id: 'anom', type: 'likelihood', threshold: 0.9 }],
    receivers: [{ name: 'ops', url: rx.url, secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', rateLimit: { perSecond: 50, burst: 50 }, retry: { initialDelayMs: 250, maxDelayMs: 2000 } }],
    grouping: { groupWaitMs: 200, groupIntervalMs: 500 },
  };
  const ids = new Set<string>();
  const scoreOf = (m: number, likelihood: number) =>
    ({ kind: 'sensor', site: 'p', line: 'l', machine: `o${m}`, sensor: 'x', ts: Date.now(), value: 1, predicted: 1, lower: 0, upper: 2, rawScore: 1, likelihood, modelVersion: 'v', warmingUp: false }) as const;
  let svc = service(cfg);
  svc.start();
  for (let m = 0; m < MACHINES; m++) svc.ingestScore(scoreOf(m, 0.99));
  await new Promise((r) => setTimeout(r, Math.min(downMs / 2, 1500)));
  for (const d of svc.outbox.pending()) ids.add(d.id);
  await svc.close();
  svc = service(cfg); // restart in the middle
  svc.start();
  await new Promise((r) => setTimeout(r, 1000)); // past group_interval: the resolutions form their own notifications
  for (let m = 0; m < MACHINES; m++) svc.ingestScore(scoreOf(m, 0.1));
  const lastIngestAt = Date.now();
  const expected = MACHINES * 2;
  const end = Date.now() + downMs + 120_000;
  while (rx.accepted().length < expected && Date.now() < end) {
    for (const d of svc.outbox.pending()) ids.add(d.id);
    await new Promise((r) => setTimeout(r, 50));
  }
  const accepted = rx.accepted();
  // From the moment delivery can succeed (receiver up and everything queued) to the last delivery.
  const drainMs = Math.max(0, (accepted.at(-1)?.receivedAt ?? Date.now()) - Math.max(downUntil, lastIngestAt));
  await new Promise((r) => setTimeout(r, 1000));
  const perId = new Map<string, number>();
  for (const r of rx.accepted()) perId.set(String(r.headers['webhook-id']), (perId.get(String(r.headers['webhook-id'])) ?? 0) + 1);
  await svc.close();
  await rx.close();
  return { drainMs, sent: perId.size, lost: expected - perId.size, duplicates: [...perId.values()].reduce((a, n) => a + n - 1, 0) };
}
if (OUTAGE_S > 0) {
  const base = await outageRun(0);
  const out = await outageRun(OUTAGE_S * 1000);
  rows.push([`outage ${OUTAGE_S}s: notifications delivered`, `${out.sent}/${MACHINES * 2}`, `${base.sent}/${MACHINES * 2}`, 'receiver up', '']);
  rows.push(['outage: lost / duplicated', `${out.lost} / ${out.duplicates}`, `${base.lost} / ${base.duplicates}`, 'receiver up', '']);
  rows.push(['outage: last resolve/recovery → last delivery (ms)', fmt(out.drainMs), fmt(base.drainMs), 'receiver up', `${(out.drainMs / Math.max(1, base.drainMs)).toFixed(1)}x`]);
}

const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
for (const r of rows) console.log(r.map((cell, c) => (c === 0 || c === 3 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  '));
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/alerts.csv', rows.map((r) => r.map((c) => c.replace(/,/g, '')).join(',')).join('\n') + '\n');
console.log(`\n(best of ${ROUNDS} rounds; ${RECORDS} records × ${SENSORS} per record; CSV in bench/results/alerts.csv)`);
for (const d of dirs) rmSync(d, { recursive: true, force: true });
