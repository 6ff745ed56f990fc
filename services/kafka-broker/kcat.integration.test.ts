/**
 * Issue 2, "Must show" 2: interoperability with librdkafka through kcat, a client we did not write.
 * kcat -P → kafkajs, kafkajs → kcat -C -e, kcat -L, kcat -G (balanced consumer group with commits),
 * and compressed batches stored verbatim.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWith } from '../../test/helpers/integration.ts';
import { startTestBroker, type TestBroker } from '../../test/helpers/kafka.ts';
import { CompressionTypes } from '../../common/kafka.ts';
import { kcat } from './test/kcat.ts';
import { Received, startRecordingConsumer, waitFor } from './test/util.ts';

const N = 2_000;

describeWith(['kcat'], 'services/kafka-broker with kcat (librdkafka)', () => {
  let k: TestBroker;
  let bootstrap: string;
  beforeAll(async () => {
    k = await startTestBroker();
    bootstrap = k.brokers[0];
  });
  afterAll(async () => {
    await k?.close();
  });

  it('kcat -P produces N messages (acks=-1) and kafkajs consumes all N', async () => {
    const lines = Array.from({ length: N }, (_, i) => `key${i % 10}:value-${i}`).join('\n') + '\n';
    const res = await kcat(['-P', '-b', bootstrap, '-t', 'from-kcat', '-K:', '-X', 'acks=-1'], lines);
    expect(res.code, res.stderr).toBe(0);
    const got = new Received();
    const { consumer } = await startRecordingConsumer(k.kafka, 'kjs-reads-kcat', 'from-kcat', got);
    try {
      await waitFor('kafkajs to read all kcat messages', () => got.count >= N);
      expect(got.values.sort()).toEqual(Array.from({ length: N }, (_, i) => `value-${i}`).sort());
    } finally {
      await consumer.disconnect();
    }
  });

  it('kafkajs produces N messages (gzip and plain) and kcat -C -e reads all N', async () => {
    const producer = k.kafka.producer();
    await producer.connect();
    await producer.send({ topic: 'from-kafkajs', acks: -1, messages: Array.from({ length: N / 2 }, (_, i) => ({ key: `k${i}`, value: `plain-${i}` })) });
    await producer.send({ topic: 'from-kafkajs', acks: -1, compression: CompressionTypes.GZIP, messages: Array.from({ length: N / 2 }, (_, i) => ({ key: `k${i}`, value: `gzip-${i}` })) });
    await producer.disconnect();
    const res = await kcat(['-C', '-b', bootstrap, '-t', 'from-kafkajs', '-e', '-q', '-f', '%o %s\n']);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).not.toMatch(/PROTOERR|parse failure|ERROR/i);
    const rows = res.stdout.trim().split('\n');
    expect(rows).toHaveLength(N);
    expect(rows.map((r) => Number(r.split(' ')[0]))).toEqual(Array.from({ length: N }, (_, i) => i));
    expect(rows[N - 1]).toBe(`${N - 1} gzip-${N / 2 - 1}`);
  });

  it('kcat waits on an empty partition through long-polled empty fetches without protocol errors', async () => {
    const admin = k.kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: 'quiet' }] });
    await admin.disconnect();
    // -c 1 keeps kcat fetching (500 ms long polls, empty answers) until one message arrives.
    const reading = kcat(['-C', '-b', bootstrap, '-t', 'quiet', '-c', '1', '-d', 'fetch,protocol']);
    await new Promise((r) => setTimeout(r, 1500));
    expect((await kcat(['-P', '-b', bootstrap, '-t', 'quiet'], 'finally\n')).code).toBe(0);
    const res = await reading;
    expect(res.code).toBe(0);
    expect(res.stdout.trim()).toBe('finally');
    expect(res.stderr).toMatch(/Fetch/);
    expect(res.stderr).not.toMatch(/PROTOERR|parse failure/i);
  });

  it('kcat -L lists the topics with their partitions', async () => {
    const admin = k.kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: 'listed', numPartitions: 4 }] });
    await admin.disconnect();
    const res = await kcat(['-L', '-J', '-b', bootstrap]);
    expect(res.code, res.stderr).toBe(0);
    const meta = JSON.parse(res.stdout) as { brokers: { id: number; name: string }[]; topics: { topic: string; partitions: unknown[] }[] };
    expect(meta.brokers).toEqual([{ id: 0, name: bootstrap }]);
    const listed = meta.topics.find((t) => t.topic === 'listed');
    expect(listed?.partitions).toHaveLength(4);
  });

  it('kcat -G joins a group, consumes every message and commits; a second run resumes after the commit', async () => {
    const lines = Array.from({ length: N }, (_, i) => `g-${i}`).join('\n') + '\n';
    expect((await kcat(['-P', '-b', bootstrap, '-t', 'grouped'], lines)).code).toBe(0);
    const first = await kcat(['-b', bootstrap, '-G', 'kcat-group', '-X', 'auto.offset.reset=earliest', '-e', '-q', 'grouped']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).not.toMatch(/PROTOERR|parse failure|ERROR/i);
    expect(first.stdout.trim().split('\n')).toHaveLength(N);
    const admin = k.kafka.admin();
    await admin.connect();
    const [offsets] = await admin.fetchOffsets({ groupId: 'kcat-group', topics: ['grouped'] });
    const groups = await admin.listGroups();
    await admin.disconnect();
    expect(offsets.partitions).toEqual([{ partition: 0, offset: String(N), metadata: null }]); // kafkajs maps "" to null
    expect(groups.groups.map((g) => g.groupId)).toContain('kcat-group');

    expect((await kcat(['-P', '-b', bootstrap, '-t', 'grouped'], 'after-1\nafter-2\n')).code).toBe(0);
    const second = await kcat(['-b', bootstrap, '-G', 'kcat-group', '-X', 'auto.offset.reset=earliest', '-e', '-q', 'grouped']);
    expect(second.stdout.trim().split('\n')).toEqual(['after-1', 'after-2']);
  });

  it('stores snappy, lz4 and zstd batches verbatim: kcat reads back what it wrote', async () => {
    for (const codec of ['gzip', 'snappy', 'lz4', 'zstd']) {
      const lines = Array.from({ length: 500 }, (_, i) => `${codec}-${i}-${'x'.repeat(50)}`).join('\n') + '\n';
      expect((await kcat(['-P', '-b', bootstrap, '-t', 'compressed', '-z', codec], lines)).code).toBe(0);
    }
    const res = await kcat(['-C', '-b', bootstrap, '-t', 'compressed', '-e', '-q']);
    const rows = res.stdout.trim().split('\n');
    expect(rows).toHaveLength(2_000);
    expect(rows[1999]).toBe(`zstd-499-${'x'.repeat(50)}`);
  });

  it('kcat with enable.idempotence=true gets a producer id and its messages are stored once', async () => {
    const lines = Array.from({ length: 300 }, (_, i) => `i-${i}`).join('\n') + '\n';
    const res = await kcat(['-P', '-b', bootstrap, '-t', 'idempotent', '-X', 'enable.idempotence=true'], lines);
    expect(res.code, res.stderr).toBe(0);
    const out = await kcat(['-C', '-b', bootstrap, '-t', 'idempotent', '-e', '-q']);
    expect(out.stdout.trim().split('\n')).toHaveLength(300);
  });
});
