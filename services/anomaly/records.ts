/**
 * Kafka records in and out of the anomaly service: readings records are decoded into columns
 * (`ReadingBatch`) and validated (bad ones become dead letters, never exceptions); scores are
 * grouped into one record per machine (the hot path writes them from columns, score-encoder.ts;
 * `encodeScores` here is the object form it must equal).
 */
import { Reading as ReadingSchema, describeZodError, type DeadLetter, type Reading, type SensorScore, type MachineScore } from '../../common/messages.ts';
import { z } from 'zod';
import { machineKey } from '../../common/topics.ts';
import { ReadingDecoder, type ReadingBatch } from '../../common/reading-batch.ts';
import { roundModelOutput, type OutputMessage } from './score-encoder.ts';

export type { OutputMessage } from './score-encoder.ts';

export const COMPONENT = 'anomaly';

/** The fields of a consumed Kafka message the service uses (kafkajs `KafkaMessage` fits). */
export interface InputMessage {
  offset: string;
  timestamp: string;
  key: Buffer | null;
  value: Buffer | null;
}

const ReadingArray = z.array(ReadingSchema).min(1);

const IDENT = /^[A-Za-z0-9_.:-]{1,64}$/;
const READING_KEYS = new Set(['site', 'line', 'machine', 'sensor', 'ts', 'value', 'unit', 'quality', 'receivedAt']);
const isIdent = (v: unknown) => typeof v === 'string' && IDENT.test(v);
const isEpoch = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * A fast check for the common case, strictly narrower than the `Reading` schema (every object it
 * accepts, the schema accepts). Anything it does not accept goes through zod, which decides and
 * explains. Saves zod's copy of every reading on the hot path.
 */
export function isPlainValidReading(o: unknown): o is Reading {
  if (o === null || typeof o !== 'object' || Array.isArray(o)) return false;
  const r = o as Record<string, unknown>;
  for (const k in r) if (!READING_KEYS.has(k)) return false;
  return (
    isIdent(r.site) &&
    isIdent(r.line) &&
    isIdent(r.machine) &&
    isIdent(r.sensor) &&
    isEpoch(r.ts) &&
    isEpoch(r.receivedAt) &&
    typeof r.value === 'number' &&
    Number.isFinite(r.value) &&
    (r.unit === undefined || (typeof r.unit === 'string' && r.unit.length <= 32)) &&
    (r.quality === undefined || r.quality === 'good' || r.quality === 'uncertain' || r.quality === 'bad')
  );
}

export interface DecodedBatch {
  /** The readings of every accepted record, in record order. */
  batch: ReadingBatch;
  deadLetters: DeadLetter[];
}

export function deadLetter(
  code: string,
  reason: string,
  source: Record<string, string | number>,
  raw: Buffer | string | null,
  now: number,
): DeadLetter {
  const bytes = raw === null ? Buffer.alloc(0) : typeof raw === 'string' ? Buffer.from(raw, 'utf8') : raw;
  return { code, reason, component: COMPONENT, source, rawBase64: bytes.toString('base64'), receivedAt: now };
}

/**
 * Decodes messages `from`..`to` of one partition into `out.batch`. Records the byte decoder is sure
 * about go straight into columns; the rest through JSON.parse and the `Reading` schema, which
 * decides and names the bad field in the dead letter.
 */
export function decodeMessages(
  topic: string,
  partition: number,
  messages: readonly InputMessage[],
  now: number,
  out: DecodedBatch,
  decoder: ReadingDecoder = new ReadingDecoder(),
  from = 0,
  to = messages.length,
): void {
  const batch = out.batch;
  for (let i = from; i < to; i++) {
    const m = messages[i];
    const value = m.value;
    if (value !== null && value.length > 0 && decoder.decode(value, batch) >= 0) continue;
    const source = { topic, partition, offset: m.offset };
    if (value === null || value.length === 0) {
      out.deadLetters.push(deadLetter('PAYLOAD_EMPTY', 'record has no value', source, value, now));
      continue;
    }
    let json: unknown;
    try {
      json = JSON.parse(value.toString('utf8'));
    } catch (err) {
      out.deadLetters.push(deadLetter('PAYLOAD_NOT_JSON', `value is not JSON: ${(err as Error).message}`, source, value, now));
      continue;
    }
    if (isPlainValidReading(json)) {
      batch.pushReading(json, decoder.interner);
      continue;
    }
    if (Array.isArray(json) && json.length > 0 && json.every(isPlainValidReading)) {
      for (const r of json) batch.pushReading(r, decoder.interner);
      continue;
    }
    // Parsed by shape rather than with the ReadingRecord union, so the reason names the bad field.
    const parsed = Array.isArray(json) ? ReadingArray.safeParse(json) : ReadingSchema.safeParse(json);
    if (!parsed.success) {
      out.deadLetters.push(deadLetter('READING_INVALID', describeZodError(parsed.error), source, value, now));
      continue;
    }
    if (Array.isArray(parsed.data)) for (const r of parsed.data) batch.pushReading(r, decoder.interner);
    else batch.pushReading(parsed.data, decoder.interner);
  }
}

/** A sensor score with its model outputs at wire precision (see `MODEL_OUTPUT_DIGITS`). */
export function sensorScoreForWire(s: SensorScore): SensorScore {
  const w: SensorScore = { ...s, predicted: roundModelOutput(s.predicted), lower: roundModelOutput(s.lower), upper: roundModelOutput(s.upper), rawScore: roundModelOutput(s.rawScore) };
  if (s.forecast) w.forecast = { ...s.forecast, value: roundModelOutput(s.forecast.value), lower: roundModelOutput(s.forecast.lower), upper: roundModelOutput(s.forecast.upper) };
  return w;
}

/**
 * One record per machine (key `site/line/machine`) holding that machine's sensor and machine scores
 * in the order the detector returned them, split every `maxPerRecord` scores; sensor scores' model
 * outputs at wire precision. The object form `ScoreEncoder` must equal byte for byte.
 */
export function encodeScores(
  sensor: SensorScore[],
  machine: MachineScore[],
  maxPerRecord: number,
  headers?: Record<string, string>,
): (OutputMessage & { value: string })[] {
  const byMachine = new Map<string, (SensorScore | MachineScore)[]>();
  const add = (s: SensorScore | MachineScore) => {
    const key = machineKey(s);
    let list = byMachine.get(key);
    if (!list) byMachine.set(key, (list = []));
    list.push(s);
  };
  for (const s of sensor) add(sensorScoreForWire(s));
  for (const s of machine) add(s);
  const out: (OutputMessage & { value: string })[] = [];
  for (const [key, scores] of byMachine) {
    for (let i = 0; i < scores.length; i += maxPerRecord) {
      const msg: OutputMessage & { value: string } = { key, value: JSON.stringify(scores.slice(i, i + maxPerRecord)) };
      if (headers) msg.headers = headers;
      out.push(msg);
    }
  }
  return out;
}

export function encodeDeadLetters(letters: DeadLetter[]): OutputMessage[] {
  return letters.map((d) => ({ key: String(d.source.topic ?? COMPONENT), value: JSON.stringify(d) }));
}

/** `site/line/machine/sensor`: the key of a stream (and of a configured limit). */
export function streamKey(r: { site: string; line: string; machine: string; sensor: string }): string {
  return `${r.site}/${r.line}/${r.machine}/${r.sensor}`;
}
