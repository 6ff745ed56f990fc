/**
 * Where generated messages go: MQTT (JSON, batched JSON, Sparkplug B; one client per machine by
 * default, each machine's messages in order on one connection), Kafka (through common/kafka.ts, for
 * benchmarks that bypass the edge), stdout, or nowhere. `send` never throws: failures are counted
 * and logged once per kind; `ready()` is the backpressure point the runner awaits.
 */
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from '../common/logger.ts';
import type { KafkaClients, Producer } from '../common/kafka.ts';
import { TOPICS } from '../common/topics.ts';
import { PlatformError } from '../common/errors.ts';
import type { SimulatorConfig } from './config.schema.ts';
import { decodeSparkplug, encodeBatch, encodeJson, SparkplugNode, type OutMessage } from './encode.ts';
import type { MachineBatch, MachineModel } from './model.ts';

export interface OutputStats {
  readings: number;
  messages: number;
  bytes: number;
  errors: number;
}

export interface Output {
  readonly stats: OutputStats;
  connect(): Promise<void>;
  send(batches: MachineBatch[], nowSimMs: number): void;
  /** Resolves when the output can take more (in-flight publishes below the limit). */
  ready(): Promise<void>;
  /** Resolves when nothing is in flight any more (written for QoS 0, acknowledged for QoS 1/2 and Kafka). */
  flush(): Promise<void>;
  /** Flushes what was accepted, then disconnects. Idempotent. */
  close(): Promise<void>;
}

export type MqttOutputConfig = SimulatorConfig['output']['mqtt'];

/**
 * Small MQTT packets must leave at once: with Nagle's algorithm on, a publish behind an unacknowledged
 * one waits for the peer's delayed ACK (~40 ms), which breaks replay timing and demo latency.
 */
export function setNoDelay(client: MqttClient): void {
  const stream = client.stream as { setNoDelay?: (on: boolean) => void } | undefined;
  stream?.setNoDelay?.(true);
}

export function newStats(): OutputStats {
  return { readings: 0, messages: 0, bytes: 0, errors: 0 };
}

function sizeOf(p: string | Uint8Array): number {
  return typeof p === 'string' ? Buffer.byteLength(p) : p.byteLength;
}

interface Conn {
  client: MqttClient;
  pending: number;
  waiters: (() => void)[];
  sparkplug?: SparkplugNode;
}

export class MqttOutput implements Output {
  readonly stats = newStats();
  private readonly conns: Conn[] = [];
  private readonly connOf = new Map<MachineModel, Conn>();
  private closed: Promise<void> | undefined;
  private readonly loggedErrors = new Set<string>();
  private readonly cfg: MqttOutputConfig;
  private readonly machines: MachineModel[];
  private readonly log: Logger;
  private readonly initialValues: (m: MachineModel, sensor: string) => number;

  /**
   * `initialValues` gives Sparkplug birth certificates their current values (the model's value now).
   */
  constructor(cfg: MqttOutputConfig, machines: MachineModel[], log: Logger, initialValues: (m: MachineModel, sensor: string) => number = () => 0) {
    this.cfg = cfg;
    this.machines = machines;
    this.log = log;
    this.initialValues = initialValues;
  }

  private baseOptions(clientId: string): IClientOptions {
    return {
      clientId,
      username: this.cfg.username,
      password: this.cfg.password,
      clean: true,
      keepalive: 30,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
      // Offline QoS0 readings are dropped and counted, not buffered without bound.
      queueQoSZero: false,
      ...(this.cfg.tls
        ? {
            rejectUnauthorized: this.cfg.tls.rejectUnauthorized,
            ...(this.cfg.tls.ca ? { ca: readFileSync(this.cfg.tls.ca) } : {}),
            ...(this.cfg.tls.cert ? { cert: readFileSync(this.cfg.tls.cert) } : {}),
            ...(this.cfg.tls.key ? { key: readFileSync(this.cfg.tls.key) } : {}),
          }
        : {}),
    };
  }

  async connect(): Promise<void> {
    const prefix = `${this.cfg.clientIdPrefix}-${process.pid}-${Date.now().toString(36)}`;
    const groups: { name: string; machines: MachineModel[]; sparkplug?: SparkplugNode }[] = [];
    if (this.cfg.format === 'sparkplug') {
      // Sparkplug: the edge node (line) owns the session; its devices share the connection.
      const byLine = new Map<string, MachineModel[]>();
      for (const m of this.machines) byLine.set(`${m.site}/${m.line}`, [...(byLine.get(`${m.site}/${m.line}`) ?? []), m]);
      for (const [, ms] of byLine) groups.push({ name: `${ms[0].site}-${ms[0].line}`, machines: ms, sparkplug: new SparkplugNode(ms[0].site, ms[0].line, ms) });
    } else if (this.cfg.connections === 'machine') {
      for (const m of this.machines) groups.push({ name: m.key.replaceAll('/', '-'), machines: [m] });
    } else {
      const n = Math.min(this.cfg.connections, this.machines.length);
      for (let i = 0; i < n; i++) groups.push({ name: `pool${i}`, machines: [] });
      this.machines.forEach((m, i) => groups[i % n].machines.push(m));
    }
    // Connect in waves: hundreds of simultaneous CONNECTs can overrun a small broker's accept queue.
    const wave = 64;
    try {
      for (let i = 0; i < groups.length; i += wave) {
        await Promise.all(groups.slice(i, i + wave).map((g) => this.open(`${prefix}-${g.name}`, g.machines, g.sparkplug)));
      }
    } catch (err) {
      // Do not leave the connections that did open reconnecting in the background.
      await Promise.all(this.conns.map((c) => c.client.endAsync(true).catch(() => undefined)));
      throw err;
    }
  }

  private async open(clientId: string, machines: MachineModel[], node?: SparkplugNode): Promise<void> {
    const opts = this.baseOptions(clientId);
    if (node) {
      const will = node.death();
      opts.will = { topic: will.topic, payload: Buffer.from(will.payload as Uint8Array), qos: 1, retain: false };
    }
    const client = mqtt.connect(this.cfg.url, opts);
    const conn: Conn = { client, pending: 0, waiters: [], sparkplug: node };
    this.conns.push(conn);
    for (const m of machines) this.connOf.set(m, conn);
    // Errors before the first CONNACK are the connect() failure itself (reported once, as its error).
    let connectedOnce = false;
    client.on('error', (err) => {
      if (connectedOnce) this.fail('connection', err);
    });
    client.on('connect', () => {
      connectedOnce = true;
      setNoDelay(client);
    });
    if (node) {
      client.on('connect', () => {
        // Every (re)connect is a new Sparkplug session: NBIRTH/DBIRTH before any DDATA.
        for (const msg of node.birth(Date.now(), this.initialValues)) this.publish(conn, msg);
        client.subscribe(node.topic('NCMD'), { qos: 0 });
      });
      client.on('close', () => {
        // The next session's NDEATH will must carry the bdSeq its NBIRTH will announce.
        node.nextSession();
        const will = node.death();
        client.options.will = { topic: will.topic, payload: Buffer.from(will.payload as Uint8Array), qos: 1, retain: false };
      });
      client.on('message', (_topic, payload) => this.onNodeCommand(conn, node, payload));
    }
    await new Promise<void>((resolve, reject) => {
      const onConnect = () => {
        client.off('error', onError);
        resolve();
      };
      const onError = (err: Error) => {
        client.off('connect', onConnect);
        client.end(true);
        reject(new PlatformError('SIM_MQTT_CONNECT', `cannot connect to ${this.cfg.url}: ${err.message}`, { retriable: true, cause: err }));
      };
      client.once('connect', onConnect);
      client.once('error', onError);
      // mqtt.js retries a silent server forever; give up after connectTimeout like a refused one.
      const timer = setTimeout(() => onError(new Error(`no CONNACK within ${opts.connectTimeout} ms`)), opts.connectTimeout);
      client.once('connect', () => clearTimeout(timer));
      client.once('end', () => clearTimeout(timer));
    });
  }

  private onNodeCommand(conn: Conn, node: SparkplugNode, payload: Buffer): void {
    // A host application asks for a rebirth (e.g. it missed the birth or saw a seq gap).
    try {
      const p = decodeSparkplug(payload);
      if (p.metrics?.some((m) => m.name === 'Node Control/Rebirth' && m.value === true)) {
        for (const msg of node.birth(Date.now(), this.initialValues)) this.publish(conn, msg);
      }
    } catch (err) {
      this.fail('ncmd', err as Error);
    }
  }

  private fail(kind: string, err: Error): void {
    this.stats.errors++;
    if (!this.loggedErrors.has(kind)) {
      this.loggedErrors.add(kind);
      this.log.warn({ err: err.message, kind }, 'simulator output error (further ones of this kind are counted, not logged)');
    }
  }

  private publish(conn: Conn, msg: OutMessage): void {
    conn.pending++;
    this.stats.messages++;
    this.stats.readings += msg.readings;
    this.stats.bytes += sizeOf(msg.payload);
    const payload = typeof msg.payload === 'string' ? msg.payload : Buffer.from(msg.payload.buffer, msg.payload.byteOffset, msg.payload.byteLength);
    conn.client.publish(msg.topic, payload, { qos: this.cfg.qos }, (err) => {
      conn.pending--;
      if (err) {
        this.stats.errors++;
        this.stats.readings -= msg.readings;
        this.fail('publish', err);
      }
      if (conn.pending < this.cfg.maxInflight && conn.waiters.length > 0) {
        const w = conn.waiters;
        conn.waiters = [];
        for (const f of w) f();
      }
    });
  }

  send(batches: MachineBatch[]): void {
    const o = { topicPrefix: this.cfg.topicPrefix, includeUnit: this.cfg.includeUnit, batchMax: this.cfg.batchMax };
    const msgs: OutMessage[] = [];
    for (const b of batches) {
      if (b.emissions.length === 0) continue;
      const conn = this.connOf.get(b.machine);
      if (!conn) continue;
      msgs.length = 0;
      if (this.cfg.format === 'json') encodeJson(b.emissions, o, msgs);
      else if (this.cfg.format === 'batch') encodeBatch(b.emissions, o, msgs);
      else conn.sparkplug!.data(b.machine, b.emissions, this.cfg.batchMax, msgs);
      for (const m of msgs) this.publish(conn, m);
    }
  }

  ready(): Promise<void> {
    const busy = this.conns.filter((c) => c.pending >= this.cfg.maxInflight);
    if (busy.length === 0) return Promise.resolve();
    return Promise.all(busy.map((c) => new Promise<void>((r) => c.waiters.push(r)))).then(() => undefined);
  }

  /** The MQTT clients (one per machine, per line for Sparkplug, or the pool): diagnostics and tests. */
  get clients(): readonly MqttClient[] {
    return this.conns.map((c) => c.client);
  }

  /** Publishes not yet written (QoS0) or acknowledged (QoS1/2). */
  get pending(): number {
    return this.conns.reduce((a, c) => a + c.pending, 0);
  }

  async flush(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.pending > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  }

  close(): Promise<void> {
    return (this.closed ??= (async () => {
      await Promise.all(
        this.conns.map(async (c) => {
          // Flush queued publishes (bounded wait), then a clean DISCONNECT (no will for Sparkplug).
          const deadline = Date.now() + 10_000;
          while (c.pending > 0 && Date.now() < deadline && c.client.connected) await new Promise((r) => setTimeout(r, 10));
          await c.client.endAsync(false).catch(() => undefined);
        }),
      );
    })());
  }
}

/** Direct to Kafka (bypassing MQTT and the edge): value = Reading JSON or an array per machine. */
export class KafkaOutput implements Output {
  readonly stats = newStats();
  private producer: Producer | undefined;
  private inflight: Promise<void>[] = [];
  private closed: Promise<void> | undefined;
  private logged = false;
  private readonly kafka: KafkaClients;
  private readonly cfg: SimulatorConfig['output']['kafka'];
  private readonly log: Logger;
  private readonly topic: string;

  constructor(kafka: KafkaClients, cfg: SimulatorConfig['output']['kafka'], log: Logger, topic: string = TOPICS.readings) {
    this.kafka = kafka;
    this.cfg = cfg;
    this.log = log;
    this.topic = topic;
  }

  async connect(): Promise<void> {
    this.producer = this.kafka.producer({ allowAutoTopicCreation: false });
    await this.producer.connect();
  }

  send(batches: MachineBatch[]): void {
    const receivedAt = Date.now();
    const messages: { key: string; value: string }[] = [];
    let readings = 0;
    for (const b of batches) {
      const m = b.machine;
      const parts: string[] = [];
      for (const e of b.emissions) {
        if (e.malformed !== undefined) {
          messages.push({ key: m.key, value: e.malformed });
          continue;
        }
        const json = `{"site":"${m.site}","line":"${m.line}","machine":"${m.id}","sensor":"${e.sensor.id}","ts":${e.ts},"value":${e.value},"unit":${JSON.stringify(e.sensor.unit)},"receivedAt":${receivedAt}}`;
        readings++;
        if (this.cfg.batch) parts.push(json);
        else messages.push({ key: m.key, value: json });
      }
      if (parts.length > 0) messages.push({ key: m.key, value: `[${parts.join(',')}]` });
    }
    if (messages.length === 0) return;
    this.stats.messages += messages.length;
    this.stats.readings += readings;
    this.stats.bytes += messages.reduce((a, x) => a + x.value.length, 0);
    const p = this.producer!.send({ topic: this.topic, acks: this.cfg.acks, messages })
      .then(() => undefined)
      .catch((err: Error) => {
        this.stats.errors += messages.length;
        this.stats.readings -= readings;
        if (!this.logged) {
          this.logged = true;
          this.log.warn({ err: err.message }, 'simulator kafka send failed (further failures are counted, not logged)');
        }
      });
    this.inflight.push(p);
    p.finally(() => {
      this.inflight = this.inflight.filter((x) => x !== p);
    });
  }

  async ready(): Promise<void> {
    // A few requests in flight keep the broker busy without unbounded memory.
    while (this.inflight.length >= 4) await Promise.race(this.inflight);
  }

  async flush(): Promise<void> {
    while (this.inflight.length > 0) await Promise.all(this.inflight);
  }

  close(): Promise<void> {
    return (this.closed ??= (async () => {
      await Promise.all(this.inflight);
      await this.producer?.disconnect();
    })());
  }
}

/** `mosquitto_sub -v` style lines: `<topic> <payload>`; for piping and eyeballing. */
export class StreamOutput implements Output {
  readonly stats = newStats();
  private readonly cfg: MqttOutputConfig;
  private readonly stream: NodeJS.WritableStream;
  private waiting: Promise<void> | undefined;
  constructor(cfg: MqttOutputConfig, stream: NodeJS.WritableStream = process.stdout) {
    this.cfg = cfg;
    this.stream = stream;
  }
  async connect(): Promise<void> {}
  send(batches: MachineBatch[]): void {
    const o = { topicPrefix: this.cfg.topicPrefix, includeUnit: this.cfg.includeUnit, batchMax: this.cfg.batchMax };
    const msgs: OutMessage[] = [];
    for (const b of batches) {
      if (this.cfg.format === 'batch') encodeBatch(b.emissions, o, msgs);
      else encodeJson(b.emissions, o, msgs);
    }
    if (msgs.length === 0) return;
    let text = '';
    for (const m of msgs) {
      text += `${m.topic} ${typeof m.payload === 'string' ? m.payload : Buffer.from(m.payload).toString('base64')}\n`;
      this.stats.messages++;
      this.stats.readings += m.readings;
    }
    this.stats.bytes += text.length;
    if (!this.stream.write(text)) this.waiting = new Promise((r) => this.stream.once('drain', () => r()));
  }
  async ready(): Promise<void> {
    if (this.waiting) await this.waiting;
    this.waiting = undefined;
  }
  flush(): Promise<void> {
    return this.ready();
  }
  async close(): Promise<void> {}
}

/** Counts and drops: measures the generator alone. */
export class NullOutput implements Output {
  readonly stats = newStats();
  async connect(): Promise<void> {}
  send(batches: MachineBatch[]): void {
    for (const b of batches) {
      for (const e of b.emissions) {
        if (e.malformed === undefined) this.stats.readings++;
        this.stats.messages++;
      }
    }
  }
  async ready(): Promise<void> {}
  async flush(): Promise<void> {}
  async close(): Promise<void> {}
}
