/**
 * Issue 3, end to end on embedded defaults: MQTT → edge → Kafka-protocol broker → anomaly → storage
 * and gateway. Every reading sent is stored exactly once; a Socket.IO client watching one machine
 * gets that machine's live readings and scores and nothing of the other machine.
 */
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plannedReadings, startTestPlatform, waitUntil, watchMachine, type Watcher } from './harness.ts';

const SITE = 'plant1';
const LINE = 'line1';
const MACHINES = ['press-1', 'press-2'];
const SENSORS = ['temperature', 'vibration'];
const PER_SENSOR = 60;

describe('e2e > platform on embedded defaults', () => {
  let platform: Awaited<ReturnType<typeof startTestPlatform>>;
  let watcher: Watcher;
  const sent = plannedReadings(MACHINES, SENSORS, PER_SENSOR);

  beforeAll(async () => {
    platform = await startTestPlatform();
  }, 120_000);
  afterAll(async () => {
    watcher?.close();
    await platform?.dispose();
  });

  it('relays MQTT readings to storage exactly once and live to the subscribed client only', async () => {
    const gw = platform.components.gateway!;
    watcher = await watchMachine(gw, { site: SITE, line: LINE, machine: MACHINES[0] });

    const client = await mqtt.connectAsync(platform.mqttUrl!, { clientId: 'e2e-device', clean: true });
    // Half as single JSON readings, half as batched arrays: both payload forms of the contract.
    const single = sent.slice(0, sent.length / 2);
    for (const r of single) {
      await client.publishAsync(`plant/${SITE}/${LINE}/${r.machine}/${r.sensor}`, JSON.stringify({ ts: r.ts, value: r.value, unit: 'u' }), { qos: 1 });
    }
    const rest = sent.slice(sent.length / 2);
    for (const machine of MACHINES) {
      for (const sensor of SENSORS) {
        const batch = rest.filter((r) => r.machine === machine && r.sensor === sensor).map((r) => ({ ts: new Date(r.ts).toISOString(), value: r.value }));
        await client.publishAsync(`plant/${SITE}/${LINE}/${machine}/${sensor}`, JSON.stringify(batch), { qos: 1 });
      }
    }
    await client.endAsync();

    const store = platform.components.storage!.store;
    const from = sent[0].ts - 1;
    const to = sent[sent.length - 1].ts + 1;
    const counts = async () => {
      const out: Record<string, number[]> = {};
      for (const machine of MACHINES) {
        const series = await store.querySeries({ site: SITE, line: LINE, machine, from, to, maxPoints: 10_000 });
        for (const s of series) out[`${machine}/${s.sensor}`] = s.points.map((p) => p.ts);
      }
      return out;
    };
    await waitUntil('every reading stored', async () => {
      const c = await counts();
      return Object.keys(c).length === MACHINES.length * SENSORS.length && Object.values(c).every((ts) => ts.length >= PER_SENSOR);
    }, 60_000);
    // Stored exactly once: the right count, no duplicate timestamps, the values sent.
    const stored = await counts();
    for (const machine of MACHINES) {
      for (const sensor of SENSORS) {
        const ts = stored[`${machine}/${sensor}`];
        expect(ts, `${machine}/${sensor}`).toHaveLength(PER_SENSOR);
        expect(new Set(ts).size).toBe(PER_SENSOR);
        expect(ts).toEqual(sent.filter((r) => r.machine === machine && r.sensor === sensor).map((r) => r.ts));
      }
    }
    const raw = await store.querySeries({ site: SITE, line: LINE, machine: MACHINES[1], sensor: SENSORS[1], from, to, maxPoints: 10_000 });
    expect(raw[0].resolution).toBe('raw');
    expect(raw[0].points.map((p) => p.value)).toEqual(sent.filter((r) => r.machine === MACHINES[1] && r.sensor === SENSORS[1]).map((r) => r.value));

    // Live: readings and scores of the watched machine arrive, nothing of the other.
    await waitUntil('live readings and scores for the watched machine', () => watcher.readings.length > 0 && watcher.scores.length > 0, 30_000);
    expect(watcher.readings.every((r) => r.machine === MACHINES[0])).toBe(true);
    expect(watcher.scores.every((s) => s.machine === MACHINES[0])).toBe(true);
    expect(new Set(watcher.readings.map((r) => r.sensor))).toEqual(new Set(SENSORS));

    // The anomaly service scored the stream: scores are stored too.
    const scores = await waitUntil('scores stored', async () => {
      const s = await store.queryScores({ site: SITE, line: LINE, machine: MACHINES[0], sensor: SENSORS[0], from, to, maxPoints: 10_000 });
      return s.length > 0 && s[0].points.length > 0 ? s : undefined;
    });
    expect(scores[0].points[0].likelihood).toBeGreaterThanOrEqual(0);
    expect(scores[0].points[0].likelihood).toBeLessThanOrEqual(1);
  }, 150_000);

  it('answers /metrics on every component and on the gateway', async () => {
    const gw = platform.components.gateway!;
    const urls: string[] = [`${gw.url}/metrics`];
    for (const name of ['broker', 'edge', 'anomaly', 'storage', 'alerts'] as const) {
      const base = platform.components[name]?.opsUrl;
      expect(base, `${name} ops URL`).toBeTruthy();
      urls.push(`${base}/metrics`);
    }
    for (const url of urls) {
      const res = await fetch(url, { headers: { authorization: `Bearer ${gw.demoToken}` } });
      expect(res.status, url).toBe(200);
      expect(await res.text(), url).toMatch(/^# HELP plantwatch_/m);
    }
  });
});
