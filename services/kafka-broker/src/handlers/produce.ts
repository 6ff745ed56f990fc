/**
 * Produce: validate each batch (magic 2, length, CRC-32C), assign offsets, append verbatim.
 * acks=0 gets no response at all (the client expects none). Idempotent producers (producerId >= 0)
 * get per-partition sequence checks: a retried batch is answered with its original offset.
 */
import { ErrorCode } from '../protocol/errors.ts';
import { parseProducedBatches } from '../protocol/recordBatch.ts';
import type { ProducePartitionResponse, ProduceRequest, ProduceResponse } from '../protocol/produce/index.ts';
import type { PartitionLog } from '../log/partitionLog.ts';
import type { BrokerCore, RequestContext } from './context.ts';

const MAX_RECENT = 5;

export function handleProduce(b: BrokerCore, req: ProduceRequest, _ctx: RequestContext): ProduceResponse | null {
  const acks = req.acks;
  const badAcks = acks !== 0 && acks !== 1 && acks !== -1;
  const responses = req.topicData.map((t) => {
    const topic = b.logs.get(t.name);
    return {
      name: t.name,
      partitionResponses: t.partitionData.map((pd): ProducePartitionResponse => {
        const res: ProducePartitionResponse = { index: pd.index, errorCode: 0, baseOffset: -1, logAppendTimeMs: -1, logStartOffset: -1 };
        const log = topic?.partitions[pd.index];
        if (badAcks) res.errorCode = ErrorCode.INVALID_REQUIRED_ACKS;
        else if (req.transactionalId !== null) res.errorCode = ErrorCode.INVALID_REQUEST;
        else if (!log) res.errorCode = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION;
        else if (!pd.records || pd.records.length === 0) res.errorCode = ErrorCode.CORRUPT_MESSAGE;
        else {
          try {
            appendRecords(b, t.name, pd.index, log, pd.records, res);
          } catch (err) {
            // Disk full, permissions, a deleted directory: the client gets a retriable error, the broker goes on.
            b.logger.error({ err, topic: t.name, partition: pd.index }, 'append failed');
            res.errorCode = ErrorCode.KAFKA_STORAGE_ERROR;
          }
        }
        if (res.errorCode !== 0) b.countError('Produce', res.errorCode);
        return res;
      }),
    };
  });
  if (acks === 0) return null;
  return { responses, throttleTimeMs: 0 };
}

function appendRecords(b: BrokerCore, topic: string, partition: number, log: PartitionLog, records: Buffer, res: ProducePartitionResponse): void {
  const parsed = parseProducedBatches(records);
  if ('error' in parsed) {
    b.logger.warn({ topic, partition, reason: parsed.reason }, 'produce rejected');
    res.errorCode = parsed.error;
    return;
  }
  let first = -1;
  let appended = false;
  for (const batch of parsed.batches) {
    let base: number;
    if (batch.producerId >= 0) {
      const states = b.producerStates(log);
      let st = states.get(batch.producerId);
      const firstSeq = batch.baseSequence;
      const lastSeq = firstSeq + batch.lastOffsetDelta;
      if (st && batch.producerEpoch < st.epoch) {
        res.errorCode = ErrorCode.INVALID_PRODUCER_EPOCH;
        return;
      }
      if (st && batch.producerEpoch === st.epoch) {
        const dup = st.recent.find((r) => r.firstSeq === firstSeq && r.lastSeq === lastSeq);
        if (dup) {
          if (first < 0) first = dup.baseOffset;
          continue;
        }
        if (firstSeq !== st.nextSeq) {
          res.errorCode = ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER;
          return;
        }
      }
      if (!st || batch.producerEpoch > st.epoch) {
        st = { epoch: batch.producerEpoch, nextSeq: 0, recent: [] };
        states.set(batch.producerId, st);
      }
      base = log.append(batch.buf, batch.lastOffsetDelta, batch.maxTimestamp);
      st.nextSeq = lastSeq + 1;
      st.recent.push({ firstSeq, lastSeq, baseOffset: base });
      if (st.recent.length > MAX_RECENT) st.recent.shift();
    } else base = log.append(batch.buf, batch.lastOffsetDelta, batch.maxTimestamp);
    appended = true;
    if (first < 0) first = base;
    b.metrics.producedRecords.inc(batch.recordsCount);
    b.metrics.producedBytes.inc(batch.buf.length);
  }
  if (appended) b.logs.appended(topic, partition, log);
  res.baseOffset = first;
  res.logStartOffset = log.logStartOffset;
}
