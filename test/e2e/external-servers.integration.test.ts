/**
 * Issue 3, end to end with the external servers: Mosquitto as the MQTT broker (readings published
 * with `mosquitto_pub`) and InfluxDB 1.6 as the store, checked with an InfluxQL query over HTTP.
 * In CI, INFLUX_URL and MQTT_URL point at the servers .ci/run started; elsewhere the test starts
 * private ones.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWith } from '../helpers/integration.ts';
import { startInfluxd, type InfluxdHandle } from '../helpers/influxd.ts';
import { startMosquitto, type MosquittoHandle } from '../helpers/mosquitto.ts';
import { plannedReadings, startTestPlatform, waitUntil, watchMachine, type Watcher } from './harness.ts';

// A site name of its own: the CI InfluxDB may hold other tests' data.
const SITE = `ext${process.pid}`;
const LINE = 'line1';
const MACHINES = ['mixer-1', 'mixer-2'];
const SENSORS = ['current', 'flow'];
const PER_SENSOR = 40;

function mosquittoPub(url: string, topic: string, lines: string[]): Promise<void> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    // -l: one message per stdin line; QoS 1 so Mosquitto confirms each.
    const p = spawn('mosquitto_pub', ['-h', u.hostname, '-p', u.port || '1883', '-t', topic, '-q', '1', '-l'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`mosquitto_pub exited ${code}: ${err}`))));
    p.stdin.end(lines.join('\n') + '\n');
  });
}

describeWith(['influxd', 'mosquitto', 'mosquitto_pub'], 'e2e > platform with Mosquitto and InfluxDB 1.6', () => {
  let influxd: InfluxdHandle | undefined;
  let mosquitto: MosquittoHandle | undefined;
  let influxUrl: string;
  let mqttUrl: string;
  let platform: Awaited<ReturnType<typeof startTestPlatform>>;
  let watcher: Watcher;

  beforeAll(async () => {
    influxUrl = process.env.INFLUX_URL ?? '';
    mqttUrl = process.env.MQTT_URL ?? '';
    if (!influxUrl) influxUrl = (influxd = await startInfluxd({ db: 'plantwatch_e2e' })).url;
    if (!mqttUrl) mqttUrl = (mosquitto = await startMosquitto()).url;
    platform = await startTestPlatform({ env: { INFLUX_URL: influxUrl, MQTT_URL: mqttUrl }, overrides: { edge: { client: { clientId: `pw-e2e-${process.pid}` } } } as never });
  }, 120_000);
  afterAll(async () => {
    watcher?.close();
    await platform?.dispose();
    await influxd?.close();
    await mosquitto?.close();
  });

  it('stores every reading published with mosquitto_pub exactly once in InfluxDB and streams it live', async () => {
    expect(platform.components.storage!.store.kind).toBe('influx');
    const gw = platform.components.gateway!;
    watcher = await watchMachine(gw, { site: SITE, line: LINE, machine: MACHINES[0] });

    const sent = plannedReadings(MACHINES, SENSORS, PER_SENSOR);
    for (const machine of MACHINES) {
      for (const sensor of SENSORS) {
        const lines = sent.filter((r) => r.machine === machine && r.sensor === sensor).map((r) => JSON.stringify({ ts: r.ts, value: r.value }));
        await mosquittoPub(mqttUrl, `plant/${SITE}/${LINE}/${machine}/${sensor}`, lines);
      }
    }

    const u = new URL(influxUrl);
    const db = u.pathname.slice(1);
    const auth = u.username ? `&u=${encodeURIComponent(decodeURIComponent(u.username))}&p=${encodeURIComponent(decodeURIComponent(u.password))}` : '';
    const query = async (q: string) => {
      const res = await fetch(`${u.protocol}//${u.host}/query?db=${db}&epoch=ms${auth}&q=${encodeURIComponent(q)}`);
      return (await res.json()) as { results: { series?: { tags?: Record<string, string>; values: [number, number][] }[] }[] };
    };
    const countBySeries = async () => {
      const r = await query(`SELECT count(value) FROM readings WHERE site='${SITE}' GROUP BY machine, sensor`);
      return Object.fromEntries((r.results[0].series ?? []).map((s) => [`${s.tags!.machine}/${s.tags!.sensor}`, s.values[0][1]]));
    };
    await waitUntil('every reading in InfluxDB', async () => {
      const c = await countBySeries();
      return Object.keys(c).length === 4 && Object.values(c).every((n) => n >= PER_SENSOR);
    }, 60_000);
    const counts = await countBySeries();
    for (const machine of MACHINES) for (const sensor of SENSORS) expect(counts[`${machine}/${sensor}`], `${machine}/${sensor}`).toBe(PER_SENSOR);

    // Exactly the values sent, at their event times.
    const rows = await query(`SELECT value FROM readings WHERE site='${SITE}' AND machine='${MACHINES[1]}' AND sensor='${SENSORS[0]}'`);
    const expected = sent.filter((r) => r.machine === MACHINES[1] && r.sensor === SENSORS[0]);
    expect(rows.results[0].series![0].values.map(([ts, v]) => [ts, v])).toEqual(expected.map((r) => [r.ts, r.value]));

    await waitUntil('live readings for the watched machine', () => watcher.readings.length > 0, 30_000);
    expect(watcher.readings.every((r) => r.machine === MACHINES[0] && r.site === SITE)).toBe(true);
  }, 180_000);
});
