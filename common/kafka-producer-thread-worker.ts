/**
 * The worker side of ThreadedProducer (kafka-producer-thread.ts): one kafkajs producer, connected
 * at start, that sends the main thread's packed batches in the order they arrive and answers each
 * with kafkajs' RecordMetadata or its error; `call` payloads go to the extension module's handler.
 * Logs go back as pino lines.
 */
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { workerThreadLogger } from './logger.ts';
import { createKafkaClients } from './kafka.ts';
import {
  serializeKafkaError,
  unpack,
  type CreateProducerExtension,
  type FromProducerThread,
  type ProducerExtensionHandler,
  type ProducerThreadInit,
  type ToProducerThread,
} from './kafka-producer-thread.ts';

const init = workerData.init as ProducerThreadInit;
const port = parentPort!;
const send = (m: FromProducerThread) => port.postMessage(m);

const logger = workerThreadLogger(init.logLevel, (line) => send({ type: 'log', line }));
const producer = createKafkaClients(init.kafka, logger).producer(init.producer);

function answer(id: number, work: () => Promise<unknown>): void {
  let p: Promise<unknown>;
  try {
    p = work();
  } catch (err) {
    p = Promise.reject(err);
  }
  p.then(
    (result) => send({ type: 'result', id, result }),
    (err: unknown) => send({ type: 'result', id, error: serializeKafkaError(err) }),
  );
}

let extension: ProducerExtensionHandler | undefined;

port.on('message', (m: ToProducerThread) => {
  if (m.type === 'disconnect') return answer(m.id, () => producer.disconnect());
  if (m.type === 'call') {
    return answer(m.id, () => {
      if (!extension) throw Object.assign(new Error('no producer extension loaded'), { retriable: false });
      return extension(m.payload);
    });
  }
  // Called right away, not queued behind the previous send: kafkajs keeps the calls' order on the wire.
  answer(m.id, () => producer.sendBatch({ acks: m.acks, timeout: m.timeout, compression: m.compression, topicMessages: unpack(m.topics, m.values) }));
});

async function start(): Promise<void> {
  if (init.nice) {
    // setpriority(PRIO_PROCESS, 0) sets the calling thread's nice on Linux only; elsewhere it would
    // slow the whole process, so it is not applied there.
    if (process.platform !== 'linux') logger.info({ nice: init.nice }, 'producer thread nice applies on Linux only; not set');
    else {
      try {
        setPriority(0, init.nice);
      } catch (err) {
        logger.warn({ err, nice: init.nice }, 'cannot set the producer thread nice; it runs at the default priority');
      }
    }
  }
  if (init.extension) {
    const mod = (await import(init.extension)) as { createProducerExtension: CreateProducerExtension };
    extension = mod.createProducerExtension({ producer, logger });
  }
  await producer.connect();
}

start().then(
  () => send({ type: 'ready' }),
  (err: unknown) => send({ type: 'failed', error: serializeKafkaError(err) }),
);
