/** Prometheus metrics of the broker (prom-client, on the component's registry). */
import { prom, type Registry } from '../../../common/metrics.ts';

export function createBrokerMetrics(registry: Registry) {
  const reg = [registry];
  return {
    connections: new prom.Gauge({ name: 'plantwatch_broker_connections', help: 'Open client connections', registers: reg }),
    connectionsTotal: new prom.Counter({ name: 'plantwatch_broker_connections_total', help: 'Client connections accepted', registers: reg }),
    requests: new prom.Counter({ name: 'plantwatch_broker_requests_total', help: 'Requests handled, by API', labelNames: ['api'], registers: reg }),
    errors: new prom.Counter({ name: 'plantwatch_broker_errors_total', help: 'Kafka error codes returned, by API and error', labelNames: ['api', 'error'], registers: reg }),
    badFrames: new prom.Counter({ name: 'plantwatch_broker_bad_frames_total', help: 'Connections closed for a malformed, oversized or unsupported request', labelNames: ['reason'], registers: reg }),
    bytesIn: new prom.Counter({ name: 'plantwatch_broker_received_bytes_total', help: 'Bytes received from clients', registers: reg }),
    bytesOut: new prom.Counter({ name: 'plantwatch_broker_sent_bytes_total', help: 'Bytes sent to clients', registers: reg }),
    producedRecords: new prom.Counter({ name: 'plantwatch_broker_produced_records_total', help: 'Records appended', registers: reg }),
    producedBytes: new prom.Counter({ name: 'plantwatch_broker_produced_bytes_total', help: 'Record batch bytes appended', registers: reg }),
    fetchedBytes: new prom.Counter({ name: 'plantwatch_broker_fetched_bytes_total', help: 'Record batch bytes served by Fetch', registers: reg }),
    latency: new prom.Histogram({
      name: 'plantwatch_broker_request_duration_seconds',
      help: 'Request handling time, by API (Fetch includes long-poll waiting)',
      labelNames: ['api'],
      buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers: reg,
    }),
    rebalances: new prom.Counter({ name: 'plantwatch_broker_group_rebalances_total', help: 'Completed consumer group rebalances', registers: reg }),
    retentionDeletedSegments: new prom.Counter({ name: 'plantwatch_broker_retention_deleted_segments_total', help: 'Segments deleted by retention', registers: reg }),
  };
}

export type BrokerMetrics = ReturnType<typeof createBrokerMetrics>;
