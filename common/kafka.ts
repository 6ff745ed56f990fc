/**
 * The one module that imports kafkajs. Everything else asks this module for producers, consumers
 * and admin clients, so swapping the client library (kafkajs' last release is from 2023) touches
 * one file. Logs go to pino; the partitioner is explicit (Java-compatible murmur2 on the key).
 */
// First: replaces two kafkajs hot spots before kafkajs loads (see the module).
import './kafkajs-tuning.ts';
import { Kafka, Partitioners, logLevel, type KafkaConfig, type LogEntry, type ProducerConfig, type ConsumerConfig, type Producer, type Consumer, type Admin, type ITopicConfig } from 'kafkajs';
import { readFileSync } from 'node:fs';
import type { Logger } from './logger.ts';
import type { KafkaClientConfig } from './config/fragments.ts';
import { TOPICS } from './topics.ts';

export type { Producer, Consumer, Admin, EachBatchPayload, EachMessagePayload, KafkaMessage, IHeaders, RecordMetadata, Message, ProducerBatch, ProducerConfig } from 'kafkajs';
export { CompressionTypes } from 'kafkajs';

/** What a service needs of a producer to send batches: kafkajs' Producer, or a ThreadedProducer. */
export type BatchProducer = Pick<Producer, 'connect' | 'disconnect' | 'sendBatch'>;

export interface KafkaClients {
  readonly brokers: string[];
  /** What the clients were created from (absent on test fakes): lets a worker thread open its own. */
  readonly config?: KafkaClientConfig & { brokers: string[] };
  producer(opts?: ProducerConfig): Producer;
  consumer(opts: ConsumerConfig): Consumer;
  admin(): Admin;
}

const pinoLevel: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

export function createKafkaClients(config: KafkaClientConfig & { brokers: string[] }, logger: Logger): KafkaClients {
  if (config.brokers.length === 0) throw new Error('createKafkaClients: no brokers (start the embedded broker first)');
  const log = logger.child({ lib: 'kafkajs' });
  const kafkaConfig: KafkaConfig = {
    clientId: config.clientId,
    brokers: config.brokers,
    connectionTimeout: config.connectionTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
    // kafkajs logs INFO for every group join; keep those at debug and surface WARN/ERROR.
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ level, log: entry }: LogEntry) => {
        const { message, ...rest } = entry;
        log[pinoLevel[level] ?? 'info'](rest, String(message));
      },
    ssl: config.ssl
      ? {
          rejectUnauthorized: config.ssl.rejectUnauthorized,
          // Paths are read lazily by tls; kafkajs passes these to tls.connect.
          ...(config.ssl.ca ? { ca: [readText(config.ssl.ca)] } : {}),
          ...(config.ssl.cert ? { cert: readText(config.ssl.cert) } : {}),
          ...(config.ssl.key ? { key: readText(config.ssl.key) } : {}),
        }
      : undefined,
    sasl: config.sasl as KafkaConfig['sasl'],
  };
  const kafka = new Kafka(kafkaConfig);
  return {
    brokers: config.brokers,
    config,
    producer: (opts = {}) => kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, ...opts }),
    consumer: (opts) => kafka.consumer(opts),
    admin: () => kafka.admin(),
  };
}

function readText(path: string): string {
  return readFileSync(path, 'utf8');
}

export interface TopicSpec {
  topic: string;
  numPartitions?: number;
  configEntries?: ITopicConfig['configEntries'];
}

/** The platform's topics and their default partition counts (readings are the hot path). */
export const PLATFORM_TOPICS: TopicSpec[] = [
  { topic: TOPICS.readings, numPartitions: 6 },
  { topic: TOPICS.scores, numPartitions: 6 },
  { topic: TOPICS.alerts, numPartitions: 1 },
  { topic: TOPICS.deadLetter, numPartitions: 1 },
];

/** Creates missing topics; existing ones are left as they are. Idempotent. */
export async function ensureTopics(clients: KafkaClients, specs: TopicSpec[] = PLATFORM_TOPICS): Promise<void> {
  const admin = clients.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = specs.filter((s) => !existing.has(s.topic));
    if (missing.length === 0) return;
    await admin.createTopics({
      waitForLeaders: true,
      topics: missing.map((s) => ({ topic: s.topic, numPartitions: s.numPartitions ?? 1, replicationFactor: -1, configEntries: s.configEntries })),
    });
  } finally {
    await admin.disconnect();
  }
}
