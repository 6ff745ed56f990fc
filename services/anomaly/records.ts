/**
 * Kafka records in and out of the anomaly service, as pure functions: readings records are decoded
 * and validated (bad ones become dead letters, never exceptions), scores are grouped into one
 * record per machine.
 */
import { Reading as ReadingSchema, describeZodError, type DeadLetter, type Reading, type SensorScore, type MachineScore } from '../../common/messages.ts';
import { z } from 'zod';
import { machineKey } from '../../common/topics.ts';

export const COMPONENT = 'anomaly';

/** The fields of a consumed Kafka message the service uses (kafkajs `KafkaMessage` fits). */
export interface InputMessage {
  offset: string;
  timestamp: string;
  key: Buffer | null;
  value: Buffer | null;
}

export interface OutputMessage {
  key: string;
  value: string;
  headers?: Record<string, string>;
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
  readings: Reading[];
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

/** Decodes one partition's messages; appends to `out` so a caller can merge partitions cheaply. */
export function decodeMessages(topic: string, partition: number, messages: InputMessage[], now: number, out: DecodedBatch): void {
  for (const m of messages) {
    const source = { topic, partition, offset: m.offset };
    if (m.value === null || m.value.length === 0) {
      out.deadLetters.push(deadLetter('PAYLOAD_EMPTY', 'record has no value', source, m.value, now));
      continue;
    }
    let json: unknown;
    try {
      json = JSON.parse(m.value.toString('utf8'));
    } catch (err) {
      out.deadLetters.push(deadLetter('PAYLOAD_NOT_JSON', `value is not JSON: ${(err as Error).message}`, source, m.value, now));
      continue;
    }
    if (isPlainValidReading(json)) {
      out.readings.push(json);
      continue;
    }
    if (Array.isArray(json) && json.length > 0 && json.every(isPlainValidReading)) {
      for (const r of json) out.readings.push(r);
      continue;
    }
    // Parsed by shape rather than with the ReadingRecord union, so the reason names the bad field.
    const parsed = Array.isArray(json) ? ReadingArray.safeParse(json) : ReadingSchema.safeParse(json);
    if (!parsed.success) {
      out.deadLetters.push(deadLetter('READING_INVALID', describeZodError(parsed.error), source, m.value, now));
      continue;
    }
    if (Array.isArray(parsed.data)) for (const r of parsed.data) out.readings.push(r);
    else out.readings.push(parsed.data);
  }
}

/**
 * One record per machine (key `site/line/machine`) holding that machine's sensor and machine scores
 * in the order the detector returned them, split every `maxPerRecord` scores.
 */
export function encodeScores(
  sensor: SensorScore[],
  machine: MachineScore[],
  maxPerRecord: number,
  headers?: Record<string, string>,
): OutputMessage[] {
  const byMachine = new Map<string, (SensorScore | MachineScore)[]>();
  const add = (s: SensorScore | MachineScore) => {
    const key = machineKey(s);
    let list = byMachine.get(key);
    if (!list) byMachine.set(key, (list = []));
    list.push(s);
  };
  for (const s of sensor) add(s);
  for (const s of machine) add(s);
  const out: OutputMessage[] = [];
  for (const [key, scores] of byMachine) {
    for (let i = 0; i < scores.length; i += maxPerRecord) {
      const msg: OutputMessage = { key, value: JSON.stringify(scores.slice(i, i + maxPerRecord)) };
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
