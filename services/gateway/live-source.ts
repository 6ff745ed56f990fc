/**
 * Where the gateway's live data comes from. In production each gateway instance consumes the
 * readings, scores and alerts topics itself with its own consumer group (`plantwatch-gateway-<id>`),
 * from the latest offset and without committing, so instances share no state and a restarted
 * gateway never replays old data into live charts (history comes from the store).
 * Tests feed a `DirectLiveSource` instead.
 */
import type { Logger } from '../../common/logger.ts';
import type { Consumer, KafkaClients } from '../../common/kafka.ts';
import { TOPICS } from '../../common/topics.ts';
import { Alert, Reading, Score, describeZodError } from '../../common/messages.ts';
import type { z } from 'zod';

export interface LiveSink {
  readings(batch: Reading[]): void;
  scores(batch: Score[]): void;
  alerts(batch: Alert[]): void;
  /** A record that failed validation: counted and logged by the sink owner. */
  invalid(topic: string, reason: string): void;
}

export interface LiveSourceStatus {
  connected: boolean;
  /** Epoch ms of the last record received; null before the first. */
  lastMessageAt: number | null;
}

export interface LiveSource {
  start(sink: LiveSink): Promise<void>;
  status(): LiveSourceStatus;
  close(): Promise<void>;
}

/** Pushes straight into the gateway: unit tests and the in-process baseline of the benchmark. */
export class DirectLiveSource implements LiveSource {
  private sink: LiveSink | null = null;
  private last: number | null = null;
  connected = true;
  async start(sink: LiveSink): Promise<void> {
    this.sink = sink;
  }
  status(): LiveSourceStatus {
    return { connected: this.connected && this.sink !== null, lastMessageAt: this.last };
  }
  private touch(): LiveSink {
    if (!this.sink) throw new Error('DirectLiveSource: gateway not started');
    this.last = Date.now();
    return this.sink;
  }
  readings(batch: Reading[]): void {
    this.touch().readings(batch);
  }
  scores(batch: Score[]): void {
    this.touch().scores(batch);
  }
  alerts(batch: Alert[]): void {
    this.touch().alerts(batch);
  }
  async close(): Promise<void> {
    this.sink = null;
  }
}

/** Decodes one Kafka record value for the sink; exported for tests. */
export function dispatchRecord(topic: string, value: Buffer | null, sink: LiveSink): void {
  if (!value) return sink.invalid(topic, 'empty record value');
  let json: unknown;
  try {
    json = JSON.parse(value.toString('utf8'));
  } catch {
    return sink.invalid(topic, 'record value is not JSON');
  }
  if (topic === TOPICS.readings) sink.readings(valid(Reading, json, topic, sink));
  else if (topic === TOPICS.scores) sink.scores(valid(Score, json, topic, sink));
  else if (topic === TOPICS.alerts) sink.alerts(valid(Alert, json, topic, sink));
}

/**
 * A record holds one item or an array of items; each is validated on its own so one bad element
 * does not hide the good ones from the live view (the element is counted and logged).
 */
function valid<S extends z.ZodType>(schema: S, json: unknown, topic: string, sink: LiveSink): z.infer<S>[] {
  const items = Array.isArray(json) ? json : [json];
  if (items.length === 0) sink.invalid(topic, 'empty array');
  const out: z.infer<S>[] = [];
  items.forEach((item, i) => {
    const r = schema.safeParse(item);
    if (r.success) out.push(r.data);
    else sink.invalid(topic, `${Array.isArray(json) ? `[${i}] ` : ''}${describeZodError(r.error)}`);
  });
  return out;
}

export class KafkaLiveSource implements LiveSource {
  private consumer: Consumer | null = null;
  private connected = false;
  private last: number | null = null;
  private closing = false;

  constructor(
    private readonly kafka: KafkaClients,
    readonly groupId: string,
    private readonly logger: Logger,
  ) {}

  status(): LiveSourceStatus {
    return { connected: this.connected, lastMessageAt: this.last };
  }

  async start(sink: LiveSink): Promise<void> {
    const consumer = this.kafka.consumer({
      groupId: this.groupId,
      // Live view: answer as soon as data is there; a long fetch wait would show up as latency.
      maxWaitTimeInMs: 100,
      sessionTimeout: 30_000,
      heartbeatInterval: 3000,
    });
    this.consumer = consumer;
    consumer.on(consumer.events.GROUP_JOIN, () => {
      this.connected = true;
    });
    consumer.on(consumer.events.DISCONNECT, () => {
      this.connected = false;
    });
    consumer.on(consumer.events.CRASH, (e) => {
      this.connected = false;
      const payload = e.payload as { error: Error; restart: boolean };
      this.logger.error({ err: payload.error, restart: payload.restart }, 'gateway live consumer crashed');
    });
    await consumer.connect();
    for (const topic of [TOPICS.readings, TOPICS.scores, TOPICS.alerts]) {
      // A fresh group starts at the end; with autoCommit off a restart starts at the end again.
      await consumer.subscribe({ topic, fromBeginning: false });
    }
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: true,
      eachBatch: async ({ batch, heartbeat }) => {
        this.last = Date.now();
        this.connected = true;
        for (const m of batch.messages) {
          if (this.closing) return;
          dispatchRecord(batch.topic, m.value, sink);
        }
        await heartbeat();
      },
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    const c = this.consumer;
    this.consumer = null;
    if (c) await c.disconnect().catch(() => undefined);
    this.connected = false;
  }
}
