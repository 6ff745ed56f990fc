/**
 * Client of an external MQTT broker (Mosquitto, EMQX, HiveMQ): the only edge module that imports
 * `mqtt`. Persistent session (clean = false, fixed client id, QoS 1 subscriptions), so messages
 * published while the bridge is down wait in the broker [MQTT-3.1.2-4].
 *
 * Holding PUBACKs until Kafka acknowledged: mqtt.js (5.x) handles incoming packets strictly one at
 * a time and sends the PUBACK from the `handleMessage` callback; `customHandleAcks` sits on the
 * same serial path (and is v5-only). Delaying either stalls the socket at one message per Kafka
 * round trip. Instead we let mqtt.js continue at once and hold back only the PUBACK packet itself
 * (intercepting `_sendPacket` for that message id), sending it when the record is durable.
 * PUBACKs still go out in PUBLISH order [MQTT-4.6.0-2] because the forwarder settles in order.
 * A held PUBACK from an earlier connection is never sent on a new one: the broker redelivers that
 * message (DUP) and it is acknowledged afresh, so an id the broker reused cannot be acked early.
 */
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import { readFileSync } from 'node:fs';
import type { Logger } from '../common/logger.ts';
import type { EdgeConfig } from './config.schema.ts';
import type { InboundMessage } from './pipeline.ts';

export interface ExternalSubscriber {
  publish(topic: string, payload: Buffer, qos: 0 | 1): Promise<void>;
  connected(): boolean;
  /** PUBACKs currently held back waiting for Kafka. */
  heldAcks(): number;
  close(): Promise<void>;
}

type SendPacket = (packet: { cmd: string; messageId?: number }, cb?: (err?: Error) => void, cbStorePut?: unknown, noStore?: boolean) => void;

export async function startExternalSubscriber(cfg: EdgeConfig['client'], onMessage: (msg: InboundMessage) => Promise<void>, log: Logger): Promise<ExternalSubscriber> {
  const opts: IClientOptions = {
    clientId: cfg.clientId,
    clean: false,
    protocolVersion: cfg.protocolVersion,
    keepalive: cfg.keepaliveSec,
    reconnectPeriod: cfg.reconnectPeriodMs,
    username: cfg.username,
    password: cfg.password,
    // Unacknowledged QoS 1 messages are resent by the broker after reconnect [MQTT-4.4.0-1]; ours
    // (rebirth commands) are QoS 0, so no outgoing store is needed across restarts.
    resubscribe: true,
    ...(cfg.protocolVersion === 5 ? { properties: { sessionExpiryInterval: 0xffffffff } } : {}),
  };
  if (cfg.tls) {
    if (cfg.tls.ca) opts.ca = readFileSync(cfg.tls.ca);
    if (cfg.tls.cert) opts.cert = readFileSync(cfg.tls.cert);
    if (cfg.tls.key) opts.key = readFileSync(cfg.tls.key);
    opts.rejectUnauthorized = cfg.tls.rejectUnauthorized;
  }
  const client: MqttClient = mqtt.connect(cfg.url, opts);
  let generation = 0;
  const held = new Map<number, { promise: Promise<void>; generation: number }>();
  const pendingAcks = new Set<Promise<void>>();
  let lastAck: Promise<void> = Promise.resolve();
  const internals = client as unknown as { _sendPacket: SendPacket };
  const sendPacket = internals._sendPacket.bind(client) as SendPacket;
  if (typeof sendPacket !== 'function') throw new Error('mqtt client internals changed: _sendPacket missing (pin mqtt 5.x)');

  internals._sendPacket = (packet, cb, cbStorePut, noStore) => {
    const h = packet.cmd === 'puback' && packet.messageId !== undefined ? held.get(packet.messageId) : undefined;
    if (!h) return sendPacket(packet, cb, cbStorePut, noStore);
    held.delete(packet.messageId as number);
    // Chained: PUBACKs leave in PUBLISH order even when a later message needed no Kafka write.
    const ack = lastAck.then(() =>
      h.promise.then(
        () => {
          if (h.generation === generation && client.connected) sendPacket(packet);
        },
        (err: Error) => log.warn({ err: err.message, messageId: packet.messageId }, 'message not made durable: PUBACK withheld, the broker will redeliver'),
      ),
    );
    lastAck = ack;
    pendingAcks.add(ack);
    void ack.finally(() => pendingAcks.delete(ack));
    // Let mqtt.js read the next packet now.
    cb?.();
  };

  client.handleMessage = (packet: IPublishPacket, cb: (err?: Error) => void) => {
    const msg: InboundMessage = {
      topic: packet.topic,
      payload: Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload),
      qos: packet.qos,
      clientId: cfg.clientId,
      userProperties: packet.properties?.userProperties as Record<string, string | string[]> | undefined,
      receivedAt: Date.now(),
    };
    const p = onMessage(msg);
    if (packet.qos === 1 && packet.messageId !== undefined) held.set(packet.messageId, { promise: p, generation });
    else p.catch(() => undefined);
    cb();
  };

  client.on('connect', (connack) => {
    generation++;
    log.info({ url: cfg.url, sessionPresent: connack.sessionPresent }, 'connected to external MQTT broker');
    if (!connack.sessionPresent || !opts.resubscribe) {
      client.subscribe(
        cfg.subscriptions.map((topic) => topic),
        { qos: 1 },
        (err) => {
          if (err) log.error({ err: err.message }, 'subscribe failed');
        },
      );
    }
  });
  client.on('close', () => {
    generation++;
  });
  client.on('error', (err) => log.warn({ err: err.message }, 'external MQTT broker error'));

  // The first connect decides whether the config is usable; later drops reconnect on their own.
  await new Promise<void>((resolve, reject) => {
    const onConnect = () => {
      client.off('error', onError);
      resolve();
    };
    const onError = (err: Error) => {
      client.off('connect', onConnect);
      client.end(true);
      reject(err);
    };
    client.once('connect', onConnect);
    client.once('error', onError);
  });

  return {
    publish: (topic, payload, qos) => new Promise<void>((resolve, reject) => client.publish(topic, payload, { qos }, (err) => (err ? reject(err) : resolve()))),
    connected: () => client.connected,
    heldAcks: () => pendingAcks.size,
    close: async () => {
      // Wait briefly for held PUBACKs: what is durable should be acknowledged before we go.
      await Promise.race([Promise.allSettled([...pendingAcks]), new Promise((r) => setTimeout(r, 2000))]);
      await new Promise((r) => setImmediate(r));
      await client.endAsync(false);
    },
  };
}
