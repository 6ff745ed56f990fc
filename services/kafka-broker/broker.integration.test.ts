/**
 * The rest of issue 2 through real requests: Fetch long-poll (max wait, min bytes, max bytes,
 * KIP-74), OFFSET_OUT_OF_RANGE, ListOffsets by timestamp, DescribeGroups/ListGroups, DeleteTopics,
 * idempotent and acks=0 producers, auto-create on/off, ApiVersions, retention through the broker,
 * and the /metrics endpoint.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../../test/helpers/kafka.ts';
import { ApiVersions, Fetch, ListOffsets, Metadata, Produce } from './src/protocol/index.ts';
import type { FetchResponse } from './src/protocol/fetch/index.ts';
import type { MetadataResponse } from './src/protocol/metadata/index.ts';
import type { ProduceResponse } from './src/protocol/produce/index.ts';
import type { ApiVersionsResponse } from './src/protocol/apiVersions/index.ts';
import type { ListOffsetsResponse } from './src/protocol/listOffsets/index.ts';
import { parseProducedBatches } from './src/protocol/recordBatch.ts';
import { ProtocolClient } from './test/protocolClient.ts';
import { buildBatch } from './test/batch.ts';
import { Received, startRecordingConsumer, waitFor } from './test/util.ts';

function fetchReq(topic: string, offset: number, over: { maxWaitMs?: number; minBytes?: number; maxBytes?: number; partitionMaxBytes?: number } = {}) {
  return {
    replicaId: -1,
    maxWaitMs: over.maxWaitMs ?? 0,
    minBytes: over.minBytes ?? 1,
    maxBytes: over.maxBytes ?? 1 << 20,
    isolationLevel: 1,
    sessionId: 0,
    sessionEpoch: -1,
    topics: [{ topic, partitions: [{ partition: 0, currentLeaderEpoch: -1, fetchOffset: offset, logStartOffset: -1, partitionMaxBytes: over.partitionMaxBytes ?? 1 << 20 }] }],
    forgottenTopicsData: [],
    rackId: '',
  };
}

function produceReq(topic: string, batch: Buffer, acks = -1) {
  return { transactionalId: null, acks, timeoutMs: 5000, topicData: [{ name: topic, partitionData: [{ index: 0, records: batch }] }] };
}

const recordsOf = (res: FetchResponse): Buffer => {
  const r = res.responses[0].partitions[0].records;
  return Buffer.isBuffer(r) ? r : Buffer.concat(r ?? []);
};

describe('services/kafka-broker protocol behaviour', () => {
  let k: TestBroker;
  let client: ProtocolClient;
  beforeAll(async () => {
    k = await startTestBroker({ httpPort: 0 });
    client = await ProtocolClient.connect(k.brokers[0]);
    const admin = k.kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: 'lp' }, { topic: 'ts' }, { topic: 'gone' }] });
    await admin.disconnect();
  });
  afterAll(async () => {
    client?.close();
    await k?.close();
  });

  it('advertises exactly the implemented versions (ApiVersions v3, flexible)', async () => {
    const res = await client.request<ApiVersionsResponse>(ApiVersions, 3, { clientSoftwareName: 'test', clientSoftwareVersion: '1' });
    expect(res.errorCode).toBe(0);
    const byKey = new Map(res.apiKeys.map((a) => [a.apiKey, [a.minVersion, a.maxVersion]]));
    expect(byKey.get(0)).toEqual([3, 7]);
    expect(byKey.get(1)).toEqual([4, 11]);
    expect(byKey.get(18)).toEqual([0, 3]);
    expect(byKey.has(17)).toBe(false); // no SASL
  });

  it('holds a fetch at the log end until data arrives, and answers empty after max wait', async () => {
    const t0 = Date.now();
    const empty = await client.request<FetchResponse>(Fetch, 11, fetchReq('lp', 0, { maxWaitMs: 300 }));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(recordsOf(empty).length).toBe(0);
    expect(empty.responses[0].partitions[0].highWatermark).toBe(0);

    const other = await ProtocolClient.connect(k.brokers[0]);
    const t1 = Date.now();
    const held = client.request<FetchResponse>(Fetch, 11, fetchReq('lp', 0, { maxWaitMs: 10_000 }));
    await new Promise((r) => setTimeout(r, 100));
    const produced = await other.request<ProduceResponse>(Produce, 7, produceReq('lp', buildBatch([{ value: 'wake' }])));
    expect(produced.responses[0].partitionResponses[0]).toMatchObject({ errorCode: 0, baseOffset: 0 });
    const woke = await held;
    expect(Date.now() - t1).toBeLessThan(5_000);
    expect(woke.responses[0].partitions[0].highWatermark).toBe(1);
    expect(recordsOf(woke).length).toBeGreaterThan(61);
    other.close();
  });

  it('waits for min bytes, then answers with whole batches; the first batch comes whole above the limits (KIP-74)', async () => {
    const small = buildBatch([{ value: 'x' }]);
    const minBytes = small.length * 3;
    const held = client.request<FetchResponse>(Fetch, 11, fetchReq('lp', 1, { maxWaitMs: 5_000, minBytes }));
    const producer = await ProtocolClient.connect(k.brokers[0]);
    for (let i = 0; i < 3; i++) await producer.request(Produce, 7, produceReq('lp', buildBatch([{ value: 'x' }])));
    const res = await held;
    expect(recordsOf(res).length).toBeGreaterThanOrEqual(minBytes);

    const big = buildBatch([{ value: 'B'.repeat(5000) }]);
    await producer.request(Produce, 7, produceReq('lp', big));
    const bigRes = await client.request<FetchResponse>(Fetch, 11, fetchReq('lp', 4, { maxBytes: 100, partitionMaxBytes: 100 }));
    const got = parseProducedBatches(recordsOf(bigRes));
    expect('batches' in got && got.batches.length).toBe(1);
    expect(recordsOf(bigRes).length).toBe(big.length);
    producer.close();
  });

  it('answers OFFSET_OUT_OF_RANGE beyond the log end and UNKNOWN_TOPIC_OR_PARTITION for a missing partition', async () => {
    const res = await client.request<FetchResponse>(Fetch, 11, fetchReq('lp', 999));
    expect(res.responses[0].partitions[0].errorCode).toBe(1);
    const missing = await client.request<FetchResponse>(Fetch, 11, { ...fetchReq('lp', 0), topics: [{ topic: 'lp', partitions: [{ partition: 7, currentLeaderEpoch: -1, fetchOffset: 0, logStartOffset: -1, partitionMaxBytes: 100 }] }] });
    expect(missing.responses[0].partitions[0].errorCode).toBe(3);
  });

  it('creates topics on Metadata only when the client allows it and the broker is configured to', async () => {
    const no = await client.request<MetadataResponse>(Metadata, 4, { topics: [{ name: 'not-auto' }], allowAutoTopicCreation: false });
    expect(no.topics[0].errorCode).toBe(3);
    const yes = await client.request<MetadataResponse>(Metadata, 4, { topics: [{ name: 'auto-made' }], allowAutoTopicCreation: true });
    expect(yes.topics[0]).toMatchObject({ errorCode: 0, name: 'auto-made' });
    const bad = await client.request<MetadataResponse>(Metadata, 4, { topics: [{ name: 'bad name!' }], allowAutoTopicCreation: true });
    expect(bad.topics[0].errorCode).toBe(17);
    const off = await startTestBroker({ autoCreateTopics: false });
    try {
      const c = await ProtocolClient.connect(off.brokers[0]);
      const res = await c.request<MetadataResponse>(Metadata, 4, { topics: [{ name: 'x' }], allowAutoTopicCreation: true });
      expect(res.topics[0].errorCode).toBe(3);
      c.close();
    } finally {
      await off.close();
    }
  });

  it('finds offsets by timestamp (ListOffsets), earliest and latest', async () => {
    const producer = k.kafka.producer();
    await producer.connect();
    for (const ts of [1000, 2000, 3000]) await producer.send({ topic: 'ts', messages: [{ value: `at-${ts}`, timestamp: String(ts) }] });
    await producer.disconnect();
    const admin = k.kafka.admin();
    await admin.connect();
    expect(await admin.fetchTopicOffsetsByTimestamp('ts', 1500)).toEqual([{ partition: 0, offset: '1' }]);
    expect(await admin.fetchTopicOffsets('ts')).toEqual([{ partition: 0, offset: '3', high: '3', low: '0' }]);
    await admin.disconnect();
    const res = await client.request<ListOffsetsResponse>(ListOffsets, 2, { replicaId: -1, isolationLevel: 0, topics: [{ name: 'ts', partitions: [{ partitionIndex: 0, timestamp: 2500 }] }] });
    expect(res.topics[0].partitions[0]).toMatchObject({ errorCode: 0, offset: 2, timestamp: 3000 });
  });

  it('idempotent kafkajs producer: InitProducerId and sequence numbers; a replayed batch is not stored twice', async () => {
    const producer = k.kafka.producer({ idempotent: true });
    await producer.connect();
    await producer.send({ topic: 'idem', acks: -1, messages: [{ value: 'a' }, { value: 'b' }] });
    await producer.send({ topic: 'idem', acks: -1, messages: [{ value: 'c' }] });
    await producer.disconnect();
    // Replay a batch with producer id 42, sequence 0, twice: stored once, same offset both times.
    const batch = buildBatch([{ value: 'once' }], { producerId: 42, producerEpoch: 0, baseSequence: 0 });
    const first = await client.request<ProduceResponse>(Produce, 7, produceReq('idem', Buffer.from(batch)));
    const again = await client.request<ProduceResponse>(Produce, 7, produceReq('idem', Buffer.from(batch)));
    expect(again.responses[0].partitionResponses[0]).toMatchObject({ errorCode: 0, baseOffset: first.responses[0].partitionResponses[0].baseOffset });
    const gap = await client.request<ProduceResponse>(Produce, 7, produceReq('idem', buildBatch([{ value: 'gap' }], { producerId: 42, producerEpoch: 0, baseSequence: 5 })));
    expect(gap.responses[0].partitionResponses[0].errorCode).toBe(45); // OUT_OF_ORDER_SEQUENCE_NUMBER
    const admin = k.kafka.admin();
    await admin.connect();
    expect(await admin.fetchTopicOffsets('idem')).toEqual([{ partition: 0, offset: '4', high: '4', low: '0' }]);
    await admin.disconnect();
  });

  it('acks=0 gets no response but is stored', async () => {
    const producer = k.kafka.producer();
    await producer.connect();
    await producer.send({ topic: 'fire', acks: 0, messages: [{ value: 'f1' }, { value: 'f2' }] });
    await producer.send({ topic: 'fire', acks: 1, messages: [{ value: 'f3' }] });
    await producer.disconnect();
    const admin = k.kafka.admin();
    await admin.connect();
    expect((await admin.fetchTopicOffsets('fire'))[0].high).toBe('3');
    await admin.disconnect();
  });

  it('describes and lists groups; DeleteTopics removes a topic', async () => {
    const got = new Received();
    const { consumer } = await startRecordingConsumer(k.kafka, 'described', 'ts', got);
    await waitFor('messages', () => got.count >= 3);
    const admin = k.kafka.admin();
    await admin.connect();
    const { groups } = await admin.describeGroups(['described', 'never-seen']);
    expect(groups[0]).toMatchObject({ groupId: 'described', state: 'Stable', protocolType: 'consumer', protocol: 'RoundRobinAssigner' });
    expect(groups[0].members).toHaveLength(1);
    expect(groups[0].members[0].memberAssignment.length).toBeGreaterThan(0);
    expect(groups[1].state).toBe('Dead');
    expect((await admin.listGroups()).groups).toContainEqual({ groupId: 'described', protocolType: 'consumer' });
    await consumer.disconnect();
    expect((await admin.describeGroups(['described'])).groups[0].state).toBe('Empty');
    await admin.deleteTopics({ topics: ['gone'] });
    expect(await admin.listTopics()).not.toContain('gone');
    await admin.disconnect();
  });

  it('serves Prometheus metrics on the ops port', async () => {
    const res = await fetch(`${k.broker.opsUrl}/metrics`);
    const text = await res.text();
    expect(text).toMatch(/plantwatch_broker_requests_total\{api="Produce"[^}]*\} [1-9]/);
    expect(text).toMatch(/plantwatch_broker_connections(\{[^}]*\})? [1-9]/);
    expect(text).toMatch(/plantwatch_broker_request_duration_seconds_bucket\{[^}]*api="Fetch"/);
    const health = await fetch(`${k.broker.opsUrl}/healthz`);
    expect(health.status).toBe(200);
  });
});

describe('services/kafka-broker retention through the broker', () => {
  it('deletes old segments and clients see the new log start', async () => {
    const k = await startTestBroker({ segmentBytes: 1024, retentionBytes: 2048, retentionCheckIntervalMs: 50 });
    try {
      const producer = k.kafka.producer();
      await producer.connect();
      for (let i = 0; i < 20; i++) await producer.send({ topic: 'short', messages: [{ value: 'r'.repeat(400) }] });
      await producer.disconnect();
      const admin = k.kafka.admin();
      await admin.connect();
      // 20 batches of ~470 B in 1 KiB segments: keeping at most 2 KiB of closed segments moves the start past 10.
      await waitFor('retention', async () => Number((await admin.fetchTopicOffsets('short'))[0].low) > 10, 5000, 50);
      await new Promise((r) => setTimeout(r, 300)); // several more retention passes: the start is settled
      const [o] = await admin.fetchTopicOffsets('short');
      expect(o.high).toBe('20');
      expect(Number(o.low)).toBeGreaterThan(10);
      await admin.disconnect();
      // A consumer from the beginning starts at the new log start.
      const got = new Received();
      const { consumer } = await startRecordingConsumer(k.kafka, 'late', 'short', got);
      await waitFor('retained messages', () => got.count >= 20 - Number(o.low));
      expect(got.offsets.get(0)![0]).toBe(Number(o.low));
      await consumer.disconnect();
    } finally {
      await k.close();
    }
  });
});

describe('services/kafka-broker fsync policy always', () => {
  it('acknowledges produces after fdatasync and keeps them across a restart', async () => {
    const k = await startTestBroker({ fsync: 'always', keepData: true });
    const dataDir = k.dataDir;
    try {
      const producer = k.kafka.producer();
      await producer.connect();
      for (let i = 0; i < 5; i++) await producer.send({ topic: 'durable', acks: -1, messages: [{ value: `d${i}` }] });
      await producer.disconnect();
      await k.close();
      const again = await startTestBroker({ dataDir, fsync: 'always' });
      try {
        const admin = again.kafka.admin();
        await admin.connect();
        expect(await admin.fetchTopicOffsets('durable')).toEqual([{ partition: 0, offset: '5', high: '5', low: '0' }]);
        await admin.disconnect();
      } finally {
        await again.close();
      }
    } finally {
      await k.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('services/kafka-broker idempotent producer across a restart', () => {
  it('recognises a batch retried after the broker restarted and does not store it twice', async () => {
    const k = await startTestBroker({ keepData: true });
    const dataDir = k.dataDir;
    const batch = buildBatch([{ value: 'exactly-once' }], { producerId: 9001, producerEpoch: 0, baseSequence: 0 });
    try {
      const c1 = await ProtocolClient.connect(k.brokers[0]);
      await c1.request(Metadata, 4, { topics: [{ name: 'retry' }], allowAutoTopicCreation: true });
      const first = await c1.request<ProduceResponse>(Produce, 7, produceReq('retry', Buffer.from(batch)));
      expect(first.responses[0].partitionResponses[0]).toMatchObject({ errorCode: 0, baseOffset: 0 });
      c1.close();
      await k.close();
      const k2 = await startTestBroker({ dataDir });
      try {
        const c2 = await ProtocolClient.connect(k2.brokers[0]);
        const retried = await c2.request<ProduceResponse>(Produce, 7, produceReq('retry', Buffer.from(batch)));
        expect(retried.responses[0].partitionResponses[0]).toMatchObject({ errorCode: 0, baseOffset: 0 });
        const next = await c2.request<ProduceResponse>(Produce, 7, produceReq('retry', buildBatch([{ value: 'next' }], { producerId: 9001, producerEpoch: 0, baseSequence: 1 })));
        expect(next.responses[0].partitionResponses[0]).toMatchObject({ errorCode: 0, baseOffset: 1 });
        c2.close();
      } finally {
        await k2.close();
      }
    } finally {
      await k.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
