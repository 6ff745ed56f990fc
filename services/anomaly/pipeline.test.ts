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

function harness(opts: { failSends?: number; sendGate?: () => Promise<void>; prefetch?: boolean; maxInFlight?: number } = {}) {
  const log: string[] = [];
  const handlers = new Map<string, (e: unknown) => void>();
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
    on: (event: string, fn: (e: unknown) => void) => {
      handlers.set(event, fn);
      return () => undefined;
    },
    connect: async () => undefined,
    subscribe: async () => undefined,
    run: async (o: { eachBatch: EachBatch }) => void (eachBatch = o.eachBatch),
    disconnect: async () => undefined,
    pause: () => void log.push('pause'),
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
    batch: { ...config.batch, prefetch: opts.prefetch ?? false, maxInFlight: opts.maxInFlight ?? config.batch.maxInFlight },
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

  /** kafkajs' GROUP_JOIN event with this member's new assignment of the readings topic. */
  const join = (partitions: number[]) => handlers.get('consumer.group_join')!({ payload: { memberAssignment: { readings: partitions } } });
  return { pipeline, log, sent, detector, registry, payload, join, eachBatch: (p: EachBatchPayload) => eachBatch(p) };
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

  describe('prefetch', () => {
    const until = async (cond: () => boolean) => {
      for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
      expect(cond()).toBe(true);
    };
    function gatedSends() {
      const gates: (() => void)[] = [];
      return { gates, sendGate: () => new Promise<void>((r) => gates.push(r)) };
    }

    it('hands a batch over (offset resolved, next fetch free) before its scores are acknowledged; commits after the ack', async () => {
      const g = gatedSends();
      const h = harness({ prefetch: true, sendGate: g.sendGate });
      await h.pipeline.start();
      await h.eachBatch(h.payload(2, [10, 11, 12]));
      await until(() => g.gates.length === 1);
      expect(h.log).toEqual(['resolve 12', 'send']);
      g.gates[0]();
      await until(() => h.log.includes('commit 2:13'));
      expect(h.log).toEqual(['resolve 12', 'send', 'acked', 'commit 2:13']);
    });

    it('commits a partition only up to its longest acknowledged run, in offset order', async () => {
      const g = gatedSends();
      const h = harness({ prefetch: true, sendGate: g.sendGate, maxInFlight: 4 });
      await h.pipeline.start();
      await h.eachBatch(h.payload(0, [0, 1, 2]));
      await h.eachBatch(h.payload(0, [3, 4]));
      await until(() => g.gates.length === 2);
      g.gates[1](); // the later batch is acknowledged first: nothing may be committed yet
      await until(() => h.log.filter((l) => l === 'acked').length === 1);
      await new Promise((r) => setTimeout(r, 20));
      expect(h.log.some((l) => l.startsWith('commit'))).toBe(false);
      g.gates[0]();
      await until(() => h.log.some((l) => l.startsWith('commit')));
      await new Promise((r) => setTimeout(r, 20));
      expect(h.log.filter((l) => l.startsWith('commit'))).toEqual(['commit 0:5']);
    });

    it('records re-fetched while still in flight are not scored twice, and their commit waits for the first delivery', async () => {
      const g = gatedSends();
      const h = harness({ prefetch: true, sendGate: g.sendGate, maxInFlight: 4 });
      await h.pipeline.start();
      await h.eachBatch(h.payload(0, [0, 1, 2]));
      await h.eachBatch(h.payload(0, [0, 1, 2, 3])); // e.g. after a rebalance kept the partition here
      await until(() => g.gates.length === 2);
      expect(h.detector.calls).toEqual([3, 1]);
      g.gates[1]();
      await new Promise((r) => setTimeout(r, 20));
      expect(h.log.some((l) => l.startsWith('commit'))).toBe(false);
      g.gates[0]();
      await until(() => h.log.includes('commit 0:4'));
    });

    it('a batch that cannot be scored commits nothing and fails the next eachBatch (kafkajs restarts from the commits)', async () => {
      const h = harness({ prefetch: true });
      await h.pipeline.start();
      h.detector.dispose(); // every reading throws: not the data's fault
      await h.eachBatch(h.payload(0, [0, 1]));
      await new Promise((r) => setTimeout(r, 20));
      await expect(h.eachBatch(h.payload(0, [2]))).rejects.toThrow('detector disposed');
      expect(h.log.some((l) => l.startsWith('commit'))).toBe(false);
    });

    it('a partition that moved to another member commits nothing more, and its batches still settle (quiesce does not hang)', async () => {
      const g = gatedSends();
      const h = harness({ prefetch: true, sendGate: g.sendGate, maxInFlight: 4 });
      await h.pipeline.start();
      h.join([0, 1]);
      await h.eachBatch(h.payload(0, [0, 1]));
      await h.eachBatch(h.payload(0, [2]));
      await until(() => g.gates.length === 2);
      h.join([1]); // rebalanced: partition 0 is someone else's now
      g.gates[1]();
      g.gates[0]();
      await until(() => h.log.filter((l) => l === 'acked').length === 2);
      expect(await h.pipeline.quiesce(async () => 'quiesced')).toBe('quiesced');
      expect(h.log.some((l) => l.startsWith('commit'))).toBe(false);
    });

    it('after a failed batch, quiesce does not wait for it', async () => {
      const h = harness({ prefetch: true });
      await h.pipeline.start();
      h.detector.dispose();
      await h.eachBatch(h.payload(0, [0, 1]));
      await new Promise((r) => setTimeout(r, 20));
      expect(await h.pipeline.quiesce(async () => 'quiesced')).toBe('quiesced');
    });

    it('quiesce and stop wait until the handed-over batches are committed', async () => {
      const g = gatedSends();
      const h = harness({ prefetch: true, sendGate: g.sendGate });
      await h.pipeline.start();
      await h.eachBatch(h.payload(0, [0, 1]));
      const snap = h.pipeline.quiesce(async () => h.log.slice());
      await until(() => g.gates.length === 1);
      g.gates[0]();
      expect(await snap).toEqual(['resolve 1', 'send', 'acked', 'commit 0:2']);
      await h.eachBatch(h.payload(1, [0]));
      const stopped = h.pipeline.stop();
      await until(() => g.gates.length === 2);
      g.gates[1]();
      await stopped;
      expect(h.log.slice(-3)).toEqual(['pause', 'acked', 'commit 1:1']);
    });
  });
});
