/**
 * The producer thread's extension for `ThreadScoreOutput` (score-output.ts): keeps each channel's
 * series by id and a score encoder, encodes a packed batch into score records and sends them with
 * its extra records in one request. Loaded by common/kafka-producer-thread-worker.ts.
 */
import type { ProducerExtensionContext, ProducerExtensionHandler } from '../../common/kafka-producer-thread.ts';
import { IdentifierStrings, SeriesEntry } from '../../common/reading-batch.ts';
import { ScoreEncoder } from './score-encoder.ts';
import type { ScoreThreadPayload, TopicMessages } from './score-output.ts';
import { unpackScoreRows } from './score-rows.ts';

interface Channel {
  series: Map<number, SeriesEntry>;
  /** The series' identifiers arrive as new strings with each definition: one copy of each is kept. */
  ids: IdentifierStrings;
  encoder: ScoreEncoder;
}

export function createProducerExtension({ producer }: ProducerExtensionContext): ProducerExtensionHandler {
  const channels = new Map<number, Channel>();
  return async (payload: unknown) => {
    const job = payload as ScoreThreadPayload;
    if (job.kind === 'close') {
      channels.delete(job.channel);
      return;
    }
    let ch = channels.get(job.channel);
    if (ch === undefined) channels.set(job.channel, (ch = { series: new Map(), ids: new IdentifierStrings(), encoder: new ScoreEncoder() }));
    if (job.reset) {
      ch.series.clear();
      ch.ids.clear();
    }
    const ids = ch.ids;
    for (const [id, site, line, machine, sensor] of job.newSeries) ch.series.set(id, new SeriesEntry(id, ids.of(site), ids.of(line), ids.of(machine), ids.of(sensor)));
    const { cols, points } = unpackScoreRows(job.rows, job.n, ch.series);
    const messages = ch.encoder.encode(cols, points, job.machine, job.modelVersion, job.maxScoresPerRecord, job.headers);
    const topicMessages: TopicMessages[] = messages.length > 0 ? [{ topic: job.topic, messages }, ...job.extra] : job.extra;
    if (topicMessages.length === 0) return;
    // Sent before the first await: calls reach the wire in the order they came.
    await producer.sendBatch({ acks: -1, topicMessages, compression: job.compression });
    ch.encoder.release(messages);
  };
}
