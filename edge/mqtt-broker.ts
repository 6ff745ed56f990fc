/**
 * The embedded MQTT broker: the only module that imports aedes (ESM-only since 1.0, created with
 * `await Aedes.createBroker()`). It adapts our async hooks (hooks.ts) to aedes' callbacks.
 *
 * Where the PUBACK is held back (read in aedes 1.2.0 lib/handlers/publish.js): for QoS 1 aedes
 * writes the PUBACK *before* `broker.publish()`, so the `published` hook runs too late. The only
 * hook awaited before the PUBACK is `authorizePublish`, so that is where we relay to Kafka and
 * call back only once the record is durable. For QoS 2 the PUBREC follows `publish()`, which also
 * follows `authorizePublish`. Side effect, and the backpressure we want: aedes processes one socket
 * read chunk at a time (lib/client.js `_parsingBatch`), so a device's next packets wait until the
 * current chunk is durable. An error from the hook closes the connection: MQTT 3.1.1 has no
 * negative PUBACK [MQTT-3.3.5-2], and the device resends after reconnecting [MQTT-4.4.0-1].
 */
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import { createServer as createNetServer, type Server as NetServer, type AddressInfo } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { WebSocketServer, createWebSocketStream } from 'ws';
import type { Logger } from '../common/logger.ts';
import type { EdgeConfig } from './config.schema.ts';
import type { BrokerHooks, Principal } from './hooks.ts';

export interface EmbeddedBroker {
  port: number;
  /** mqtt://host:port (mqtts:// with TLS), with 127.0.0.1 for a wildcard bind. */
  url: string;
  wsPort: number | null;
  connectedClients(): number;
  /** Publish from the bridge itself (Sparkplug rebirth NCMD); bypasses authorizePublish. */
  publish(topic: string, payload: Buffer, qos: 0 | 1): Promise<void>;
  close(): Promise<void>;
}

export interface BrokerEvents {
  denied(what: 'connect' | 'publish' | 'subscribe', clientId: string, detail: string): void;
  clients(n: number): void;
}

export async function startEmbeddedBroker(cfg: EdgeConfig['embedded'], hooks: BrokerHooks, log: Logger, events: BrokerEvents): Promise<EmbeddedBroker> {
  const principals = new WeakMap<Client, Principal>();
  const lastAck = new WeakMap<Client, Promise<void>>();
  const broker = await Aedes.createBroker({
    queueLimit: cfg.queueLimit,
    maxInflightInbound: cfg.maxInflightInbound,
    connectTimeout: cfg.connectTimeoutMs,
    preConnect(client, packet, cb) {
      hooks.preConnect({ clientId: packet.clientId, remoteAddress: (client.conn as { remoteAddress?: string }).remoteAddress }).then(
        (ok) => cb(null, ok),
        (err: Error) => cb(err, false),
      );
    },
    authenticate(client, username, password, cb) {
      hooks.authenticate({ clientId: client.id, username: username ?? undefined, password: password ?? undefined }).then(
        (res) => {
          if (res.ok) {
            principals.set(client, res.principal);
            return cb(null, true);
          }
          events.denied('connect', client.id, res.reason);
          // [MQTT-3.2.2-5] CONNACK return code 4 (bad user name or password) or 5 (not authorized), then close.
          const err = new Error(res.reason) as AuthenticateError;
          err.returnCode = res.reason === 'bad_credentials' ? 4 : 5;
          cb(err, false);
        },
        (err: Error) => cb(Object.assign(err, { returnCode: 3 }) as AuthenticateError, false),
      );
    },
    authorizePublish(client, packet, cb) {
      // Wills of vanished clients (client null) are not device data: keep them inside the broker.
      if (!client) return cb(packet.topic.startsWith('$') ? new Error('reserved topic') : null);
      const principal = principals.get(client);
      if (!principal) return cb(new Error('not authenticated'));
      const topic = packet.topic;
      hooks
        .authorizePublish(principal, topic)
        .then((allowed) => {
          if (!allowed) {
            events.denied('publish', client.id, topic);
            throw new Error(`publish to ${topic} not allowed`);
          }
          const props = (packet as { properties?: { userProperties?: Record<string, string | string[]> } }).properties;
          const durable = hooks.mapToKafka({
            topic,
            payload: Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload),
            qos: packet.qos,
            clientId: client.id,
            userProperties: props?.userProperties,
            receivedAt: Date.now(),
          });
          // Acknowledge in PUBLISH order [MQTT-4.6.0-2]: a message that needs no Kafka write (e.g. an
          // unmapped topic) must not be acknowledged before an earlier one that is still pending.
          const previous = lastAck.get(client) ?? Promise.resolve();
          const inOrder = previous.then(() => durable);
          lastAck.set(client, inOrder.catch(() => undefined));
          return inOrder;
        })
        .then(
          () => cb(null),
          (err: Error) => cb(err),
        );
    },
    authorizeSubscribe(client, sub, cb) {
      const principal = principals.get(client);
      if (!principal) return cb(new Error('not authenticated'));
      hooks.authorizeSubscribe(principal, sub.topic).then(
        (ok) => {
          if (!ok) events.denied('subscribe', client.id, sub.topic);
          // null negates just this subscription: SUBACK 0x80 [MQTT-3.9.3-2], the connection stays.
          cb(null, ok ? sub : null);
        },
        (err: Error) => cb(err),
      );
    },
  });
  broker.on('clientError', (client, err) => log.debug({ clientId: client.id, err: err.message }, 'mqtt client error'));
  broker.on('connectionError', (_client, err) => log.debug({ err: err.message }, 'mqtt connection error'));
  broker.on('client', () => events.clients(broker.connectedClients));
  broker.on('clientDisconnect', () => events.clients(broker.connectedClients));

  const tls = cfg.tls?.cert && cfg.tls.key ? cfg.tls : undefined;
  const server: NetServer = tls
    ? createTlsServer(
        {
          cert: readFileSync(tls.cert as string),
          key: readFileSync(tls.key as string),
          ...(tls.ca ? { ca: readFileSync(tls.ca), requestCert: true, rejectUnauthorized: tls.rejectUnauthorized } : {}),
          highWaterMark: cfg.readBufferBytes,
          noDelay: true,
        },
        broker.handle,
      )
    : // noDelay: small forwarded packets (PUBACKs, live subscriptions) otherwise wait ~40 ms on Nagle + delayed ACK.
      createNetServer({ highWaterMark: cfg.readBufferBytes, noDelay: true }, broker.handle);
  await listen(server, cfg.port, cfg.host);
  const port = (server.address() as AddressInfo).port;

  let wsServer: HttpServer | null = null;
  let wss: WebSocketServer | null = null;
  if (cfg.ws.enabled) {
    wsServer = createHttpServer();
    wss = new WebSocketServer({ server: wsServer, path: '/mqtt' });
    wss.on('connection', (socket, req) => broker.handle(createWebSocketStream(socket), req));
    await listen(wsServer, cfg.ws.port, cfg.ws.host);
  }
  const host = cfg.host === '0.0.0.0' || cfg.host === '::' ? '127.0.0.1' : cfg.host;
  log.info({ port, tls: Boolean(tls), wsPort: wsServer ? (wsServer.address() as AddressInfo).port : null }, 'embedded MQTT broker listening');

  let closing: Promise<void> | null = null;
  return {
    port,
    url: `${tls ? 'mqtts' : 'mqtt'}://${host}:${port}`,
    wsPort: wsServer ? (wsServer.address() as AddressInfo).port : null,
    connectedClients: () => broker.connectedClients,
    publish: (topic, payload, qos) =>
      new Promise<void>((resolve, reject) => broker.publish({ cmd: 'publish', topic, payload, qos, retain: false, dup: false }, (err?: Error) => (err ? reject(err) : resolve()))),
    close: () =>
      (closing ??= (async () => {
        // Stop intake first: no new connections, then close clients and the broker.
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        wss?.clients.forEach((c) => c.terminate());
        const wsStopped = wsServer ? new Promise<void>((resolve) => wsServer!.close(() => resolve())) : Promise.resolve();
        await new Promise<void>((resolve) => broker.close(() => resolve()));
        await Promise.all([stopped, wsStopped]);
      })()),
  };
}

function listen(server: NetServer | HttpServer, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
