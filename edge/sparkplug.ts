/**
 * Sparkplug B (spBv1.0) decoding and session state, protobuf via the Eclipse Tahu `sparkplug-payload`
 * package. Per edge node we track bdSeq (from NBIRTH/NDEATH), the message seq (0–255, shared by
 * the node and its devices), and the alias → metric tables defined by NBIRTH/DBIRTH.
 *
 * - NBIRTH/DBIRTH define metrics and aliases and carry current values (forwarded as readings).
 * - NDATA/DDATA carry values by alias (or name).
 * - NDEATH (matching bdSeq)/DDEATH mark the node's/device's metrics stale: their last values are
 *   forwarded once more with quality `bad` at the death time.
 * - A seq gap, a DATA before BIRTH or an unknown alias asks the node to rebirth: an NCMD with
 *   `Node Control/Rebirth = true`, at most once per `rebirthMinIntervalMs` per node.
 */
import { createRequire } from 'node:module';
import type { Reading } from '../common/messages.ts';
import { Identifier } from '../common/messages.ts';
import { checkTime, type Decoded, type DecodeOptions } from './decode.ts';

type SparkplugLib = NonNullable<ReturnType<typeof import('sparkplug-payload').get>>;
type UPayload = ReturnType<SparkplugLib['decodePayload']>;
type UMetric = NonNullable<UPayload['metrics']>[number];

// sparkplug-payload is CommonJS with `export declare function get`; load it the CommonJS way.
const require = createRequire(import.meta.url);
const spLib = (require('sparkplug-payload') as { get(ns: string): SparkplugLib | null }).get('spBv1.0');
if (!spLib) throw new Error('sparkplug-payload does not know namespace spBv1.0');
const sp: SparkplugLib = spLib;

export const SPARKPLUG_NAMESPACE = 'spBv1.0';
export const REBIRTH_METRIC = 'Node Control/Rebirth';

export type SparkplugMessageType = 'NBIRTH' | 'NDEATH' | 'DBIRTH' | 'DDEATH' | 'NDATA' | 'DDATA' | 'NCMD' | 'DCMD' | 'STATE';

interface MetricDef {
  name: string;
  type: string;
}

interface DeviceState {
  born: boolean;
  stale: boolean;
  aliases: Map<number, MetricDef>;
  /** Last value per sensor, re-sent with quality `bad` when the device or its node dies. */
  last: Map<string, number>;
}

interface NodeState {
  born: boolean;
  stale: boolean;
  bdSeq: number | null;
  lastSeq: number | null;
  aliases: Map<number, MetricDef>;
  devices: Map<string, DeviceState>;
  lastRebirthAt: number;
  last: Map<string, number>;
}

export interface SparkplugTopic {
  group: string;
  type: SparkplugMessageType;
  edgeNode: string;
  device?: string;
}

export interface SparkplugResult extends Decoded {
  /** Set when the node must be asked to rebirth (already rate-limited). */
  rebirth?: { topic: string; payload: Buffer; reason: string };
  /** What happened, for metrics: 'seq_gap', 'data_before_birth', 'unknown_alias', 'death', 'birth'. */
  events: string[];
}

export interface SparkplugOptions {
  rebirthMinIntervalMs: number;
  nodeMachine: string;
}

const CONTROL_PREFIXES = ['Node Control/', 'Device Control/', 'Properties/'];
const NUMERIC_TYPES = new Set(['Int8', 'Int16', 'Int32', 'Int64', 'UInt8', 'UInt16', 'UInt32', 'UInt64', 'Float', 'Double', 'Boolean']);

export function parseSparkplugTopic(topic: string): SparkplugTopic | null {
  const p = topic.split('/');
  if (p[0] !== SPARKPLUG_NAMESPACE || p.length < 4 || p.length > 5) return null;
  const type = p[2] as SparkplugMessageType;
  if (!['NBIRTH', 'NDEATH', 'DBIRTH', 'DDEATH', 'NDATA', 'DDATA', 'NCMD', 'DCMD', 'STATE'].includes(type)) return null;
  const isDevice = type[0] === 'D';
  if (isDevice !== (p.length === 5)) return null;
  return { group: p[1], type, edgeNode: p[3], device: p[4] };
}

function toNumber(v: unknown): number | null {
  if (typeof v === 'number') return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (v && typeof v === 'object' && typeof (v as { toNumber?: unknown }).toNumber === 'function') return (v as { toNumber(): number }).toNumber();
  return null;
}

/** Sparkplug metric names may contain `/` and spaces; our sensor ids may not. */
export function sensorIdFromMetric(name: string): string {
  return name.replace(/[^A-Za-z0-9_.:-]/g, '_').slice(0, 64);
}

export function encodeRebirth(now: number): Buffer {
  return Buffer.from(sp.encodePayload({ timestamp: now, metrics: [{ name: REBIRTH_METRIC, type: 'Boolean', value: true }] }));
}

/** Exposed for tests and simulators: encode a Sparkplug B payload. */
export function encodeSparkplug(payload: UPayload): Buffer {
  return Buffer.from(sp.encodePayload(payload));
}

export function decodeSparkplug(buf: Buffer): UPayload {
  return sp.decodePayload(buf);
}

export class SparkplugSessions {
  private readonly nodes = new Map<string, NodeState>();
  constructor(private readonly opts: SparkplugOptions) {}

  /** Counts for metrics/health: nodes known, born, stale. */
  summary(): { nodes: number; born: number; stale: number } {
    let born = 0;
    let stale = 0;
    for (const n of this.nodes.values()) {
      if (n.born) born++;
      if (n.stale) stale++;
    }
    return { nodes: this.nodes.size, born, stale };
  }

  isStale(group: string, edgeNode: string, device?: string): boolean | undefined {
    const n = this.nodes.get(`${group}/${edgeNode}`);
    if (!n) return undefined;
    if (device === undefined) return n.stale;
    return n.devices.get(device)?.stale;
  }

  handle(t: SparkplugTopic, payload: Buffer, opts: DecodeOptions): SparkplugResult {
    const res: SparkplugResult = { readings: [], rejects: [], events: [] };
    if (t.type === 'NCMD' || t.type === 'DCMD' || t.type === 'STATE') return res;
    let msg: UPayload;
    try {
      msg = sp.decodePayload(payload);
    } catch (err) {
      res.rejects.push({ code: 'SPARKPLUG_NOT_DECODABLE', reason: `not a Sparkplug B payload: ${(err as Error).message}`, raw: payload });
      return res;
    }
    const nodeKey = `${t.group}/${t.edgeNode}`;
    let node = this.nodes.get(nodeKey);
    const metrics = msg.metrics ?? [];
    const seq = toNumber(msg.seq);
    const payloadTs = toNumber(msg.timestamp);

    if (t.type === 'NBIRTH') {
      const bd = metrics.find((m) => m.name === 'bdSeq');
      node = { born: true, stale: false, bdSeq: bd ? toNumber(bd.value) : null, lastSeq: seq, aliases: new Map(), devices: new Map(), lastRebirthAt: node?.lastRebirthAt ?? 0, last: new Map() };
      this.nodes.set(nodeKey, node);
      defineAliases(node.aliases, metrics);
      res.events.push('birth');
      this.emitMetrics(res, t, metrics, node.aliases, payloadTs, payload, opts, node.last);
      return res;
    }
    if (t.type === 'NDEATH') {
      const bd = metrics.find((m) => m.name === 'bdSeq');
      const bdSeq = bd ? toNumber(bd.value) : null;
      // A death whose bdSeq belongs to an older session must not kill the current one.
      if (node && (bdSeq === null || node.bdSeq === null || bdSeq === node.bdSeq)) {
        const at = payloadTs ?? opts.receivedAt;
        node.born = false;
        node.stale = true;
        this.emitStale(res, t.group, t.edgeNode, this.opts.nodeMachine, node.last, at, opts);
        for (const [id, d] of node.devices) {
          d.born = false;
          d.stale = true;
          this.emitStale(res, t.group, t.edgeNode, id, d.last, at, opts);
        }
        res.events.push('death');
      }
      return res;
    }
    // Everything else is sequenced and needs a born node.
    if (!node || !node.born) {
      res.events.push('data_before_birth');
      res.rejects.push({ code: 'SPARKPLUG_BEFORE_BIRTH', reason: `${t.type} from ${nodeKey} before NBIRTH`, raw: payload });
      this.requestRebirth(res, t, opts.receivedAt, `${t.type} before NBIRTH`);
      return res;
    }
    if (seq !== null && node.lastSeq !== null && seq !== (node.lastSeq + 1) % 256) {
      res.events.push('seq_gap');
      this.requestRebirth(res, t, opts.receivedAt, `seq gap: expected ${(node.lastSeq + 1) % 256}, got ${seq}`);
    }
    if (seq !== null) node.lastSeq = seq;

    if (t.type === 'NDATA') {
      this.emitMetrics(res, t, metrics, node.aliases, payloadTs, payload, opts, node.last);
      return res;
    }
    const deviceId = t.device as string;
    let device = node.devices.get(deviceId);
    if (t.type === 'DBIRTH') {
      device = { born: true, stale: false, aliases: new Map(), last: new Map() };
      node.devices.set(deviceId, device);
      defineAliases(device.aliases, metrics);
      res.events.push('birth');
      this.emitMetrics(res, t, metrics, device.aliases, payloadTs, payload, opts, device.last);
      return res;
    }
    if (t.type === 'DDEATH') {
      if (device) {
        device.born = false;
        device.stale = true;
        this.emitStale(res, t.group, t.edgeNode, deviceId, device.last, payloadTs ?? opts.receivedAt, opts);
        res.events.push('death');
      }
      return res;
    }
    // DDATA
    if (!device || !device.born) {
      res.events.push('data_before_birth');
      res.rejects.push({ code: 'SPARKPLUG_BEFORE_BIRTH', reason: `DDATA from ${nodeKey}/${deviceId} before DBIRTH`, raw: payload });
      this.requestRebirth(res, t, opts.receivedAt, 'DDATA before DBIRTH');
      return res;
    }
    this.emitMetrics(res, t, metrics, device.aliases, payloadTs, payload, opts, device.last);
    return res;
  }

  private requestRebirth(res: SparkplugResult, t: SparkplugTopic, now: number, reason: string): void {
    const nodeKey = `${t.group}/${t.edgeNode}`;
    let node = this.nodes.get(nodeKey);
    if (!node) {
      node = { born: false, stale: false, bdSeq: null, lastSeq: null, aliases: new Map(), devices: new Map(), lastRebirthAt: 0, last: new Map() };
      this.nodes.set(nodeKey, node);
    }
    if (node.lastRebirthAt !== 0 && now - node.lastRebirthAt < this.opts.rebirthMinIntervalMs) return;
    node.lastRebirthAt = now;
    res.rebirth = { topic: `${SPARKPLUG_NAMESPACE}/${t.group}/NCMD/${t.edgeNode}`, payload: encodeRebirth(now), reason };
  }

  /**
   * Death: every last known value of the machine again, stamped with the death time and quality
   * `bad`, so consumers see the metrics went stale (as SCADA systems show tags after a death).
   */
  private emitStale(res: SparkplugResult, site: string, line: string, machine: string, last: Map<string, number>, deathTs: number, opts: DecodeOptions): void {
    if (![site, line, machine].every((x) => Identifier.safeParse(x).success)) return;
    const receivedAt = opts.receivedAt;
    // A device clock we would reject for data is not trusted for the death time either.
    const ts = Number.isSafeInteger(deathTs) && deathTs >= 0 && checkTime(deathTs, opts) === null ? deathTs : receivedAt;
    for (const [sensor, value] of last) res.readings.push({ site, line, machine, sensor, ts, value, quality: 'bad', receivedAt });
  }

  private emitMetrics(res: SparkplugResult, t: SparkplugTopic, metrics: UMetric[], aliases: Map<number, MetricDef>, payloadTs: number | null, payload: Buffer, opts: DecodeOptions, last: Map<string, number>): void {
    const machine = t.device ?? this.opts.nodeMachine;
    let unknownAlias = false;
    metrics.forEach((m, index) => {
      let name = m.name ?? undefined;
      let type: string = m.type;
      if (!name) {
        const alias = toNumber(m.alias);
        const def = alias === null ? undefined : aliases.get(alias);
        if (!def) {
          unknownAlias = true;
          res.rejects.push({ code: 'SPARKPLUG_UNKNOWN_ALIAS', reason: `metric #${index} alias ${alias} not defined by a BIRTH`, raw: payload, index });
          return;
        }
        name = def.name;
        type = type ?? def.type;
      }
      if (name === 'bdSeq' || CONTROL_PREFIXES.some((p) => name.startsWith(p))) return;
      if (!NUMERIC_TYPES.has(type) || m.isNull) return;
      const value = toNumber(m.value);
      if (value === null) return;
      const ts = toNumber(m.timestamp) ?? payloadTs ?? opts.receivedAt;
      const sensor = sensorIdFromMetric(name);
      const reading: Reading = { site: t.group, line: t.edgeNode, machine, sensor, ts, value, quality: 'good', receivedAt: opts.receivedAt };
      const idOk = [t.group, t.edgeNode, machine, sensor].every((s) => Identifier.safeParse(s).success);
      if (!idOk || !Number.isFinite(value) || !Number.isInteger(ts) || ts < 0) {
        res.rejects.push({ code: 'READING_INVALID', reason: `metric ${name}: identifiers, value or timestamp invalid`, raw: payload, index });
        return;
      }
      const skew = checkTime(ts, opts);
      if (skew) {
        res.rejects.push({ code: 'TIMESTAMP_OUT_OF_RANGE', reason: `metric ${name}: ${skew}`, raw: payload, index });
        return;
      }
      res.readings.push(reading);
      last.set(sensor, value);
    });
    if (unknownAlias) {
      res.events.push('unknown_alias');
      this.requestRebirth(res, t, opts.receivedAt, 'unknown alias');
    }
  }
}

function defineAliases(table: Map<number, MetricDef>, metrics: UMetric[]): void {
  for (const m of metrics) {
    const alias = toNumber(m.alias);
    if (m.name && alias !== null) table.set(alias, { name: m.name, type: m.type });
  }
}
