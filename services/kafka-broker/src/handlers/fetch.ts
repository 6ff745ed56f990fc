/**
 * Fetch with long-poll: answer at once when at least `min_bytes` are available (or on any error),
 * else hold the request until an append to one of its partitions makes enough data available or
 * `max_wait_ms` passes. Batches are whole and start with the one containing the fetch offset;
 * the first batch of the response comes whole even above the byte limits (KIP-74).
 */
import { ErrorCode } from '../protocol/errors.ts';
import type { FetchPartitionResponse, FetchRequest, FetchResponse } from '../protocol/fetch/index.ts';
import type { BrokerCore, RequestContext } from './context.ts';

const EMPTY = Buffer.alloc(0);

interface Built {
  response: FetchResponse;
  bytes: number;
  error: boolean;
}

function build(b: BrokerCore, req: FetchRequest): Built {
  let total = 0;
  let error = false;
  const maxBytes = req.maxBytes > 0 ? req.maxBytes : 0x7fffffff;
  const responses = req.topics.map((t) => {
    const topic = b.logs.get(t.topic);
    return {
      topic: t.topic,
      partitions: t.partitions.map((p): FetchPartitionResponse => {
        const res: FetchPartitionResponse = {
          partitionIndex: p.partition,
          errorCode: 0,
          highWatermark: -1,
          lastStableOffset: -1,
          logStartOffset: -1,
          abortedTransactions: [],
          preferredReadReplica: -1,
          records: EMPTY,
        };
        const log = topic?.partitions[p.partition];
        if (!log) {
          res.errorCode = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION;
        } else if (p.fetchOffset < log.logStartOffset || p.fetchOffset > log.nextOffset) {
          res.errorCode = ErrorCode.OFFSET_OUT_OF_RANGE;
          res.highWatermark = res.lastStableOffset = log.nextOffset;
          res.logStartOffset = log.logStartOffset;
        } else {
          const room = maxBytes - total;
          const limit = Math.min(p.partitionMaxBytes, room);
          const r = log.read(p.fetchOffset, limit, true);
          res.highWatermark = res.lastStableOffset = r.highWatermark;
          res.logStartOffset = r.logStartOffset;
          // KIP-74: an oversized first batch is sent whole, but only as the response's first data.
          if (r.data && (total === 0 || r.data.length <= room)) {
            res.records = r.data;
            total += r.data.length;
          }
        }
        if (res.errorCode !== 0) {
          error = true;
          b.countError('Fetch', res.errorCode);
        }
        return res;
      }),
    };
  });
  return { response: { throttleTimeMs: 0, errorCode: 0, sessionId: 0, responses }, bytes: total, error };
}

export function handleFetch(b: BrokerCore, req: FetchRequest, ctx: RequestContext): FetchResponse | Promise<FetchResponse | null> {
  const first = build(b, req);
  if (first.error || first.bytes >= Math.max(req.minBytes, 1) || req.maxWaitMs <= 0) return done(b, first);
  const wanted = new Set<string>();
  for (const t of req.topics) for (const p of t.partitions) wanted.add(`${t.topic}\0${p.partition}`);
  return new Promise<FetchResponse | null>((resolve) => {
    let finished = false;
    const finish = (built: Built | null): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      unsubscribe();
      ctx.closed.removeEventListener('abort', onClose);
      resolve(built ? done(b, built) : null);
    };
    const onClose = (): void => finish(null);
    const timer = setTimeout(() => finish(build(b, req)), req.maxWaitMs);
    const unsubscribe = b.logs.onAppend((topic, partition) => {
      if (!wanted.has(`${topic}\0${partition}`)) return;
      const built = build(b, req);
      if (built.error || built.bytes >= req.minBytes) finish(built);
    });
    ctx.closed.addEventListener('abort', onClose);
  });
}

function done(b: BrokerCore, built: Built): FetchResponse {
  if (built.bytes > 0) b.metrics.fetchedBytes.inc(built.bytes);
  return built.response;
}
