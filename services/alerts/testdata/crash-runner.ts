/**
 * Child process for the crash test: an alert service whose receiver is down. It raises two alerts,
 * then keeps retrying until the test kills it with SIGKILL (no close(), no flush).
 * Env: ALERTS_DIR, RECEIVER_URL, WEBHOOK_SECRET.
 */
import { silentLogger } from '../../../common/logger.ts';
import { createRegistry } from '../../../common/metrics.ts';
import { AlertsConfig } from '../config.schema.ts';
import { AlertService } from '../service.ts';

const svc = new AlertService({
  config: AlertsConfig.parse({
    rules: [{ id: 'anomaly', type: 'likelihood', threshold: 0.9 }],
    receivers: [{ name: 'ops', url: process.env.RECEIVER_URL, secret: process.env.WEBHOOK_SECRET, retry: { initialDelayMs: 100, maxDelayMs: 300 } }],
    grouping: { groupWaitMs: 100 },
    stateDir: process.env.ALERTS_DIR,
  }),
  dataDir: '/nonexistent',
  logger: silentLogger(),
  metrics: createRegistry('alerts'),
});
svc.start();
for (const sensor of ['bearing', 'spindle']) {
  svc.ingestScore({
    kind: 'sensor', site: 'north', line: 'l1', machine: 'press', sensor, ts: Date.now(), value: 1, predicted: 1, lower: 0, upper: 2,
    rawScore: 5, likelihood: 0.97, modelVersion: 'v1', warmingUp: false,
  });
}
process.stdout.write(`${JSON.stringify({ ready: true, open: (await svc.list()).length })}\n`);
setInterval(() => undefined, 1000);
