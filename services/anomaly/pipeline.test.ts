/**
 * The pipeline's delivery rules, driven directly through kafkajs' eachBatch contract with an
 * in-memory consumer and producer: commit strictly after the produce ack, a failed produce is
 * retried (never re-scored), a re-fetched batch is not fed to the detector twice.
 */
import { describe, expect, it } from 'vitest';
import type { EachBatchPayload, KafkaClients, Producer } from '../../common/kafka.ts';
import { silentLogger } from '../../common/logger.ts';
import { createRegistry } from '../../common/metrics.ts';
import { AnomalyConfig } from './config.schema.ts';
import { TrainingLedger } from './ledger.ts';
import { createAnomalyMetrics } from './metrics.ts';
import { createPipeline, type PipelineOptions } from './pipeline.ts';
import { FakeDetector, reading } from './test-support/fake-detector.ts';

type EachBatch = (p: EachBatchPayload) => Promise<void>;

function harness(opts: { failSends?: number; sendGate?: () => Promise<void> } = {}) {
  const log: string[] = [];
  let eachBatch!: EachBatch;
  let failSends = opts.failSends ?? 0;
  const sent: { topic: string; messages: { key: string; value: string }[] }[][] = [];
  const producer = {
    async sendBatch({ topicMessages }: { topicMessages: { topic: string; messages: { key: string; value: string }[] }[] }) {
      log.push('send');
      await opts.sendGate?.();
      if (failSends > 0) {
        failSends--;
        log.push('send failed');
        throw new Error('broker unavailable');
      }
      sent.push(topicMessages);
      log.push('acked');
      return [];
    },
  } as unknown as Producer;
  const consumer = {
    events: { GROUP_JOIN: 'consumer.group_join', CRASH: 'consumer.crash' },
    on: () => () => undefined,
    connect: async () => undefined,
    subscribe: async () => undefined,
    run: async (o: { eachBatch: EachBatch }) => void (eachBatch = o.eachBatch),
    disconnect: async () => undefined,
  };
  const kafka = { brokers: [], consumer: () => consumer, producer: () => producer, admin: () => ({}) } as unknown as KafkaClients;
  const detector = new FakeDetector();
  const registry = createRegistry('anomaly');
  const metrics = createAnomalyMetrics(registry, { streams: () => 0, stateBytes: () => 0 });
  const config = AnomalyConfig.parse({});
  const ledger = new TrainingLedger('readings');
  const options: PipelineOptions = {
    name: 'live',
    kafka,
    producer,
    logger: silentLogger(),
    metrics,
    groupId: 'g',
    inputTopic: 'readings',
    outputTopic: 'scores',
    deadLetterTopic: 'dead',
    fromBeginning: true,
    batch: config.batch,
    group: config.group,
    detector: () => detector,
    ledger: () => ledger,
    stopGraceMs: 300,
  };
  const pipeline = createPipeline(options);

  function payload(partition: number, offsets: number[]): EachBatchPayload {
    const messages = offsets.map((o) => ({
      offset: String(o),
      timestamp: String(Date.now()),
      key: Buffer.from('s1/l1/m1'),
      value: Buffer.from(JSON.stringify(reading({ ts: 1000 + o, value: o }))),
      attributes: 0,
      headers: {},
    }));
    return {
      batch: {
        topic: 'readings',
        partition,
        highWatermark: String(offsets[offsets.length - 1] + 1),
        messages,
        firstOffset: () => String(offsets[0]),
        lastOffset: () => String(offsets[offsets.length - 1]),
        isEmpty: () => messages.length === 0,
        offsetLag: () => '0',
        offsetLagLow: () => '0',
      },
      resolveOffset: (o: string) => void log.push(`resolve ${o}`),
      heartbeat: async () => undefined,
      pause: () => () => undefined,
      commitOffsetsIfNecessary: async (offsets?: { topics: { partitions: { partition: number; offset: string }[] }[] }) => {
        const p = offsets!.topics[0].partitions[0];
        log.push(`commit ${p.partition}:${p.offset}`);
      },
      uncommittedOffsets: () => ({ topics: [] }),
      isRunning: () => true,
      isStale: () => false,
    } as unknown as EachBatchPayload;
  }

  return { pipeline, log, sent, detector, registry, payload, eachBatch: (p: EachBatchPayload) => eachBatch(p) };
}

describe('services > anomaly > pipeline', () => {
  it('commits a batch only after its scores were acknowledged, at the next offset', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const h = harness({ sendGate: () => gate });
    await h.pipeline.start();
    const done = h.eachBatch(h.payload(2, [10, 11, 12]));
    await new Promise((r) => setTimeout(r, 30));
    expect(h.log).toEqual(['send']);
    release();
    await done;
    expect(h.log).toEqual(['send', 'acked', 'resolve 12', 'commit 2:13']);
    expect(h.sent[0][0].topic).toBe('scores');
    expect(JSON.parse(h.sent[0][0].messages[0].value)).toHaveLength(4); // 3 sensor scores + 1 machine score
  });

  it('retries a failed produce with the same scores instead of scoring the batch again', async () => {
    const h = harness({ failSends: 2 });
    await h.pipeline.start();
    await h.eachBatch(h.payload(0, [0, 1]));
    expect(h.detector.calls).toEqual([2]);
    expect(h.log).toEqual(['send', 'send failed', 'send', 'send failed', 'send', 'acked', 'resolve 1', 'commit 0:2']);
    expect(await h.registry.getSingleMetricAsString('plantwatch_anomaly_produce_failures_total')).toMatch(/\{pipeline="live"[^}]*\} 2$/m);
  });

  it('a re-fetched batch (commit lost in a rebalance) is committed without feeding the detector twice', async () => {
    const h = harness();
    await h.pipeline.start();
    await h.eachBatch(h.payload(0, [0, 1, 2]));
    await h.eachBatch(h.payload(0, [1, 2, 3, 4]));
    expect(h.detector.calls).toEqual([3, 2]);
    expect(h.log.filter((l) => l.startsWith('commit'))).toEqual(['commit 0:3', 'commit 0:5']);
    // Other partitions are unaffected.
    await h.eachBatch(h.payload(1, [0, 1]));
    expect(h.detector.calls).toEqual([3, 2, 2]);
  });

  it('quiesce waits until every scored batch is committed', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const h = harness({ sendGate: () => gate });
    await h.pipeline.start();
    const batch = h.eachBatch(h.payload(0, [0, 1]));
    await new Promise((r) => setTimeout(r, 20));
    const snap = h.pipeline.quiesce(async () => h.log.slice());
    await new Promise((r) => setTimeout(r, 20));
    release();
    await batch;
    expect(await snap).toEqual(['send', 'acked', 'resolve 1', 'commit 0:2']);
  });

  it('on stop, a produce that keeps failing is given up and the batch is not committed', async () => {
    const h = harness({ failSends: Infinity });
    await h.pipeline.start();
    const batch = h.eachBatch(h.payload(0, [0])).then(
      () => 'resolved',
      () => 'rejected',
    );
    await new Promise((r) => setTimeout(r, 50));
    await h.pipeline.stop();
    expect(await batch).toBe('rejected');
    expect(h.log.some((l) => l.startsWith('commit'))).toBe(false);
  });
});
