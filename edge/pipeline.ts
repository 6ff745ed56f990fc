/**
 * One MQTT message in, Kafka records out: topic mapping, decoding, validation, dead letters.
 * Pure apart from the Sparkplug session state; no I/O (rebirth commands are returned, the caller
 * publishes them).
 */
import { TOPICS } from '../common/topics.ts';
import type { DeadLetter, Reading } from '../common/messages.ts';
import type { EdgeConfig } from './config.schema.ts';
import { compileRule, matchTopic, renderKey, type CompiledRule, type TopicMatch } from './mapping.ts';
import { decodePlain, type Decoded, type Reject } from './decode.ts';
import { parseSparkplugTopic, SparkplugSessions } from './sparkplug.ts';

export const COMPONENT = 'edge';
/** Distinct MQTT topics remembered by the mapping cache. */
const TOPIC_CACHE_SIZE = 10_000;
/** Raw bytes kept in one dead letter (base64 grows them by a third). */
const DEAD_LETTER_MAX_RAW = 384 * 1024;

export interface InboundMessage {
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  clientId: string;
  userProperties?: Record<string, string | string[]>;
  receivedAt: number;
}

/** A Kafka record ready to send; `value` is the JSON text. */
export interface OutRecord {
  topic: string;
  key: string;
  value: string;
  headers?: Record<string, string>;
}

export interface IngestResult {
  records: OutRecord[];
  readings: number;
  rejects: Reject[];
  /** Matched rule pattern, or null when no rule matched (the message is ignored). */
  rule: string | null;
  commands: { topic: string; payload: Buffer; reason: string }[];
  sparkplugEvents: string[];
}

export class Ingestor {
  private readonly rules: CompiledRule[];
  /** Topic → mapping result; devices publish to a handful of topics each, over and over. */
  private readonly topicCache = new Map<string, { match: TopicMatch | null; compiled: CompiledRule | null }>();
  readonly sparkplug: SparkplugSessions;

  constructor(private readonly cfg: EdgeConfig) {
    this.rules = cfg.mapping.map(compileRule);
    this.sparkplug = new SparkplugSessions(cfg.sparkplug);
  }

  ingest(msg: InboundMessage): IngestResult {
    const result: IngestResult = { records: [], readings: 0, rejects: [], rule: null, commands: [], sparkplugEvents: [] };
    let cached = this.topicCache.get(msg.topic);
    if (!cached) {
      const m = matchTopic(this.rules, msg.topic);
      cached = { match: m, compiled: m ? (this.rules.find((r) => r.rule === m.rule) as CompiledRule) : null };
      // Bounded: a flood of distinct topics costs a re-match, never unbounded memory.
      if (this.topicCache.size >= TOPIC_CACHE_SIZE) this.topicCache.clear();
      this.topicCache.set(msg.topic, cached);
    }
    const { match, compiled } = cached;
    if (!match || !compiled) return result;
    result.rule = match.rule.pattern;
    const v = this.cfg.validation;
    const opts = { receivedAt: msg.receivedAt, maxPastMs: v.maxPastMs, maxFutureMs: v.maxFutureMs, maxBatchReadings: v.maxBatchReadings };

    let decoded: Decoded;
    const sp = match.rule.decoder === 'sparkplug' ? parseSparkplugTopic(msg.topic) : null;
    if (msg.payload.length > v.maxPayloadBytes) {
      decoded = { readings: [], rejects: [{ code: 'PAYLOAD_OVERSIZE', reason: `payload of ${msg.payload.length} bytes exceeds maxPayloadBytes ${v.maxPayloadBytes}`, raw: msg.payload.subarray(0, v.maxPayloadBytes) }] };
    } else if (match.rule.decoder === 'sparkplug') {
      if (!sp) {
        decoded = { readings: [], rejects: [{ code: 'SPARKPLUG_NOT_DECODABLE', reason: `topic ${msg.topic} is not a Sparkplug B topic`, raw: msg.payload }] };
      } else {
        const r = this.sparkplug.handle(sp, msg.payload, opts);
        decoded = r;
        result.sparkplugEvents = r.events;
        if (r.rebirth) result.commands.push(r.rebirth);
      }
    } else {
      const vars = match.vars;
      decoded = decodePlain(msg.payload, { site: vars.site ?? '', line: vars.line ?? '', machine: vars.machine ?? '', sensor: vars.sensor ?? '' }, match.rule.decoder, opts);
    }

    const headers = this.cfg.headers ? this.headersFor(msg) : undefined;
    if (decoded.readings.length > 0) {
      // One record per machine: a Reading, or an array for a batched payload. Almost always all
      // readings of a message are one machine's (the topic's, the Sparkplug device's); a Sparkplug
      // NDEATH covers the node and all its devices.
      const list = decoded.readings;
      const first = list[0];
      const single = list.every((r) => r.machine === first.machine && r.line === first.line && r.site === first.site);
      const groups = single ? [list] : groupByMachine(list);
      for (const group of groups) {
        const head = group[0];
        const key = renderKey(compiled, { ...match.vars, site: head.site, line: head.line, machine: head.machine, sensor: head.sensor });
        if (group.length === 1 && !isBatchPayload(msg.payload)) {
          result.records.push({ topic: match.rule.kafkaTopic, key, value: JSON.stringify(head), headers });
        } else {
          // Kafka refuses records above message.max.bytes (1 MB by default) and a refused record would
          // block the ordered pipeline: big batches become several consecutive records, same key.
          for (const value of splitArrayJson(group, this.cfg.kafka.maxRecordBytes)) result.records.push({ topic: match.rule.kafkaTopic, key, value, headers });
        }
      }
      result.readings = list.length;
    }
    for (const rej of decoded.rejects) result.records.push(deadLetterRecord(msg, rej, headers));
    result.rejects = decoded.rejects;
    return result;
  }

  private headersFor(msg: InboundMessage): Record<string, string> {
    const h: Record<string, string> = { 'mqtt.topic': msg.topic, 'mqtt.client_id': msg.clientId, 'mqtt.qos': String(msg.qos) };
    if (msg.userProperties) {
      for (const [k, val] of Object.entries(msg.userProperties)) h[`mqtt.user.${k}`] = Array.isArray(val) ? val.join(',') : String(val);
    }
    return h;
  }
}

function groupByMachine(readings: Reading[]): Reading[][] {
  const m = new Map<string, Reading[]>();
  for (const r of readings) {
    const k = `${r.site}/${r.line}/${r.machine}`;
    let g = m.get(k);
    if (!g) m.set(k, (g = []));
    g.push(r);
  }
  return [...m.values()];
}

/** JSON arrays of `items`, in order, each at most `maxBytes` long (a single item may exceed it). */
export function splitArrayJson(items: unknown[], maxBytes: number): string[] {
  const whole = JSON.stringify(items);
  if (whole.length <= maxBytes || items.length === 1) return [whole];
  const mid = Math.ceil(items.length / 2);
  return [...splitArrayJson(items.slice(0, mid), maxBytes), ...splitArrayJson(items.slice(mid), maxBytes)];
}

/** A JSON array payload stays an array record even with one element: consumers see the device's shape. */
function isBatchPayload(p: Buffer): boolean {
  for (let i = 0; i < p.length; i++) {
    const c = p[i];
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) continue;
    return c === 0x5b; // '['
  }
  return false;
}

export function deadLetterRecord(msg: InboundMessage, rej: Reject, headers?: Record<string, string>): OutRecord {
  const source: Record<string, string | number> = { mqttTopic: msg.topic, clientId: msg.clientId, qos: msg.qos };
  if (rej.index !== undefined) source.index = rej.index;
  // Keeps the dead letter itself under Kafka's default 1 MB record limit.
  const raw = rej.raw.length > DEAD_LETTER_MAX_RAW ? rej.raw.subarray(0, DEAD_LETTER_MAX_RAW) : rej.raw;
  const dl: DeadLetter = {
    code: rej.code,
    reason: raw === rej.raw ? rej.reason : `${rej.reason} (raw bytes truncated to ${DEAD_LETTER_MAX_RAW} of ${rej.raw.length})`,
    component: COMPONENT,
    source,
    rawBase64: raw.toString('base64'),
    receivedAt: msg.receivedAt,
  };
  return { topic: TOPICS.deadLetter, key: msg.topic, value: JSON.stringify(dl), headers };
}
