/**
 * The other side of bench:storage's "writer via Kafka" row, in its own process so the writer's
 * process holds only the storage component: the embedded Kafka broker plus a producer.
 *
 * Protocol (lines on stdin/stdout): prints {"brokers":[…]} when the broker is up; "warmup" → sends
 * one record of machine "warmup", prints {"warmup":true}; "produce" → sends all records (batches of
 * 1,000), prints {"produced":n}; "close" → stops the broker and exits.
 * Env: BENCH_POINTS, BENCH_BASE (event time of the first record, ms).
 */
import { createInterface } from 'node:readline';
import type { Reading } from '../common/messages.ts';
import { ensureTopics } from '../common/kafka.ts';
import { TOPICS } from '../common/topics.ts';
import { startTestBroker } from '../test/helpers/kafka.ts';
import { makeRecords } from './storage-data.ts';

const points = Number(process.env.BENCH_POINTS ?? 200_000);
const base = Number(process.env.BENCH_BASE ?? Date.now() - 3_600_000);
const { records } = makeRecords(points, base);
const broker = await startTestBroker();
await ensureTopics(broker.kafka);
const producer = broker.kafka.producer();
await producer.connect();
const say = (m: unknown) => process.stdout.write(JSON.stringify(m) + '\n');
say({ brokers: broker.brokers });

for await (const line of createInterface({ input: process.stdin })) {
  const cmd = line.trim();
  if (cmd === 'warmup') {
    const warmup = (JSON.parse(records[0].value!.toString()) as Reading[]).map((r) => ({ ...r, machine: 'warmup' }));
    await producer.send({ topic: TOPICS.readings, messages: [{ key: 'warmup', value: JSON.stringify(warmup) }] });
    say({ warmup: true });
  } else if (cmd === 'produce') {
    for (let i = 0; i < records.length; i += 1000) {
      await producer.send({ topic: TOPICS.readings, messages: records.slice(i, i + 1000).map((r) => ({ key: r.key as string, value: r.value })) });
    }
    say({ produced: records.length });
  } else if (cmd === 'close') break;
}
await producer.disconnect();
await broker.close();
process.exit(0);
