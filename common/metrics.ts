/**
 * Prometheus metrics with prom-client. Each component owns a Registry (names prefixed
 * `plantwatch_<component>_`); a process serves the merged registries on `/metrics` and each one on
 * `/metrics/<component>`, so one `npm start` process and one-component deployments look the same.
 */
import client from 'prom-client';

export { client as prom };
export type Registry = client.Registry;

export function createRegistry(component: string, collectDefaults = false): client.Registry {
  const registry = new client.Registry();
  registry.setDefaultLabels({ component });
  if (collectDefaults) client.collectDefaultMetrics({ register: registry, prefix: 'plantwatch_' });
  return registry;
}

/**
 * Prometheus text for several registries. Each registry renders itself so its default labels
 * (`component`) stay on every sample; `Registry.merge` would drop them. Metric names differ per
 * component (prefix), so the concatenation is a valid exposition.
 */
export async function renderMetrics(registries: client.Registry[]): Promise<{ contentType: string; body: string }> {
  const parts = await Promise.all([...new Set(registries)].map((r) => r.metrics()));
  return { contentType: client.Registry.PROMETHEUS_CONTENT_TYPE, body: parts.filter((p) => p.length > 0).join('\n') };
}
