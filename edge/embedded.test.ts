/**
 * The embedded broker end to end with an in-memory Kafka sink: real MQTT clients (mqtt.js) on an
 * ephemeral port.
 */
import { afterEach, describe, expect, it } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import { createHash } from 'node:crypto';
import { start, type EdgeHandle } from './index.ts';
import type { EdgeConfigInput } from './config.schema.ts';
import { MemorySink, testContext } from './testing.ts';
import { encodeSparkplug, decodeSparkplug } from './sparkplug.ts';

const handles: EdgeHandle[] = [];
const clients: MqttClient[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  await Promise.all(handles.splice(0).map((h) => h.close()));
});

async function bridge(cfg: EdgeConfigInput = {}) {
  const sink = new MemorySink();
  const edge = await start({ httpPort: 0, ...cfg, embedded: { port: 0, host: '127.0.0.1', ...cfg.embedded } }, testContext(), { sink });
  handles.push(edge);
  return { sink, edge };
}

async function device(url: string, opts: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, { reconnectPeriod: 0, ...opts });
  clients.push(c);
  return c;
}

const reading = (value: number) => JSON.stringify({ ts: Date.now(), value });

describe('edge > embedded broker', () => {
  it('acknowledges a QoS 1 publish only after Kafka acknowledged the record', async () => {
    const { sink, edge } = await bridge();
    const dev = await device(edge.mqttUrl);
    sink.hold();
    let acked = false;
    const pub = dev.publishAsync('plant/s1/l1/m1/temp', reading(21), { qos: 1 }).then(() => (acked = true));
    await new Promise((r) => setTimeout(r, 300));
    expect(acked).toBe(false);
    expect(sink.records).toHaveLength(0);
    sink.release();
    await pub;
    expect(sink.topic('plantwatch.readings')).toHaveLength(1);
    expect(sink.records[0].key).toBe('s1/l1/m1');
    expect(sink.records[0].headers?.['mqtt.client_id']).toBe(dev.options.clientId);
  });

  it('acknowledges in PUBLISH order: a message needing no Kafka write waits for an earlier pending one', async () => {
    const { sink, edge } = await bridge();
    const dev = await device(edge.mqttUrl);
    sink.hold();
    const order: string[] = [];
    const first = dev.publishAsync('plant/s1/l1/m1/temp', reading(1), { qos: 1 }).then(() => order.push('mapped'));
    const second = dev.publishAsync('plant/s1/l1/m1', 'x', { qos: 1 }).then(() => order.push('unmapped'));
    await new Promise((r) => setTimeout(r, 200));
    expect(order).toEqual([]);
    sink.release();
    await Promise.all([first, second]);
    expect(order).toEqual(['mapped', 'unmapped']);
  });

  it('QoS 2 is acknowledged (PUBREC) after Kafka too', async () => {
    const { sink, edge } = await bridge();
    const dev = await device(edge.mqttUrl);
    sink.hold();
    let done = false;
    const pub = dev.publishAsync('plant/s1/l1/m1/temp', reading(2), { qos: 2 }).then(() => (done = true));
    await new Promise((r) => setTimeout(r, 200));
    expect(done).toBe(false);
    sink.release();
    await pub;
    expect(sink.records).toHaveLength(1);
  });

  it('QoS 0 and batched JSON arrays are relayed; bad payloads go to the dead-letter topic and are still acknowledged', async () => {
    const { sink, edge } = await bridge();
    const dev = await device(edge.mqttUrl);
    await dev.publishAsync('plant/s1/l1/m1/temp', '12.5', { qos: 0 });
    await dev.publishAsync('plant/s1/l1/m1/temp', JSON.stringify([{ ts: Date.now(), value: 1 }, { ts: Date.now(), value: 'bad' }]), { qos: 1 });
    await dev.publishAsync('plant/s1/l1/m1/temp', 'not a reading', { qos: 1 });
    await sink.waitFor(4);
    expect(sink.topic('plantwatch.readings')).toHaveLength(2);
    expect(sink.topic('plantwatch.deadletter').map((r) => JSON.parse(r.value).code).sort()).toEqual(['PAYLOAD_NOT_DECODABLE', 'READING_INVALID']);
    const metrics = await (await fetch(`${edge.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/plantwatch_edge_dead_letters_total\{code="READING_INVALID"[^}]*\} 1/);
    expect(metrics).toMatch(/plantwatch_edge_forwarded_records_total\{topic="plantwatch.readings"[^}]*\} 2/);
    const health = await (await fetch(`${edge.httpUrl}/healthz`)).json();
    expect(health).toMatchObject({ ok: true, mode: 'embedded', delivery: 'direct' });
  });

  describe('credentials and ACLs', () => {
    const users = [
      { username: 'm1', password: 'secret-1', publish: ['plant/+/+/{username}/#'], subscribe: ['cmd/{username}/#'] },
      { username: 'm2', passwordSha256: createHash('sha256').update('secret-2').digest('hex'), clientIdPattern: 'm2-.*', publish: ['plant/+/+/{username}/#'] },
    ];
    const cfg: EdgeConfigInput = { embedded: { auth: { anonymous: { enabled: false }, users } } };

    it('rejects unknown users, wrong passwords and anonymous devices (CONNACK 4/5)', async () => {
      const { edge } = await bridge(cfg);
      await expect(device(edge.mqttUrl, { username: 'm1', password: 'wrong' })).rejects.toMatchObject({ code: 4 });
      await expect(device(edge.mqttUrl, { username: 'nobody', password: 'x' })).rejects.toMatchObject({ code: 4 });
      await expect(device(edge.mqttUrl)).rejects.toMatchObject({ code: 5 });
      await expect(device(edge.mqttUrl, { username: 'm2', password: 'secret-2', clientId: 'other' })).rejects.toMatchObject({ code: 5 });
      expect(await device(edge.mqttUrl, { username: 'm2', password: 'secret-2', clientId: 'm2-a' })).toBeTruthy();
    });

    it('a device publishes only under its own prefix: others close the connection and reach nothing', async () => {
      const { sink, edge } = await bridge(cfg);
      const m1 = await device(edge.mqttUrl, { username: 'm1', password: 'secret-1' });
      await m1.publishAsync('plant/s1/l1/m1/temp', reading(1), { qos: 1 });
      expect(sink.records).toHaveLength(1);
      const closed = new Promise<void>((r) => m1.once('close', () => r()));
      m1.publish('plant/s1/l1/m2/temp', reading(2), { qos: 1 });
      await closed;
      await new Promise((r) => setTimeout(r, 50));
      expect(sink.records).toHaveLength(1);
      const metrics = await (await fetch(`${edge.httpUrl}/metrics`)).text();
      expect(metrics).toMatch(/plantwatch_edge_auth_denied_total\{what="publish"[^}]*\} 1/);
    });

    it('subscriptions outside the ACL are refused with SUBACK 0x80, allowed ones granted', async () => {
      const { edge } = await bridge(cfg);
      const m1 = await device(edge.mqttUrl, { username: 'm1', password: 'secret-1' });
      const granted = await m1.subscribeAsync('cmd/m1/#', { qos: 1 });
      expect(granted.map((g) => [g.topic, g.qos])).toEqual([['cmd/m1/#', 1]]);
      const refused = await m1.subscribeAsync('plant/#', { qos: 1 }).then(
        () => null,
        (err: { packet?: { granted?: number[] } }) => err.packet?.granted,
      );
      expect(refused).toEqual([128]);
      expect(m1.connected).toBe(true);
    });

    it('a client id or user name with wildcards cannot widen its ACL', async () => {
      const { sink, edge } = await bridge({ embedded: { auth: { anonymous: { enabled: true, publish: ['plant/+/+/{clientId}/#'] } } } });
      const evil = await device(edge.mqttUrl, { clientId: '+' });
      const closed = new Promise<void>((r) => evil.once('close', () => r()));
      evil.publish('plant/s/l/anything/t', reading(1), { qos: 1 });
      await closed;
      expect(sink.records).toHaveLength(0);
    });
  });

  it('Sparkplug B: a seq gap makes the bridge publish a rebirth NCMD to the node', async () => {
    const { sink, edge } = await bridge({ sparkplug: { rebirthMinIntervalMs: 0 } });
    const node = await device(edge.mqttUrl, { clientId: 'line1' });
    await node.subscribeAsync('spBv1.0/plant1/NCMD/line1', { qos: 0 });
    const ncmd = new Promise<Buffer>((resolve) => node.once('message', (_t, p) => resolve(p)));
    const now = Date.now();
    await node.publishAsync('spBv1.0/plant1/NBIRTH/line1', encodeSparkplug({ timestamp: now, seq: 0, metrics: [{ name: 'bdSeq', type: 'UInt64', value: 0 }, { name: 'Pressure', alias: 3, type: 'Double', value: 1.5 }] }), { qos: 1 });
    await node.publishAsync('spBv1.0/plant1/NDATA/line1', encodeSparkplug({ timestamp: now, seq: 7, metrics: [{ alias: 3, type: 'Double', value: 1.7 }] }), { qos: 1 });
    const cmd = decodeSparkplug(await ncmd);
    expect(cmd.metrics?.[0]).toMatchObject({ name: 'Node Control/Rebirth', value: true });
    expect(sink.topic('plantwatch.readings').map((r) => JSON.parse(r.value).value)).toEqual([1.5, 1.7]);
  });

  it('close() is idempotent and stops intake', async () => {
    const { edge } = await bridge();
    await edge.close();
    await edge.close();
    await expect(mqtt.connectAsync(edge.mqttUrl, { reconnectPeriod: 0, connectTimeout: 1000 })).rejects.toBeTruthy();
  });
});

describe('edge > start failures', () => {
  it('an ops port already in use fails start() and releases the MQTT port', async () => {
    const { createServer } = await import('node:net');
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const busy = (blocker.address() as { port: number }).port;
    const mqttBlocker = createServer();
    await new Promise<void>((r) => mqttBlocker.listen(0, '127.0.0.1', () => r()));
    const mqttPort = (mqttBlocker.address() as { port: number }).port;
    await new Promise<void>((r) => mqttBlocker.close(() => r()));
    await expect(start({ httpPort: busy, httpHost: '127.0.0.1', embedded: { host: '127.0.0.1', port: mqttPort } }, testContext(), { sink: new MemorySink() })).rejects.toThrow(/EADDRINUSE/);
    // The MQTT port was released: a second bridge can take it.
    const again = await start({ httpPort: null, embedded: { host: '127.0.0.1', port: mqttPort } }, testContext(), { sink: new MemorySink() });
    expect(again.mqttPort).toBe(mqttPort);
    await again.close();
    await new Promise<void>((r) => blocker.close(() => r()));
  });
});
