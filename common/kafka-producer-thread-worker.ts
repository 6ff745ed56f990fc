/**
 * The worker side of ThreadedProducer (kafka-producer-thread.ts): one kafkajs producer, connected
 * at start, that sends the main thread's packed batches in the order they arrive and answers each
 * with kafkajs' RecordMetadata or its error. Logs go back as pino lines.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { workerThreadLogger } from './logger.ts';
import { createKafkaClients } from './kafka.ts';
import { serializeKafkaError, unpack, type FromProducerThread, type ProducerThreadInit, type ToProducerThread } from './kafka-producer-thread.ts';

const init = workerData.init as ProducerThreadInit;
const port = parentPort!;
const send = (m: FromProducerThread) => port.postMessage(m);

const logger = workerThreadLogger(init.logLevel, (line) => send({ type: 'log', line }));
const producer = createKafkaClients(init.kafka, logger).producer(init.producer);

port.on('message', (m: ToProducerThread) => {
  if (m.type === 'disconnect') {
    producer.disconnect().then(
      () => send({ type: 'result', id: m.id }),
      (err: unknown) => send({ type: 'result', id: m.id, error: serializeKafkaError(err) }),
    );
    return;
  }
  // Called right away, not queued behind the previous send: kafkajs keeps the calls' order on the wire.
  producer.sendBatch({ acks: m.acks, timeout: m.timeout, compression: m.compression, topicMessages: unpack(m.topics, m.values) }).then(
    (result) => send({ type: 'result', id: m.id, result }),
    (err: unknown) => send({ type: 'result', id: m.id, error: serializeKafkaError(err) }),
  );
});

producer.connect().then(
  () => send({ type: 'ready' }),
  (err: unknown) => send({ type: 'failed', error: serializeKafkaError(err) }),
);
