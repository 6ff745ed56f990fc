import { describe, expect, it } from 'vitest';
import { createRegistry, prom, renderMetrics } from './metrics.ts';

describe('common > metrics', () => {
  it('renders several component registries with each sample labelled by its component', async () => {
    const edge = createRegistry('edge');
    const storage = createRegistry('storage');
    new prom.Counter({ name: 'plantwatch_edge_received_total', help: 'received', registers: [edge] }).inc(3);
    new prom.Counter({ name: 'plantwatch_storage_points_written_total', help: 'written', registers: [storage] }).inc(5);
    const { body, contentType } = await renderMetrics([edge, storage, edge]);
    expect(contentType).toMatch(/^text\/plain/);
    expect(body).toContain('plantwatch_edge_received_total{component="edge"} 3');
    expect(body).toContain('plantwatch_storage_points_written_total{component="storage"} 5');
    expect(body.match(/# HELP plantwatch_edge_received_total/g)).toHaveLength(1);
  });
});
