/**
 * `npm run bench:alerts` — cost of the alert service's hot paths, each beside a baseline measured
 * in the same run (compare the ratios; the machine is shared and noisy):
 *  1. readings intake: `ingestRecord` (JSON + validation + default rules + a threshold and a rate
 *     rule + deadman bookkeeping) vs JSON.parse + zod validation alone of the same records;
 *  2. score intake: the same for anomaly scores (likelihood rules);
 *  3. alert state changes: opening N alerts (journal op + publish queue + grouping) vs appending
 *     the same number of ops to a bare journal;
 *  4. webhook delivery: N signed notifications through the outbox to a local receiver vs the same
 *     bodies POSTed with plain sequential fetch.
 * Options: --records 20000 --sensors 10 --alerts 10000 --deliveries 300 --rounds 3
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
  },
});
const RECORDS = Number(args.records);
const SENSORS = Number(args.sensors);
const ALERTS = Number(args.alerts);
const DELIVERIES = Number(args.deliveries);
const ROUNDS = Number(args.rounds);

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

const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
for (const r of rows) console.log(r.map((cell, c) => (c === 0 || c === 3 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  '));
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/alerts.csv', rows.map((r) => r.map((c) => c.replace(/,/g, '')).join(',')).join('\n') + '\n');
console.log(`\n(best of ${ROUNDS} rounds; ${RECORDS} records × ${SENSORS} per record; CSV in bench/results/alerts.csv)`);
for (const d of dirs) rmSync(d, { recursive: true, force: true });
