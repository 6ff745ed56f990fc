/**
 * The platform with every movable component in a worker thread (broker, edge, anomaly, alerts):
 * the main thread wires them from the workers' plain data (broker list, MQTT URL, alert API URL),
 * readings flow MQTT → edge → broker → anomaly/storage, the gateway reaches the alert service over
 * HTTP, /metrics shows the workers' registries, and close() ends every worker.
 */
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plannedReadings, startTestPlatform, waitUntil } from '../test/e2e/harness.ts';

describe('platform > isolation: components in worker threads', () => {
  let platform: Awaited<ReturnType<typeof startTestPlatform>>;
  beforeAll(async () => {
    platform = await startTestPlatform({ overrides: { isolation: { broker: 'worker', edge: 'worker', anomaly: 'worker', alerts: 'worker' } } });
  }, 120_000);
  afterAll(async () => {
    await platform?.dispose();
  });

  it('relays readings through the workers, scores and stores them, and serves their metrics', async () => {
    for (const name of ['broker', 'edge', 'anomaly', 'alerts'] as const) expect(platform.components[name], name).toHaveProperty('threadId');
    expect(platform.kafkaBrokers[0]).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(platform.mqttUrl).toMatch(/^mqtt:\/\/127\.0\.0\.1:\d+$/);

    const sent = plannedReadings(['press-1'], ['temperature'], 30);
    const client = await mqtt.connectAsync(platform.mqttUrl!, { clientId: 'iso-device' });
    await client.publishAsync('plant/plant1/line1/press-1/temperature', JSON.stringify(sent.map((r) => ({ ts: r.ts, value: r.value }))), { qos: 1 });
    await client.endAsync();

    const store = platform.components.storage!.store;
    const q = { site: 'plant1', line: 'line1', machine: 'press-1', sensor: 'temperature', from: sent[0].ts - 1, to: sent.at(-1)!.ts + 1, maxPoints: 1000 };
    await waitUntil('readings stored', async () => (await store.querySeries(q))[0]?.points.length === sent.length, 60_000);
    await waitUntil('scores stored', async () => ((await store.queryScores(q))[0]?.points.length ?? 0) > 0, 60_000);
    // The alert service in its worker answers the AlertsApi over HTTP.
    expect(Array.isArray(await platform.components.alerts!.list({ machine: 'press-1' }))).toBe(true);

    const gw = platform.components.gateway!;
    const text = await (await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${gw.demoToken}` } })).text();
    for (const c of ['broker', 'edge', 'anomaly', 'alerts']) expect(text, c).toMatch(new RegExp(`^plantwatch_${c}_\\w+\\{[^}]*component="${c}"`, 'm'));
    const res = await fetch(`${gw.url}/metrics/anomaly`);
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/plantwatch_anomaly_readings_scored_total\{[^}]*\} 30/);
  }, 150_000);
});
