/**
 * Payload encoders for the MQTT contract (`plant/<site>/<line>/<machine>/<sensor>`, JSON
 * `{"ts","value","unit?"}` or an array of those) and for Sparkplug B (group = site, edge node = line,
 * device = machine, metric = sensor), via the Eclipse Tahu `sparkplug-payload` package.
 * JSON is built by string concatenation: it is the hot path of load mode and the shape is fixed.
 */
import { createRequire } from 'node:module';
import type { Emission, MachineModel } from './model.ts';

export interface OutMessage {
  topic: string;
  payload: string | Uint8Array;
  /** Readings carried (0 for malformed payloads and Sparkplug session messages). */
  readings: number;
}

export interface JsonOptions {
  topicPrefix: string;
  includeUnit: boolean;
}

// Per-sensor strings computed once: the topic and the `,"unit":"…"` suffix (hot path of load mode).
const topicCache = new WeakMap<object, { prefix: string; topic: string; unit: string }>();
function sensorStrings(e: Emission, o: JsonOptions): { topic: string; unit: string } {
  let c = topicCache.get(e.sensor);
  if (!c || c.prefix !== o.topicPrefix) {
    c = { prefix: o.topicPrefix, topic: `${o.topicPrefix}/${e.sensor.path}`, unit: `,"unit":${JSON.stringify(e.sensor.unit)}` };
    topicCache.set(e.sensor, c);
  }
  return c;
}

export function readingJson(e: Emission, o: JsonOptions): string {
  return '{"ts":' + e.ts + ',"value":' + e.value + (o.includeUnit ? sensorStrings(e, o).unit : '') + '}';
}

export function topicOf(e: Emission, o: JsonOptions): string {
  return sensorStrings(e, o).topic;
}

/** One message per reading, in send order. */
export function encodeJson(emissions: Emission[], o: JsonOptions, out: OutMessage[] = []): OutMessage[] {
  for (const e of emissions) {
    if (e.malformed !== undefined) out.push({ topic: topicOf(e, o), payload: e.malformed, readings: 0 });
    else out.push({ topic: topicOf(e, o), payload: readingJson(e, o), readings: 1 });
  }
  return out;
}

/**
 * JSON arrays: one message per sensor with its readings of this batch, in order, at most `batchMax`
 * each. A malformed emission is sent on its own, after the sensor's readings before it.
 */
export function encodeBatch(emissions: Emission[], o: JsonOptions & { batchMax: number }, out: OutMessage[] = []): OutMessage[] {
  // Strings are appended in place (V8 ropes) rather than collected and joined: less garbage.
  const open = new Map<object, { topic: string; unit: string; body: string; count: number }>();
  const flush = (g: { topic: string; body: string; count: number }) => {
    if (g.count === 0) return;
    out.push({ topic: g.topic, payload: g.body + ']', readings: g.count });
    g.body = '';
    g.count = 0;
  };
  for (const e of emissions) {
    let g = open.get(e.sensor);
    if (!g) {
      const ss = sensorStrings(e, o);
      g = { topic: ss.topic, unit: o.includeUnit ? ss.unit : '', body: '', count: 0 };
      open.set(e.sensor, g);
    }
    if (e.malformed !== undefined) {
      flush(g);
      out.push({ topic: g.topic, payload: e.malformed, readings: 0 });
      continue;
    }
    g.body += (g.count === 0 ? '[{"ts":' : ',{"ts":') + e.ts + ',"value":' + e.value + g.unit + '}';
    if (++g.count >= o.batchMax) flush(g);
  }
  for (const g of open.values()) flush(g);
  return out;
}

// --- Sparkplug B -----------------------------------------------------------------------------

type SparkplugLib = NonNullable<ReturnType<typeof import('sparkplug-payload').get>>;
export type SparkplugPayload = ReturnType<SparkplugLib['decodePayload']>;
type SparkplugMetric = NonNullable<SparkplugPayload['metrics']>[number];

// CommonJS package whose typings declare `get`; load it the CommonJS way.
const require = createRequire(import.meta.url);
const sparkplugLib = (require('sparkplug-payload') as { get(ns: string): SparkplugLib | null }).get('spBv1.0');
if (!sparkplugLib) throw new Error('sparkplug-payload does not know namespace spBv1.0');
const sp: SparkplugLib = sparkplugLib;

export const SPARKPLUG_NAMESPACE = 'spBv1.0';

export function encodeSparkplug(payload: SparkplugPayload): Uint8Array {
  return sp.encodePayload(payload);
}
export function decodeSparkplug(bytes: Uint8Array): SparkplugPayload {
  return sp.decodePayload(bytes);
}

/**
 * One Sparkplug edge node (a line) and its devices (machines). Keeps bdSeq (per session) and seq
 * (0–255, shared by the node's NBIRTH/DBIRTH/DDATA messages, as the spec requires).
 */
export class SparkplugNode {
  readonly group: string;
  readonly node: string;
  private seq = 0;
  private bdSeq: number;
  private readonly devices: MachineModel[];

  constructor(group: string, node: string, devices: MachineModel[], bdSeq = 0) {
    this.group = group;
    this.node = node;
    this.devices = devices;
    this.bdSeq = bdSeq;
  }

  topic(type: 'NBIRTH' | 'NDEATH' | 'DBIRTH' | 'DDATA' | 'NCMD', device?: string): string {
    return `${SPARKPLUG_NAMESPACE}/${this.group}/${type}/${this.node}${device ? `/${device}` : ''}`;
  }

  private nextSeq(): number {
    const s = this.seq;
    this.seq = (this.seq + 1) % 256;
    return s;
  }

  /** The NDEATH will message of the current session. */
  death(): OutMessage {
    return {
      topic: this.topic('NDEATH'),
      payload: encodeSparkplug({ timestamp: Date.now(), metrics: [{ name: 'bdSeq', type: 'UInt64', value: this.bdSeq }] }),
      readings: 0,
    };
  }

  /** NBIRTH plus a DBIRTH per device; starts a new seq run. `values` gives each metric's current value. */
  birth(nowMs: number, values: (m: MachineModel, sensor: string) => number): OutMessage[] {
    this.seq = 0;
    const out: OutMessage[] = [
      {
        topic: this.topic('NBIRTH'),
        payload: encodeSparkplug({
          timestamp: nowMs,
          seq: this.nextSeq(),
          metrics: [
            { name: 'bdSeq', type: 'UInt64', value: this.bdSeq },
            { name: 'Node Control/Rebirth', type: 'Boolean', value: false },
          ],
        }),
        readings: 0,
      },
    ];
    for (const m of this.devices) {
      out.push({
        topic: this.topic('DBIRTH', m.id),
        payload: encodeSparkplug({
          timestamp: nowMs,
          seq: this.nextSeq(),
          metrics: m.sensors.map(
            (s): SparkplugMetric => ({
              name: s.id,
              type: 'Double',
              value: values(m, s.id),
              timestamp: nowMs,
              properties: { engUnit: { type: 'String', value: s.unit } },
            }),
          ),
        }),
        readings: 0,
      });
    }
    return out;
  }

  /** A new session after a reconnect: the next NDEATH/NBIRTH carry bdSeq + 1. */
  nextSession(): void {
    this.bdSeq = (this.bdSeq + 1) % 256;
  }

  /** DDATA messages of one device: metrics by name with their own timestamps, ≤ batchMax each. */
  data(m: MachineModel, emissions: Emission[], batchMax: number, out: OutMessage[] = []): OutMessage[] {
    let metrics: SparkplugMetric[] = [];
    const flush = (ts: number) => {
      if (metrics.length === 0) return;
      out.push({ topic: this.topic('DDATA', m.id), payload: encodeSparkplug({ timestamp: ts, seq: this.nextSeq(), metrics }), readings: metrics.length });
      metrics = [];
    };
    let last = 0;
    for (const e of emissions) {
      last = e.emitAt;
      if (e.malformed !== undefined) {
        flush(e.emitAt);
        // A broken device sends bytes that are not a Sparkplug payload at all.
        out.push({ topic: this.topic('DDATA', m.id), payload: Buffer.from(e.malformed, 'latin1'), readings: 0 });
        continue;
      }
      metrics.push({ name: e.sensor.id, type: 'Double', value: e.value, timestamp: e.ts });
      if (metrics.length >= batchMax) flush(e.emitAt);
    }
    flush(last);
    return out;
  }
}
