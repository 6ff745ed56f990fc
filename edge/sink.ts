/**
 * The Kafka side of the forwarder: a kafkajs producer from common/kafka.ts, acks=-1, gzip.
 * kafkajs' own retries are kept short; the forwarder's timeout + spool handle longer outages.
 */
import { CompressionTypes, type KafkaClients, type Producer } from '../common/kafka.ts';
import type { KafkaSink } from './forwarder.ts';
import type { OutRecord } from './pipeline.ts';

export interface KafkaProducerSink extends KafkaSink {
  /** Connect ahead of the first send (failures are retried by the next send). */
  warmUp(): Promise<void>;
  close(): Promise<void>;
}

export function createKafkaSink(clients: KafkaClients, opts: { compression: 'none' | 'gzip'; sendTimeoutMs: number }): KafkaProducerSink {
  let producer: Producer | null = null;
  let connecting: Promise<Producer> | null = null;

  const connect = (): Promise<Producer> => {
    if (producer) return Promise.resolve(producer);
    connecting ??= (async () => {
      const p = clients.producer({ allowAutoTopicCreation: false, retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1000 } });
      p.on(p.events.DISCONNECT, () => {
        if (producer === p) producer = null;
      });
      try {
        await p.connect();
      } catch (err) {
        await p.disconnect().catch(() => undefined);
        throw err;
      }
      producer = p;
      return p;
    })().finally(() => {
      connecting = null;
    });
    return connecting;
  };

  return {
    warmUp: () => connect().then(() => undefined),
    async send(records: OutRecord[]): Promise<void> {
      const p = await connect();
      const byTopic = new Map<string, { key: string; value: string; headers?: Record<string, string> }[]>();
      for (const r of records) {
        let list = byTopic.get(r.topic);
        if (!list) byTopic.set(r.topic, (list = []));
        list.push(r.headers ? { key: r.key, value: r.value, headers: r.headers } : { key: r.key, value: r.value });
      }
      try {
        await p.sendBatch({
          acks: -1,
          timeout: opts.sendTimeoutMs,
          compression: opts.compression === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None,
          topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
        });
      } catch (err) {
        // A fresh connection next time: kafkajs may keep a broken one after a broker restart.
        if (producer === p) producer = null;
        p.disconnect().catch(() => undefined);
        throw err;
      }
    },
    async close(): Promise<void> {
      const p = producer ?? (connecting ? await connecting.catch(() => null) : null);
      producer = null;
      await p?.disconnect().catch(() => undefined);
    },
  };
}
