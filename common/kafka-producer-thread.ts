/**
 * A kafkajs producer in its own worker thread, behind the same `sendBatch` / `connect` /
 * `disconnect` calls as kafkajs' Producer.
 *
 * Why: kafkajs builds every record batch and produce request in JavaScript, one small Buffer and
 * several copies per record, and writes it to the socket on the calling thread. In the anomaly
 * service that was ~20 % of the main thread at 50k readings/s (plus the garbage it leaves), in the
 * thread that also fetches, decodes and scores. Here the main thread packs a batch's values into
 * one buffer (one copy, transferred, not cloned) and the worker does the rest on the other core.
 *
 * Guarantees are kafkajs' own: the worker calls `sendBatch` in the order the calls were made, and
 * a call resolves with kafkajs' RecordMetadata once the brokers acknowledged it (so offsets are
 * still committed only after the results are written). A failed send rejects with kafkajs' error
 * name, message and `retriable` flag. A worker that dies fails its pending sends as retriable
 * (`KAFKA_PRODUCER_THREAD_EXITED`) and is started again by the next send. Logs come back through
 * this side's logger.
 *
 * An extension module (`extension`) moves more of a service's output work into the thread: it
 * exports `createProducerExtension({ producer, logger })`, which returns a handler for the
 * payloads of `call` (the anomaly service encodes its score records there). A handler that
 * produces must call `producer.sendBatch` before its first await, so calls reach the wire in order.
 */
import { Worker } from 'node:worker_threads';
import type { BatchProducer, IHeaders, Message, ProducerBatch, ProducerConfig, RecordMetadata } from './kafka.ts';
import type { KafkaClientConfig } from './config/fragments.ts';
import { PlatformError } from './errors.ts';
import { relayWorkerLine, type Logger } from './logger.ts';

const BOOTSTRAP = new URL('./ts-worker-bootstrap.mjs', import.meta.url);
const ENTRY = new URL('./kafka-producer-thread-worker.ts', import.meta.url);

export interface ProducerThreadInit {
  kafka: KafkaClientConfig & { brokers: string[] };
  producer: ProducerConfig;
  logLevel: string;
  /** URL of the extension module, if any. */
  extension?: string;
  /** Nice value of the thread (Linux), see ThreadedProducerOptions. */
  nice?: number;
}

/** What an extension module's `createProducerExtension` gets, in the thread. */
export interface ProducerExtensionContext {
  producer: BatchProducer;
  logger: Logger;
}
/** Handles one `call` payload in the thread; its result goes back to the caller (structured clone). */
export type ProducerExtensionHandler = (payload: unknown) => Promise<unknown>;
export type CreateProducerExtension = (ctx: ProducerExtensionContext) => ProducerExtensionHandler;

/** One topic's messages, packed: every value's bytes in `values`, in message order. */
export interface PackedTopic {
  topic: string;
  keys: (string | null)[];
  /** Byte length of each value; -1 for a null value. */
  lengths: Int32Array;
  /** Per message (usually one shared object, which the structured clone sends once). */
  headers: (IHeaders | undefined)[];
  partitions: (number | undefined)[];
  timestamps: (string | undefined)[];
}

export type ToProducerThread =
  | { type: 'send'; id: number; acks?: number; timeout?: number; compression?: number; topics: PackedTopic[]; values: ArrayBuffer }
  | { type: 'call'; id: number; payload: unknown }
  | { type: 'disconnect'; id: number };

export interface SerializedKafkaError {
  name: string;
  message: string;
  retriable: boolean;
  code?: string;
}

export type FromProducerThread =
  | { type: 'ready' }
  | { type: 'failed'; error: SerializedKafkaError }
  | { type: 'log'; line: string }
  | { type: 'result'; id: number; result?: unknown; error?: SerializedKafkaError };

export function serializeKafkaError(err: unknown): SerializedKafkaError {
  const e = err as { name?: string; message?: string; retriable?: boolean; code?: string };
  return { name: e?.name ?? 'Error', message: e?.message ?? String(err), retriable: e?.retriable !== false, ...(e?.code ? { code: e.code } : {}) };
}

function deserializeKafkaError(s: SerializedKafkaError): Error {
  return Object.assign(new Error(s.message), { name: s.name, retriable: s.retriable, ...(s.code ? { code: s.code } : {}) });
}

type Pending = { resolve(v: unknown): void; reject(e: Error): void };

export interface ThreadedProducerOptions {
  /** An extension module for `call` (see above). */
  extension?: URL;
  /**
   * Scheduling niceness of the producer thread alone (Linux, where nice is per thread; ignored
   * elsewhere, where it would apply to the whole process). Above 0 the thread yields the core to
   * the thread that hands it work instead of preempting it on every hand-off.
   */
  nice?: number;
}

export class ThreadedProducer implements BatchProducer {
  private worker: Worker | undefined;
  private starting: Promise<Worker> | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextCall = 1;
  private closed = false;
  private readonly logger: Logger;
  /**
   * Counts the threads started: state an extension keeps in the thread (per-series caches) is
   * gone when this changes, so callers that mirror it there start afresh.
   */
  private generation = 0;
  readonly extension: URL | undefined;
  private readonly nice: number | undefined;

  constructor(
    private readonly kafka: KafkaClientConfig & { brokers: string[] },
    private readonly producerConfig: ProducerConfig,
    logger: Logger,
    options: ThreadedProducerOptions = {},
  ) {
    this.logger = logger.child({ producer: 'thread' });
    this.extension = options.extension;
    this.nice = options.nice;
  }

  /** The thread is up (a send now goes to it without starting one). */
  get running(): boolean {
    return this.worker !== undefined;
  }

  /** Starts the worker and connects its producer (rejects with the connection error). */
  async connect(): Promise<void> {
    this.closed = false;
    await this.ready();
  }

  async disconnect(): Promise<void> {
    this.closed = true;
    const w = this.worker ?? (await this.starting?.catch(() => undefined));
    if (!w) return;
    try {
      await this.post(w, { type: 'disconnect', id: this.nextCall++ });
    } catch {
      // already gone
    }
    await w.terminate();
  }

  async sendBatch(batch: ProducerBatch): Promise<RecordMetadata[]> {
    const w = await this.ready();
    const { msg, transfer } = pack(batch, this.nextCall++);
    return (await this.post(w, msg, transfer)) as RecordMetadata[];
  }

  /**
   * Sends a payload to the extension's handler and resolves with its result. `build` runs once the
   * thread is up, with that thread's generation, right before the payload is posted (so payloads
   * reach the thread in the order of the calls).
   */
  async call(build: (generation: number) => { payload: unknown; transfer?: ArrayBuffer[] }): Promise<unknown> {
    if (!this.extension) throw new Error('ThreadedProducer.call needs an extension module');
    const w = await this.ready();
    if (w !== this.worker) throw exited('exited');
    const { payload, transfer } = build(this.generation);
    return this.post(w, { type: 'call', id: this.nextCall++, payload }, transfer);
  }

  private post(w: Worker, msg: ToProducerThread, transfer: ArrayBuffer[] = []): Promise<unknown> {
    return new Promise((resolve, reject) => {
      // The thread stopped after `ready` handed it out: a message posted now would never be answered.
      if (w !== this.worker && msg.type !== 'disconnect') return reject(exited('exited'));
      // Referenced while sends are pending, so the process waits for their acknowledgements.
      if (this.pending.size === 0) w.ref();
      this.pending.set(msg.id, { resolve, reject });
      w.postMessage(msg, transfer);
    });
  }

  private ready(): Promise<Worker> {
    if (this.closed) return Promise.reject(Object.assign(new Error('producer thread is disconnected'), { retriable: false }));
    if (this.worker) return Promise.resolve(this.worker);
    this.starting ??= this.spawn().finally(() => (this.starting = undefined));
    return this.starting;
  }

  private spawn(): Promise<Worker> {
    return new Promise<Worker>((resolve, reject) => {
      const init: ProducerThreadInit = {
        kafka: this.kafka,
        producer: this.producerConfig,
        logLevel: this.logger.level ?? 'info',
        ...(this.extension ? { extension: this.extension.href } : {}),
        ...(this.nice ? { nice: this.nice } : {}),
      };
      const worker = new Worker(BOOTSTRAP, { workerData: { entry: ENTRY.href, init }, name: 'plantwatch-kafka-producer' });
      worker.unref();
      let ready = false;
      worker.on('message', (m: FromProducerThread) => {
        if (m.type === 'result') this.settle(m.id, m.result, m.error);
        else if (m.type === 'log') this.relog(m.line);
        else if (m.type === 'ready') {
          ready = true;
          this.generation++;
          this.worker = worker;
          resolve(worker);
        } else if (m.type === 'failed') {
          reject(deserializeKafkaError(m.error));
          void worker.terminate();
        }
      });
      let down = false;
      // 'error' is followed by 'exit': the first of the two settles everything.
      const gone = (why: string) => {
        if (down) return;
        down = true;
        if (this.worker === worker) this.worker = undefined;
        const err = exited(why);
        if (!ready) reject(err);
        for (const [id, p] of this.pending) {
          this.pending.delete(id);
          p.reject(err);
        }
        if (!this.closed && ready) this.logger.error({ err }, 'Kafka producer thread stopped; pending sends fail as retriable and the next send starts it again');
      };
      worker.on('error', (err) => gone(`failed: ${err.message}`));
      worker.on('exit', (code) => gone(`exited (${code})`));
    });
  }

  private settle(id: number, result: unknown, error: SerializedKafkaError | undefined): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    if (this.pending.size === 0) this.worker?.unref();
    if (error) p.reject(deserializeKafkaError(error));
    else p.resolve(result);
  }

  private relog(line: string): void {
    relayWorkerLine(this.logger, line);
  }

}

function exited(why: string): PlatformError {
  return new PlatformError('KAFKA_PRODUCER_THREAD_EXITED', `Kafka producer thread ${why}`, { retriable: true });
}

/** A batch as one message for the worker: values copied once into a buffer that is transferred. */
export function pack(batch: ProducerBatch, id: number): { msg: Extract<ToProducerThread, { type: 'send' }>; transfer: ArrayBuffer[] } {
  const sources = batch.topicMessages ?? [];
  let total = 0;
  for (const t of sources) for (const m of t.messages) total += byteLength(m.value);
  const values = new Uint8Array(total);
  let at = 0;
  const topics: PackedTopic[] = sources.map((t) => {
    const n = t.messages.length;
    const keys: (string | null)[] = new Array(n);
    const lengths = new Int32Array(n);
    const headers: (IHeaders | undefined)[] = new Array(n);
    const partitions: (number | undefined)[] = new Array(n);
    const timestamps: (string | undefined)[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const m: Message = t.messages[i];
      keys[i] = m.key === null || m.key === undefined ? null : typeof m.key === 'string' ? m.key : m.key.toString('utf8');
      headers[i] = m.headers;
      partitions[i] = m.partition;
      timestamps[i] = m.timestamp;
      const v = m.value;
      if (v === null || v === undefined) {
        lengths[i] = -1;
        continue;
      }
      const len = typeof v === 'string' ? Buffer.from(values.buffer, at, total - at).write(v, 'utf8') : copyInto(values, at, v);
      lengths[i] = len;
      at += len;
    }
    return { topic: t.topic, keys, lengths, headers, partitions, timestamps };
  });
  return {
    msg: { type: 'send', id, acks: batch.acks, timeout: batch.timeout, compression: batch.compression, topics, values: values.buffer as ArrayBuffer },
    transfer: [values.buffer as ArrayBuffer],
  };
}

function byteLength(v: Message['value']): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'string' ? Buffer.byteLength(v, 'utf8') : v.byteLength;
}

function copyInto(target: Uint8Array, at: number, v: Buffer): number {
  target.set(v, at);
  return v.byteLength;
}

/** The worker's messages back from a packed batch (values are views into the transferred buffer). */
export function unpack(topics: PackedTopic[], values: ArrayBuffer): { topic: string; messages: Message[] }[] {
  let at = 0;
  return topics.map((t) => {
    const messages: Message[] = new Array(t.keys.length);
    for (let i = 0; i < t.keys.length; i++) {
      const len = t.lengths[i];
      const m: Message = { key: t.keys[i], value: len < 0 ? null : Buffer.from(values, at, len) };
      if (len > 0) at += len;
      if (t.headers[i] !== undefined) m.headers = t.headers[i];
      if (t.partitions[i] !== undefined) m.partition = t.partitions[i];
      if (t.timestamps[i] !== undefined) m.timestamp = t.timestamps[i];
      messages[i] = m;
    }
    return { topic: t.topic, messages };
  });
}
