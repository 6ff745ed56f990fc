/**
 * Where a pipeline's scored batches become acknowledged Kafka records. Two ways, one contract:
 *
 * - `InlineScoreOutput`: the pipeline's thread encodes the score records (score-encoder.ts) and
 *   sends them with a kafkajs producer (`producerThread: main`, and test fakes).
 * - `ThreadScoreOutput`: the pipeline's thread only packs the score columns into one buffer
 *   (score-rows.ts); the producer thread (common/kafka-producer-thread.ts, with the extension in
 *   score-output-worker.ts) encodes them with the same encoder and sends them. Encoding was the
 *   largest block of the main thread after the detector (~19 % at 100k streams and 50k readings/s).
 *
 * Either way `send` resolves once every record of the batch (scores and the extra records, dead
 * letters) was acknowledged, and may be called again after a failure (the pipeline retries).
 * Records are the same bytes either way (score-output.test.ts).
 *
 * The thread knows series by id: each `ThreadScoreOutput` is a channel with its own id space (ids
 * of its pipeline's interner) and defines a series to the thread the first time a row of it goes
 * out. When the thread restarted (a new generation), after a failed send, or past MAX_MIRRORED
 * series, the channel starts afresh and defines again what it sends.
 */
import { CompressionTypes, type BatchProducer } from '../../common/kafka.ts';
import { ThreadedProducer } from '../../common/kafka-producer-thread.ts';
import type { MachineScore } from '../../common/messages.ts';
import type { ReadingBatch, SeriesEntry } from '../../common/reading-batch.ts';
import type { SensorScoreColumns } from './score-columns.ts';
import { ScoreEncoder, type OutputMessage } from './score-encoder.ts';
import { packScoreRows } from './score-rows.ts';

/** The extension module the producer thread loads for `ThreadScoreOutput`. */
export const SCORE_OUTPUT_EXTENSION = new URL('./score-output-worker.ts', import.meta.url);

export interface ScoreOutputOptions {
  topic: string;
  maxScoresPerRecord: number;
  /** Headers on every score record (re-scoring tags its job). */
  headers?: Record<string, string>;
  compression: 'none' | 'gzip';
}

export interface TopicMessages {
  topic: string;
  messages: OutputMessage[];
}

/** A scored batch ready to send: the columns and input may be reused once `prepare` returned. */
export interface PreparedScores {
  /** No sensor and no machine score: nothing to produce for the scores. */
  readonly empty: boolean;
}

export interface ScoreOutput {
  prepare(cols: SensorScoreColumns, input: ReadingBatch, machine: readonly MachineScore[], modelVersion: string): PreparedScores;
  /** Produces the scores and `extra` in one request (acks from all in-sync replicas). */
  send(scores: PreparedScores, extra: TopicMessages[]): Promise<void>;
  /** The scores were acknowledged: what they held may be reused. */
  release(scores: PreparedScores): void;
  /** The pipeline stopped: frees what the output keeps (in the thread, its series). */
  close(): void;
}

const compressionOf = (c: ScoreOutputOptions['compression']) => (c === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None);

interface InlinePrepared extends PreparedScores {
  messages: OutputMessage[];
}

export class InlineScoreOutput implements ScoreOutput {
  private readonly encoder = new ScoreEncoder();
  constructor(
    private readonly producer: BatchProducer,
    private readonly opts: ScoreOutputOptions,
  ) {}

  prepare(cols: SensorScoreColumns, input: ReadingBatch, machine: readonly MachineScore[], modelVersion: string): InlinePrepared {
    const messages = this.encoder.encode(cols, input, machine, modelVersion, this.opts.maxScoresPerRecord, this.opts.headers);
    return { messages, empty: messages.length === 0 };
  }

  async send(scores: PreparedScores, extra: TopicMessages[]): Promise<void> {
    const { messages } = scores as InlinePrepared;
    const topicMessages = messages.length > 0 ? [{ topic: this.opts.topic, messages }, ...extra] : extra;
    if (topicMessages.length === 0) return;
    await this.producer.sendBatch({ acks: -1, topicMessages, compression: compressionOf(this.opts.compression) });
  }

  release(scores: PreparedScores): void {
    this.encoder.release((scores as InlinePrepared).messages);
  }

  close(): void {}
}

/** What goes to the producer thread's extension (score-output-worker.ts). */
export type ScoreThreadPayload =
  | {
      kind: 'scores';
      channel: number;
      /** Forget the channel's series before defining `newSeries`. */
      reset: boolean;
      newSeries: [id: number, site: string, line: string, machine: string, sensor: string][];
      n: number;
      rows: ArrayBuffer;
      machine: readonly MachineScore[];
      modelVersion: string;
      topic: string;
      maxScoresPerRecord: number;
      headers?: Record<string, string>;
      compression: number;
      extra: TopicMessages[];
    }
  | { kind: 'close'; channel: number };

interface ThreadPrepared extends PreparedScores {
  n: number;
  rows: ArrayBuffer;
  series: SeriesEntry[];
  machine: readonly MachineScore[];
  modelVersion: string;
}

/** Series one channel keeps defined in the thread before it starts afresh (bounded memory). */
const MAX_MIRRORED = 1 << 18;
let nextChannel = 1;

export class ThreadScoreOutput implements ScoreOutput {
  private readonly channel = nextChannel++;
  /** Series ids defined in the thread in generation `mirroredIn`. */
  private readonly mirrored = new Set<number>();
  private mirroredIn = -1;

  constructor(
    private readonly thread: ThreadedProducer,
    private readonly opts: ScoreOutputOptions,
  ) {}

  prepare(cols: SensorScoreColumns, input: ReadingBatch, machine: readonly MachineScore[], modelVersion: string): ThreadPrepared {
    const { rows, series } = packScoreRows(cols, input);
    // Machine scores are few (one per machine per batch) and cross as they are.
    return { n: cols.n, rows, series, machine: machine.slice(), modelVersion, empty: cols.n === 0 && machine.length === 0 };
  }

  async send(scores: PreparedScores, extra: TopicMessages[]): Promise<void> {
    const p = scores as ThreadPrepared;
    if (p.empty && extra.length === 0) return;
    try {
      await this.thread.call((generation) => {
        let reset = false;
        if (generation !== this.mirroredIn || this.mirrored.size + p.n > MAX_MIRRORED) {
          this.mirrored.clear();
          this.mirroredIn = generation;
          reset = true;
        }
        const newSeries: [number, string, string, string, string][] = [];
        for (const s of p.series) {
          if (this.mirrored.has(s.id)) continue;
          this.mirrored.add(s.id);
          newSeries.push([s.id, s.site, s.line, s.machine, s.sensor]);
        }
        const payload: ScoreThreadPayload = {
          kind: 'scores',
          channel: this.channel,
          reset,
          newSeries,
          n: p.n,
          // Copied, not transferred: a retry sends the same rows again.
          rows: p.rows,
          machine: p.machine,
          modelVersion: p.modelVersion,
          topic: this.opts.topic,
          maxScoresPerRecord: this.opts.maxScoresPerRecord,
          ...(this.opts.headers ? { headers: this.opts.headers } : {}),
          compression: compressionOf(this.opts.compression),
          extra,
        };
        return { payload };
      });
    } catch (err) {
      // Whether the thread kept this call's series is unknown: define everything again next time.
      this.mirroredIn = -1;
      throw err;
    }
  }

  release(): void {}

  close(): void {
    // Nothing to free when the thread never got this channel's series (or is gone with them).
    if (this.mirroredIn < 0 || !this.thread.running) return;
    this.thread.call(() => ({ payload: { kind: 'close', channel: this.channel } satisfies ScoreThreadPayload })).catch(() => undefined);
  }
}

/** The output for a pipeline's producer: in the producer thread when it carries the score extension. */
export function createScoreOutput(producer: BatchProducer, opts: ScoreOutputOptions): ScoreOutput {
  if (producer instanceof ThreadedProducer && producer.extension?.href === SCORE_OUTPUT_EXTENSION.href) return new ThreadScoreOutput(producer, opts);
  return new InlineScoreOutput(producer, opts);
}
