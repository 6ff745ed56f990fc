/**
 * Crash safety of the anomaly service, with instances in child processes that are SIGKILLed:
 * offsets are committed only after scores are produced, so a crash or a dead group member replays
 * instead of losing — every reading is scored at least once.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ensureTopics, type Producer } from '../../common/kafka.ts';
import type { SensorScore, Score } from '../../common/messages.ts';
import { TOPICS } from '../../common/topics.ts';
import { describeWith } from '../../test/helpers/integration.ts';
import { startTestBroker, type TestBroker } from '../../test/helpers/kafka.ts';
import { collect, decodeScores, health, makeReadings, produceReadings, readingId, spawnService, waitFor, type ChildService, type Collector } from './test-support/kafka-helpers.ts';

describeWith([], 'services > anomaly > consumer group (child processes, SIGKILL)', () => {
  let k: TestBroker;
  let producer: Producer;
  let scores: Collector<Score>;
  const children: ChildService[] = [];
  const dirs: string[] = [];

  const group = { sessionTimeoutMs: 2000, heartbeatIntervalMs: 200, rebalanceTimeoutMs: 4000 };

  async function instance(topic: string, dataDir?: string, extra: Record<string, unknown> = {}): Promise<ChildService> {
    const dir = dataDir ?? (await mkdtemp(join(tmpdir(), 'pw-anomaly-')));
    dirs.push(dir);
    const c = await spawnService({
      brokers: k.brokers,
      dataDir: dir,
      detector: 'real',
      config: { inputTopic: topic, groupId: `group-${topic}`, group, batch: { maxWaitMs: 20 } },
      ...extra,
    });
    children.push(c);
    return c;
  }

  const scoredIds = (site: string) =>
    scores.items.filter((s): s is SensorScore => s.kind === 'sensor' && s.site === site).map(readingId);

  /** Produces the readings in small steps, so instances can die in the middle of the stream. */
  async function produceSlowly(topic: string, readings: ReturnType<typeof makeReadings>, steps: number, pauseMs: number, onStep?: (i: number) => Promise<void>) {
    const per = Math.ceil(readings.length / steps);
    for (let i = 0; i < steps; i++) {
      await produceReadings(producer, topic, readings.slice(i * per, (i + 1) * per), { perRecord: 2 });
      await onStep?.(i);
      await new Promise((r) => setTimeout(r, pauseMs));
    }
  }

  beforeAll(async () => {
    k = await startTestBroker();
    await ensureTopics(k.kafka, [
      { topic: 'readings-crash', numPartitions: 4 },
      { topic: 'readings-pair', numPartitions: 4 },
      { topic: TOPICS.scores, numPartitions: 4 },
      { topic: TOPICS.deadLetter, numPartitions: 1 },
    ]);
    producer = k.kafka.producer();
    await producer.connect();
    scores = await collect(k.kafka, TOPICS.scores, decodeScores);
  });

  afterAll(async () => {
    for (const c of children) await c.kill();
    await scores?.stop();
    await producer?.disconnect();
    await k?.close();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('an instance killed after producing scores but before committing their offsets is replayed on restart: every reading scored at least once', async () => {
    const topic = 'readings-crash';
    const dataDir = await mkdtemp(join(tmpdir(), 'pw-anomaly-'));
    // The first instance SIGKILLs itself right after its 3rd produce was acknowledged: those scores
    // are out, their offsets are not committed.
    const first = await instance(topic, dataDir, { crashAfterSends: 3 });
    const readings = makeReadings({ machines: 20, sensors: 2, perStream: 60, site: 'crash' });
    let scoredAtCrash = -1;
    await produceSlowly(topic, readings, 24, 40, async () => {
      if (scoredAtCrash < 0 && first.proc.exitCode === null && first.proc.signalCode === null) return;
      if (scoredAtCrash < 0) {
        await first.exited;
        scoredAtCrash = new Set(scoredIds('crash')).size;
        await instance(topic, dataDir);
      }
    });
    await first.exited;
    expect(first.proc.signalCode).toBe('SIGKILL');
    if (scoredAtCrash < 0) {
      scoredAtCrash = new Set(scoredIds('crash')).size;
      await instance(topic, dataDir);
    }
    const want = new Set(readings.map(readingId));
    await waitFor(() => new Set(scoredIds('crash')).size === want.size, 60_000, 'every reading scored');
    const ids = scoredIds('crash');
    expect(new Set(ids)).toEqual(want);
    expect(scoredAtCrash).toBeGreaterThan(0);
    // The uncommitted batch was replayed and scored again: at least once, never lost.
    expect(ids.length).toBeGreaterThan(want.size);
    console.info(`crash/restart: ${want.size} readings, ${ids.length} scores (${ids.length - want.size} replayed), ${scoredAtCrash} scored before the crash`);
  });

  it('two instances share the partitions; when one is killed the other takes its partitions over, replays its uncommitted batch, and nothing goes unscored', async () => {
    const topic = 'readings-pair';
    // A dies like the crash above (scores out, offsets not committed), after its 4th acknowledged produce.
    const a = await instance(topic, undefined, { crashAfterSends: 4 });
    const b = await instance(topic);
    await waitFor(
      async () => {
        const [ha, hb] = await Promise.all([health(a.opsUrl), health(b.opsUrl)]);
        return ha.partitions.length > 0 && hb.partitions.length > 0 && [...ha.partitions, ...hb.partitions].sort().join() === '0,1,2,3';
      },
      30_000,
      'both instances own partitions',
      100,
    );
    const before = { a: (await health(a.opsUrl)).partitions, b: (await health(b.opsUrl)).partitions };
    const readings = makeReadings({ machines: 24, sensors: 2, perStream: 50, site: 'pair' });
    await produceSlowly(topic, readings, 20, 40);
    await a.exited;
    expect(a.proc.signalCode).toBe('SIGKILL');
    await waitFor(async () => (await health(b.opsUrl)).partitions.join() === '0,1,2,3', 30_000, 'survivor owns every partition', 100);
    const want = new Set(readings.map(readingId));
    await waitFor(() => new Set(scoredIds('pair')).size === want.size, 60_000, 'every reading scored');
    expect(new Set(scoredIds('pair'))).toEqual(want);
    // B replayed A's uncommitted batch.
    expect(scoredIds('pair').length).toBeGreaterThan(want.size);
    expect(before.a.length).toBeGreaterThan(0);
    expect(before.b.length).toBeGreaterThan(0);
    console.info(`pair: partitions before ${JSON.stringify(before)}, ${want.size} readings, ${scoredIds('pair').length} scores`);
  });
});
