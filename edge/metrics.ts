/**
 * Edge metrics (`plantwatch_edge_*`) on the component's registry.
 */
import { prom, type Registry } from '../common/metrics.ts';

export function createEdgeMetrics(registry: Registry) {
  const r = [registry];
  const collectors: (() => void)[] = [];
  return {
    /** Registers a function run before each scrape (for gauges read from live state). */
    onCollect: (fn: () => void) => collectors.push(fn),
    received: new prom.Counter({ name: 'plantwatch_edge_received_messages_total', help: 'MQTT messages received, by mapping rule (unmapped = no rule matched) and QoS', labelNames: ['rule', 'qos'], registers: r }),
    readings: new prom.Counter({ name: 'plantwatch_edge_readings_total', help: 'Valid readings decoded, by Kafka topic', labelNames: ['topic'], registers: r }),
    forwarded: new prom.Counter({ name: 'plantwatch_edge_forwarded_records_total', help: 'Kafka records acknowledged by Kafka, by topic (per-topic rates: rate() of this)', labelNames: ['topic'], registers: r }),
    deadLettered: new prom.Counter({ name: 'plantwatch_edge_dead_letters_total', help: 'Payloads or readings sent to the dead-letter topic, by code', labelNames: ['code'], registers: r }),
    spooled: new prom.Counter({ name: 'plantwatch_edge_spooled_records_total', help: 'Records written to the on-disk spool while Kafka was unavailable', registers: r }),
    replayed: new prom.Counter({ name: 'plantwatch_edge_replayed_records_total', help: 'Spooled records delivered to Kafka', registers: r }),
    dropped: new prom.Counter({ name: 'plantwatch_edge_dropped_records_total', help: 'Records dropped because the spool was full (spool.whenFull=drop)', registers: r }),
    spoolBytes: new prom.Gauge({ name: 'plantwatch_edge_spool_bytes', help: 'Bytes in the spool not yet delivered', registers: r }),
    spoolErrors: new prom.Counter({ name: 'plantwatch_edge_spool_errors_total', help: 'Spool write failures (disk errors)', registers: r }),
    pending: new prom.Gauge({
      name: 'plantwatch_edge_pending_records',
      help: 'Records accepted but not yet durable',
      registers: r,
      collect() {
        for (const fn of collectors) fn();
      },
    }),
    mode: new prom.Gauge({ name: 'plantwatch_edge_spool_mode', help: '1 while records go through the spool (Kafka unavailable or replay in progress)', registers: r }),
    backpressure: new prom.Gauge({ name: 'plantwatch_edge_backpressure', help: '1 while the spool is full and acknowledgements are held back', registers: r }),
    kafkaErrors: new prom.Counter({ name: 'plantwatch_edge_kafka_errors_total', help: 'Failed or timed-out Kafka sends', registers: r }),
    kafkaLatency: new prom.Histogram({ name: 'plantwatch_edge_kafka_send_seconds', help: 'Kafka produce latency (send until acks=-1 ack)', buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: r }),
    ackLatency: new prom.Histogram({ name: 'plantwatch_edge_ack_delay_seconds', help: 'Time from receipt of an MQTT message until it is durable and may be acknowledged', buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: r }),
    sparkplug: new prom.Counter({ name: 'plantwatch_edge_sparkplug_events_total', help: 'Sparkplug B session events: birth, death, seq_gap, data_before_birth, unknown_alias', labelNames: ['event'], registers: r }),
    rebirths: new prom.Counter({ name: 'plantwatch_edge_sparkplug_rebirth_requests_total', help: 'Rebirth requests (NCMD Node Control/Rebirth) sent', registers: r }),
    authFailures: new prom.Counter({ name: 'plantwatch_edge_auth_denied_total', help: 'Denied connects, publishes and subscribes (embedded broker)', labelNames: ['what'], registers: r }),
    clients: new prom.Gauge({ name: 'plantwatch_edge_connected_clients', help: 'MQTT clients connected to the embedded broker', registers: r }),
  };
}
export type EdgeMetrics = ReturnType<typeof createEdgeMetrics>;
