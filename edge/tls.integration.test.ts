/**
 * TLS and username/password in both modes, without external servers: an embedded bridge with a TLS
 * listener, devices over mqtts://, and a second bridge in client mode subscribing to the first over
 * TLS with credentials. Certificates are made with openssl per run. Also MQTT over WebSocket.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { describeWith } from '../test/helpers/integration.ts';
import { start, type EdgeHandle } from './index.ts';
import { MemorySink, testContext } from './testing.ts';

/** 'connected', 'closed' or the error message of a single connection attempt. */
function connectOutcome(url: string, opts: mqtt.IClientOptions): Promise<string> {
  return new Promise((resolve) => {
    const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 3000, ...opts });
    const done = (what: string) => {
      c.end(true);
      resolve(what);
    };
    c.once('connect', () => done('connected'));
    c.once('error', (e) => done(e.message));
    c.once('close', () => done('closed'));
  });
}

describeWith(['openssl'], 'edge > TLS, credentials and WebSocket', () => {
  let dir: string;
  const handles: EdgeHandle[] = [];
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'pw-edge-tls-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' });
  });
  afterAll(async () => {
    for (const h of handles.reverse()) await h.close();
  });

  it('embedded broker over TLS with per-device credentials; a client-mode bridge subscribes to it over TLS', async () => {
    const sinkA = new MemorySink();
    const a = await start(
      {
        httpPort: null,
        embedded: {
          host: '127.0.0.1',
          port: 0,
          tls: { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') },
          auth: {
            anonymous: { enabled: false },
            users: [
              { username: 'press-1', password: 'p1', publish: ['plant/+/+/{username}/#'] },
              { username: 'bridge-b', password: 'bb', subscribe: ['plant/#'] },
            ],
          },
        },
      },
      testContext(),
      { sink: sinkA },
    );
    handles.push(a);
    expect(a.mqttUrl).toMatch(/^mqtts:\/\//);

    const sinkB = new MemorySink();
    const b = await start({ httpPort: null, client: { url: a.mqttUrl, clientId: 'bridge-b', username: 'bridge-b', password: 'bb', tls: { ca: join(dir, 'cert.pem') } } }, testContext(), { sink: sinkB });
    handles.push(b);

    // Plain TCP is not served on the TLS port; a device without the CA is refused.
    expect(await connectOutcome(a.mqttUrl.replace('mqtts', 'mqtt'), { username: 'press-1', password: 'p1' })).toBe('closed');
    expect(await connectOutcome(a.mqttUrl, { username: 'press-1', password: 'p1' })).toMatch(/self-signed certificate/);

    const dev = await mqtt.connectAsync(a.mqttUrl, { reconnectPeriod: 0, username: 'press-1', password: 'p1', ca: readFileSync(join(dir, 'cert.pem')) });
    await dev.publishAsync('plant/s1/l1/press-1/temp', JSON.stringify({ ts: Date.now(), value: 3 }), { qos: 1 });
    await dev.endAsync();
    await sinkA.waitFor(1);
    await sinkB.waitFor(1);
    expect(JSON.parse(sinkB.records[0].value)).toMatchObject({ machine: 'press-1', value: 3 });
    expect(sinkB.records[0].headers?.['mqtt.client_id']).toBe('bridge-b');
  });

  it('MQTT over WebSocket (path /mqtt) when embedded.ws.enabled', async () => {
    const sink = new MemorySink();
    const edge = await start({ httpPort: null, embedded: { host: '127.0.0.1', port: 0, ws: { enabled: true, host: '127.0.0.1', port: 0 } } }, testContext(), { sink });
    handles.push(edge);
    const dev = await mqtt.connectAsync(`ws://127.0.0.1:${edge.wsPort}/mqtt`, { reconnectPeriod: 0 });
    await dev.publishAsync('plant/s1/l1/m1/temp', '7', { qos: 1 });
    await dev.endAsync();
    expect(sink.records).toHaveLength(1);
  });
});
