/** The alert service's Prometheus metrics (names `plantwatch_alerts_*`), created once per registry. */
import { prom, type Registry } from '../../common/metrics.ts';

export interface AlertsMetrics {
  recordsConsumed: prom.Counter<'topic'>;
  recordsInvalid: prom.Counter<'topic' | 'code'>;
  stateChanges: prom.Counter<'rule' | 'status'>;
  activeAlerts: prom.Gauge<'status' | 'severity'>;
  notifications: prom.Counter<'group_status'>;
  webhookSent: prom.Counter<'receiver'>;
  webhookFailed: prom.Counter<'receiver' | 'reason'>;
  webhookRetries: prom.Counter<'receiver'>;
  webhookLatency: prom.Histogram<'receiver'>;
  outboxDepth: prom.Gauge<'receiver'>;
  published: prom.Counter;
  publishQueueDepth: prom.Gauge;
  journalBytes: prom.Gauge;
}

const cache = new WeakMap<Registry, AlertsMetrics>();

export function alertsMetrics(registry: Registry): AlertsMetrics {
  const existing = cache.get(registry);
  if (existing) return existing;
  const registers = [registry];
  const m: AlertsMetrics = {
    recordsConsumed: new prom.Counter({ name: 'plantwatch_alerts_records_consumed_total', help: 'Kafka records consumed', labelNames: ['topic'], registers }),
    recordsInvalid: new prom.Counter({
      name: 'plantwatch_alerts_records_invalid_total',
      help: 'Kafka records refused and sent to the dead-letter topic',
      labelNames: ['topic', 'code'],
      registers,
    }),
    stateChanges: new prom.Counter({ name: 'plantwatch_alerts_state_changes_total', help: 'Alert state changes', labelNames: ['rule', 'status'], registers }),
    activeAlerts: new prom.Gauge({ name: 'plantwatch_alerts_active', help: 'Alerts now pending or firing', labelNames: ['status', 'severity'], registers }),
    notifications: new prom.Counter({
      name: 'plantwatch_alerts_notifications_total',
      help: 'Group notifications produced (before fan-out to receivers)',
      labelNames: ['group_status'],
      registers,
    }),
    webhookSent: new prom.Counter({ name: 'plantwatch_alerts_webhook_sent_total', help: 'Webhook notifications delivered (2xx)', labelNames: ['receiver'], registers }),
    webhookFailed: new prom.Counter({
      name: 'plantwatch_alerts_webhook_failed_total',
      help: 'Webhook notifications given up: rejected (4xx) or expired (deadline passed)',
      labelNames: ['receiver', 'reason'],
      registers,
    }),
    webhookRetries: new prom.Counter({ name: 'plantwatch_alerts_webhook_retries_total', help: 'Webhook attempts that will be retried', labelNames: ['receiver'], registers }),
    webhookLatency: new prom.Histogram({
      name: 'plantwatch_alerts_webhook_latency_seconds',
      help: 'Duration of one webhook HTTP attempt',
      labelNames: ['receiver'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    outboxDepth: new prom.Gauge({ name: 'plantwatch_alerts_outbox_depth', help: 'Notifications waiting in the outbox', labelNames: ['receiver'], registers }),
    published: new prom.Counter({ name: 'plantwatch_alerts_published_total', help: 'Alert state changes published on plantwatch.alerts', registers }),
    publishQueueDepth: new prom.Gauge({ name: 'plantwatch_alerts_publish_queue_depth', help: 'Alert state changes waiting to be published', registers }),
    journalBytes: new prom.Gauge({ name: 'plantwatch_alerts_journal_bytes', help: 'Size of the state journal since the last snapshot', registers }),
  };
  cache.set(registry, m);
  return m;
}
