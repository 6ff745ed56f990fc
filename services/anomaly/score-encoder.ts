/**
 * Score records written as bytes straight from the columns (`SensorScoreColumns` + the input
 * `ReadingBatch`), with no `SensorScore` object and no JSON.stringify per score: at 50k readings/s
 * JSON.stringify of score objects alone cost ~2.5 µs per reading, and the objects living across the
 * produce await were promoted and collected by the old-generation GC.
 *
 * The bytes are exactly those of `JSON.stringify` of the scores as objects
 * (`SensorScoreColumns.toSensorScores`, model outputs rounded by `roundModelOutput`), grouped as `encodeScores` (records.ts) groups them: one
 * record per machine key `site/line/machine`, sensor scores in row order then the machine's machine
 * scores, split every `maxPerRecord` scores (score-encoder.test.ts compares the two on random
 * values). What is constant per series — `{"kind":"sensor","site":…,"sensor":…,"ts":` — is encoded
 * once and kept on the interned `SeriesEntry`; the model-version part once per version.
 */
import type { MachineScore } from '../../common/messages.ts';
import type { SeriesEntry } from '../../common/reading-batch.ts';
import { TTL_NONE, type ScoredPoints, type SensorScoreRows } from './score-columns.ts';

export interface OutputMessage {
  key: string;
  value: string | Buffer;
  headers?: Record<string, string>;
}

/** One machine key's records in one `encode` call (reused across calls). */
class MachineSlot {
  /** `encode` call that last used the slot; `rows`, `start` and `machines` are valid only for that call. */
  epoch = 0;
  /** Sensor rows of this machine in the current call, then their start in `sortedRows`. */
  rows = 0;
  start = 0;
  machines: MachineScore[] = [];
  /** `{"kind":"machine","site":…,"machine":…,"ts":`, built on first use. */
  machinePrefix: Uint8Array | null = null;
  constructor(
    readonly key: string,
    readonly site: string,
    readonly line: string,
    readonly machine: string,
  ) {}
}

/** What the encoder keeps per series (on `SeriesEntry.cacheValue`). */
interface SeriesCache {
  prefix: Uint8Array;
  slot: MachineSlot;
  /** Generation of the slot map the slot came from (the map is reset when it grows too big). */
  gen: number;
}

const ascii = (s: string) => Buffer.from(s, 'latin1');

type ConstWriter = (b: Uint8Array, p: number) => number;
/**
 * A writer of a constant ASCII text as unrolled byte stores: ~5x faster than a copy loop or
 * `TypedArray#set` for the short keys written between every two numbers. Built from our own
 * literals only.
 */
function constWriter(text: string): ConstWriter {
  let body = '';
  for (let i = 0; i < text.length; i++) body += `b[p+${i}]=${text.charCodeAt(i)};`;
  return new Function('b', 'p', `${body}return p+${text.length};`) as ConstWriter;
}
const W_VALUE = constWriter(',"value":');
const W_PREDICTED = constWriter(',"predicted":');
const W_LOWER = constWriter(',"lower":');
const W_UPPER = constWriter(',"upper":');
const W_RAW = constWriter(',"rawScore":');
const W_LIKELIHOOD = constWriter(',"likelihood":');
const W_TRUE = constWriter('true}');
const W_FALSE = constWriter('false}');
const W_FORECAST = constWriter(',"forecast":{"horizonMs":');
const W_TTL = constWriter(',"timeToLimitMs":');
const W_NULL = constWriter('null');
const K_RAW = ascii(',"rawScore":');
const K_LIKELIHOOD = ascii(',"likelihood":');
const K_TRUE = ascii('true');
const K_FALSE = ascii('false');
const K_CONTRIBUTIONS = ascii(',"contributions":{');
/** The keys of a `MachineScore` in the schema's order (common/messages.ts). */
const MACHINE_KEYS = ['kind', 'site', 'line', 'machine', 'ts', 'rawScore', 'likelihood', 'contributions', 'modelVersion', 'warmingUp'];

/** Printable ASCII without `"` and `\`: written as is inside quotes. */
function isPlainKey(key: string): boolean {
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return false;
  }
  return true;
}
/** Upper bound of a row's bytes besides its prefix and version part: 14 numbers of ≤ 25 bytes plus keys. */
const ROW_BOUND = 14 * 25 + 200;
/** Slots kept before the map starts afresh (bounded memory under a cardinality flood). */
const MAX_SLOTS = 1 << 18;
const DIGITS = new Uint8Array(24);
const ASCII = /^[\x00-\x7f]*$/;
/** Numbers formatted per JSON.stringify call: ~75 kB of text, below V8's large-object size. */
const NUM_CHUNK = 4096;
/** Record buffers kept for reuse, and the largest one kept. */
const POOL_MAX = 8;
const POOL_BUFFER_MAX = 32 << 20;

/** Writes `v` as JSON.stringify writes a number; returns the position after it. */
export function writeJsonNumber(buf: Uint8Array, p: number, v: number): number {
  // Integers (the common case for ts, horizons, ttl and many values) digit by digit, no string.
  if (v === Math.floor(v) && v < 9007199254740992 && v > -9007199254740992) {
    if (v < 0) {
      buf[p++] = 0x2d;
      v = -v;
    }
    // (-0 was caught by the sign test failing: -0 < 0 is false, so it prints as 0.)
    if (v < 2147483648) return writeUint31(buf, p, v | 0);
    let hi = Math.floor(v / 1e8);
    let lo = v - hi * 1e8;
    // v / 1e8 may round across an integer next to a multiple of 1e8.
    if (lo < 0) {
      hi--;
      lo += 1e8;
    } else if (lo >= 1e8) {
      hi++;
      lo -= 1e8;
    }
    p = writeUint31(buf, p, hi);
    lo |= 0;
    for (let i = 7; i >= 0; i--) {
      buf[p + i] = 0x30 + (lo % 10);
      lo = (lo / 10) | 0;
    }
    return p + 8;
  }
  if (v !== v || v === Infinity || v === -Infinity) {
    buf[p] = 0x6e; // null
    buf[p + 1] = 0x75;
    buf[p + 2] = 0x6c;
    buf[p + 3] = 0x6c;
    return p + 4;
  }
  // The shortest round-trip digits are V8's (Number#toString is what JSON.stringify uses).
  const s = '' + v;
  for (let i = 0; i < s.length; i++) buf[p + i] = s.charCodeAt(i);
  return p + s.length;
}

/**
 * Significant digits of a score's model outputs on the wire (`predicted`, `lower`, `upper`,
 * `rawScore` and the forecast's `value`, `lower`, `upper`). They come from a float32 network and
 * running estimates: 7 digits is what float32 holds and more than any band or alert rule resolves,
 * while printing all 17 of a double cost ~10 % of the service's CPU and ~15 % of every score's
 * bytes. The reading's own `value`, `ts`, `likelihood` (alert thresholds sit within 1e-5 of 1, and
 * its tail is kept resolvable up to 1 − 1e-14) and the machine scores keep full precision.
 */
export const MODEL_OUTPUT_DIGITS = 7;

/** A model output as written on the wire: integers as they are, else rounded to 7 significant digits. */
export function roundModelOutput(v: number): number {
  if (!Number.isFinite(v) || (v === Math.floor(v) && Math.abs(v) < 9007199254740992)) return v;
  return Number(v.toPrecision(MODEL_OUTPUT_DIGITS));
}

/** Exact powers of ten (all below 2^53 are exact doubles; up to 1e22 they are too). */
const POW10 = Array.from({ length: 23 }, (_, i) => Number(`1e${i}`));

/**
 * Writes `JSON.stringify(roundModelOutput(v))` without V8's shortest-digits conversion: the 7
 * digits come from one correctly rounded multiplication and integer arithmetic. Within 1e-6 of a
 * rounding tie (where that product's last bit could decide) it defers to `toPrecision`.
 */
export function writeModelNumber(buf: Uint8Array, p: number, v: number): number {
  let a = v < 0 ? -v : v;
  if (!(a >= 1e-6 && a < 1e15) || a === Math.floor(a)) return writeJsonNumber(buf, p, roundModelOutput(v));
  // e = floor(log10(a)), by comparison (log10 can be off by one next to powers of ten).
  let e = 0;
  if (a >= 1) {
    while (e < 15 && POW10[e + 1] <= a) e++;
  } else {
    e = -1;
    while (a * POW10[-e] < 1) e--;
  }
  const k = 6 - e; // scale so that 7 digits sit left of the point
  const scaled = k >= 0 ? a * POW10[k] : a / POW10[-k];
  let m = Math.floor(scaled);
  const frac = scaled - m;
  if (frac > 0.499999 && frac < 0.500001) return writeJsonNumber(buf, p, roundModelOutput(v));
  if (frac > 0.5) m++;
  if (m >= 1e7) {
    // Rounded up to the next power of ten: one digit fewer after the point.
    m = 1e6;
    e++;
  }
  if (v < 0) buf[p++] = 0x2d;
  // Digits of m (exactly 7), most significant first.
  const d = DIGITS;
  for (let i = 6; i >= 0; i--) {
    d[i] = 0x30 + (m % 10);
    m = Math.floor(m / 10);
  }
  // Trailing zeros are not written (shortest form), except those left of the decimal point.
  let last = 6;
  while (last > 0 && d[last] === 0x30 && last > e) last--;
  if (e >= 6) {
    for (let i = 0; i < 7; i++) buf[p++] = d[i];
    for (let i = 6; i < e; i++) buf[p++] = 0x30;
    return p;
  }
  if (e >= 0) {
    for (let i = 0; i <= e; i++) buf[p++] = d[i];
    if (last > e) {
      buf[p++] = 0x2e;
      for (let i = e + 1; i <= last; i++) buf[p++] = d[i];
    }
    return p;
  }
  buf[p++] = 0x30;
  buf[p++] = 0x2e;
  for (let i = -1; i > e; i--) buf[p++] = 0x30;
  for (let i = 0; i <= last; i++) buf[p++] = d[i];
  return p;
}

function writeUint31(buf: Uint8Array, p: number, v: number): number {
  if (v < 10) {
    buf[p] = 0x30 + v;
    return p + 1;
  }
  let n = 0;
  while (v > 0) {
    DIGITS[n++] = 0x30 + (v % 10);
    v = (v / 10) | 0;
  }
  for (let i = 0; i < n; i++) buf[p + i] = DIGITS[n - 1 - i];
  return p + n;
}

function put(buf: Uint8Array, p: number, bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length; i++) buf[p + i] = bytes[i];
  return p + bytes.length;
}

/**
 * Encodes score records from columns. One per pipeline: it owns the per-series cache on the
 * pipeline's interned series and a scratch buffer reused between calls.
 */
export class ScoreEncoder {
  /** The buffer being written; handed to the records at the end of `encode`. */
  private scratch: Buffer = Buffer.allocUnsafeSlow(1 << 16);
  /**
   * The call's full-precision numbers (a sensor score's value, likelihood, horizon and ttl; the
   * machine scores' numbers), in the order they are written, formatted by JSON.stringify of
   * a reused array of NUM_CHUNK doubles at a time: V8 formats doubles in JSON.stringify without a
   * heap string per number, while `'' + v` allocates one and caches it (the number-string cache
   * kept them alive into the old generation). Chunks keep each text below V8's large-object size
   * (a multi-MB string per call went straight to the old generation and brought on full GCs).
   */
  private nums = new Float64Array(4096);
  private chunk: number[] = Array.from({ length: NUM_CHUNK }, () => 0.5);
  /** `JSON.stringify(nums)` as bytes, and the read position of the next number in it. */
  private numText: Buffer = Buffer.allocUnsafeSlow(1 << 16);
  private q = 0;
  /** Per machine score of the call, in writing order: its contribution keys when written by hand, else null. */
  private machineHand: (string[] | null)[] = [];

  /** Something non-ASCII was written in the current call (the records are then Buffers). */
  private nonAscii = false;

  /** `textValues`: record values as strings when they are ASCII (else Buffers, as always without it). */
  constructor(private readonly textValues = false) {}

  /** Buffers of delivered records (`release`), for reuse: a fresh multi-MB buffer per call kept the GC and the allocator busy. */
  private readonly pool: ArrayBuffer[] = [];
  private slots = new Map<string, MachineSlot>();
  private gen = 0;
  private epoch = 0;
  private order: MachineSlot[] = [];
  private sortedRows = new Int32Array(1024);
  private rowSlot: MachineSlot[] = [];
  private versionPart: { version: string | null; bytes: Uint8Array } = { version: null, bytes: new Uint8Array(0) };

  private slotFor(site: string, line: string, machine: string): MachineSlot {
    const key = `${site}/${line}/${machine}`;
    let slot = this.slots.get(key);
    if (slot === undefined) {
      if (this.slots.size >= MAX_SLOTS) {
        this.slots = new Map();
        this.gen++;
      }
      this.slots.set(key, (slot = new MachineSlot(key, site, line, machine)));
    }
    return slot;
  }

  private seriesCache(s: SeriesEntry): SeriesCache {
    if (s.cacheOwner === this) {
      const c = s.cacheValue as SeriesCache;
      if (c.gen === this.gen) return c;
      c.slot = this.slotFor(s.site, s.line, s.machine);
      c.gen = this.gen;
      return c;
    }
    // Identifiers are [A-Za-z0-9_.:-] (validated on the way in): nothing to escape.
    const c: SeriesCache = {
      prefix: ascii(`{"kind":"sensor","site":"${s.site}","line":"${s.line}","machine":"${s.machine}","sensor":"${s.sensor}","ts":`),
      slot: this.slotFor(s.site, s.line, s.machine),
      gen: this.gen,
    };
    s.cacheOwner = this;
    s.cacheValue = c;
    return c;
  }

  private versionBytes(version: string): Uint8Array {
    if (this.versionPart.version !== version) {
      this.versionPart = { version, bytes: Buffer.from(`,"modelVersion":${JSON.stringify(version)},"warmingUp":`, 'utf8') };
    }
    return this.versionPart.bytes;
  }

  private ensure(p: number, more: number): void {
    if (p + more <= this.scratch.length) return;
    let size = this.scratch.length * 2;
    while (size < p + more) size *= 2;
    const next = this.takeBuffer(size);
    this.scratch.copy(next, 0, 0, p);
    this.scratch = next;
  }

  private takeBuffer(size: number): Buffer {
    for (let i = this.pool.length - 1; i >= 0; i--) {
      const ab = this.pool[i];
      if (ab.byteLength >= size) {
        this.pool.splice(i, 1);
        return Buffer.from(ab);
      }
    }
    return Buffer.allocUnsafeSlow(size);
  }

  /**
   * The records of an `encode` call were delivered (nothing reads their values any more): their
   * buffer is reused by a later call.
   */
  release(messages: readonly OutputMessage[]): void {
    const first = messages[0]?.value;
    if (first === undefined || typeof first === 'string') return;
    const ab = first.buffer as ArrayBuffer;
    if (this.pool.length < POOL_MAX && ab.byteLength <= POOL_BUFFER_MAX && !this.pool.includes(ab)) this.pool.push(ab);
  }

  /**
   * The score records of one scored batch. The returned values share one buffer of their own, so
   * the columns and the input batch may be reused as soon as this returns; pass the records to
   * `release` once delivered to let a later call reuse that buffer.
   */
  encode(
    cols: SensorScoreRows,
    input: ScoredPoints,
    machine: readonly MachineScore[],
    modelVersion: string,
    maxPerRecord: number,
    headers?: Record<string, string>,
  ): OutputMessage[] {
    const epoch = ++this.epoch;
    const order = this.order;
    order.length = 0;
    const n = cols.n;
    const rowSlot = this.rowSlot;
    if (rowSlot.length < n) rowSlot.length = n;
    const caches: SeriesCache[] = this.cacheList(n);
    const points = cols.point;
    const series = input.series;
    // Pass 1: each row's machine, machines in order of first appearance.
    for (let k = 0; k < n; k++) {
      const c = this.seriesCache(series[points[k]]);
      caches[k] = c;
      const slot = c.slot;
      if (slot.epoch !== epoch) {
        slot.epoch = epoch;
        slot.rows = 0;
        slot.machines.length = 0;
        order.push(slot);
      }
      slot.rows++;
      rowSlot[k] = slot;
    }
    for (const m of machine) {
      const slot = this.slotFor(m.site, m.line, m.machine);
      if (slot.epoch !== epoch) {
        slot.epoch = epoch;
        slot.rows = 0;
        slot.machines.length = 0;
        order.push(slot);
      }
      slot.machines.push(m);
    }
    // Pass 2: rows grouped by machine (a stable counting sort).
    if (this.sortedRows.length < n) this.sortedRows = new Int32Array(Math.max(n, this.sortedRows.length * 2));
    const sorted = this.sortedRows;
    let at = 0;
    for (const slot of order) {
      slot.start = at;
      at += slot.rows;
      slot.rows = 0;
    }
    for (let k = 0; k < n; k++) {
      const slot = rowSlot[k];
      sorted[slot.start + slot.rows++] = k;
    }
    this.formatNumbers(order, sorted, cols, input);
    // Pass 3: the bytes, into the scratch buffer.
    let machineIndex = 0;
    const version = this.versionBytes(modelVersion);
    this.nonAscii = !ASCII.test(modelVersion);
    const ends: number[] = [];
    let p = 0;
    for (const slot of order) {
      const total = slot.rows + slot.machines.length;
      for (let from = 0; from < total; from += maxPerRecord) {
        const to = Math.min(total, from + maxPerRecord);
        this.ensure(p, 1);
        this.scratch[p++] = 0x5b; // [
        for (let j = from; j < to; j++) {
          if (j > from) {
            this.ensure(p, 1);
            this.scratch[p++] = 0x2c;
          }
          if (j < slot.rows) {
            const k = sorted[slot.start + j];
            p = this.sensorScore(p, cols, k, input, caches[k].prefix, version);
          } else {
            p = this.machineScore(p, slot, slot.machines[j - slot.rows], this.machineHand[machineIndex++]);
          }
        }
        this.ensure(p, 1);
        this.scratch[p++] = 0x5d; // ]
        ends.push(p);
      }
    }
    const out: OutputMessage[] = new Array(ends.length);
    if (ends.length === 0) return out;
    // ASCII records as one-byte strings (a copy; the scratch buffer is written again by the next
    // call): kafkajs writes a string value with one native call, a Buffer value with a JS copy.
    // Otherwise the records own the buffer; the next call writes into another (from the pool).
    const text = this.textValues && !this.nonAscii;
    const bytes = this.scratch;
    if (!text) this.scratch = this.takeBuffer(Math.max(1 << 16, Math.min(p, POOL_BUFFER_MAX)));
    let r = 0;
    let start = 0;
    for (const slot of order) {
      const total = slot.rows + slot.machines.length;
      for (let from = 0; from < total; from += maxPerRecord) {
        const msg: OutputMessage = { key: slot.key, value: text ? bytes.toString('latin1', start, ends[r]) : bytes.subarray(start, ends[r]) };
        if (headers) msg.headers = headers;
        start = ends[r];
        out[r++] = msg;
      }
      slot.machines.length = 0;
    }
    for (let k = 0; k < n; k++) rowSlot[k] = undefined as unknown as MachineSlot;
    return out;
  }

  private cacheArray: SeriesCache[] = [];
  private cacheList(n: number): SeriesCache[] {
    if (this.cacheArray.length < n) this.cacheArray.length = n;
    return this.cacheArray;
  }

  /** Collects the call's numbers in writing order and formats them with one JSON.stringify. */
  private formatNumbers(order: MachineSlot[], sorted: Int32Array, cols: SensorScoreRows, input: ScoredPoints): void {
    let c = 0;
    const add = (v: number) => {
      if (c === this.nums.length) {
        const grown = new Float64Array(this.nums.length * 2);
        grown.set(this.nums);
        this.nums = grown;
      }
      this.nums[c++] = v;
    };
    const hand = this.machineHand;
    hand.length = 0;
    for (const slot of order) {
      for (let j = 0; j < slot.rows; j++) {
        const k = sorted[slot.start + j];
        // Model outputs are written directly by sensorScore (writeModelNumber).
        add(input.value[cols.point[k]]);
        add(cols.likelihood[k]);
        const h = cols.forecastHorizonMs[k];
        if (h === h) add(h);
        const ttl = cols.timeToLimitMs[k];
        if (ttl === ttl && ttl !== TTL_NONE) add(ttl);
      }
      for (const m of slot.machines) {
        const keys = handKeys(m, slot);
        hand.push(keys);
        if (keys === null) continue;
        add(m.ts);
        add(m.rawScore);
        add(m.likelihood);
        for (const key of keys) add(m.contributions[key]);
      }
    }
    // Chunk after chunk, each written over the previous one's "]" and that byte made a ",":
    // the text reads ",a,b,…,z]" (the last chunk's zero padding after the last number is never read).
    const nums = this.nums;
    const chunk = this.chunk;
    let at = 0;
    for (let from = 0; from === 0 || from < c; from += NUM_CHUNK) {
      for (let i = 0; i < NUM_CHUNK; i++) chunk[i] = from + i < c ? nums[from + i] : 0;
      const text = JSON.stringify(chunk);
      if (this.numText.length < at + text.length) {
        const grown = Buffer.allocUnsafeSlow((at + text.length) * 2);
        this.numText.copy(grown, 0, 0, at);
        this.numText = grown;
      }
      this.numText.write(text, at, 'latin1');
      this.numText[at] = 0x2c;
      at += text.length - 1;
    }
    this.q = 1; // after the first ","
  }

  /** Copies the next formatted number to `b` at `p`. */
  private nextNumber(b: Uint8Array, p: number): number {
    const t = this.numText;
    let q = this.q;
    let c = t[q];
    while (c !== 0x2c && c !== 0x5d) {
      b[p++] = c;
      c = t[++q];
    }
    this.q = q + 1;
    return p;
  }

  /**
   * A machine score as JSON.stringify writes it: by hand when `keys` (its contribution keys: its
   * keys are in the schema's order, what detectors build), else through JSON.stringify.
   */
  private machineScore(p: number, slot: MachineSlot, m: MachineScore, keys: string[] | null): number {
    const start = p;
    if (keys === null) {
      const json = JSON.stringify(m);
      if (!ASCII.test(json)) this.nonAscii = true;
      this.ensure(start, json.length * 3);
      return start + this.scratch.write(json, start, 'utf8');
    }
    slot.machinePrefix ??= Buffer.from(
      `{"kind":"machine","site":${JSON.stringify(slot.site)},"line":${JSON.stringify(slot.line)},"machine":${JSON.stringify(slot.machine)},"ts":`,
      'utf8',
    );
    this.ensure(p, slot.machinePrefix.length + 3 * 25 + 64);
    let b = this.scratch;
    p = put(b, p, slot.machinePrefix);
    p = this.nextNumber(b, p);
    p = put(b, p, K_RAW);
    p = this.nextNumber(b, p);
    p = put(b, p, K_LIKELIHOOD);
    p = this.nextNumber(b, p);
    p = put(b, p, K_CONTRIBUTIONS);
    for (let j = 0; j < keys.length; j++) {
      const key = keys[j];
      this.ensure(p, key.length * 6 + 32);
      b = this.scratch;
      if (j > 0) b[p++] = 0x2c;
      if (isPlainKey(key)) {
        b[p++] = 0x22;
        for (let q = 0; q < key.length; q++) b[p + q] = key.charCodeAt(q);
        p += key.length;
        b[p++] = 0x22;
      } else {
        const quoted = JSON.stringify(key);
        if (!ASCII.test(quoted)) this.nonAscii = true;
        p += b.write(quoted, p, 'utf8');
      }
      b[p++] = 0x3a;
      p = this.nextNumber(b, p);
    }
    const version = this.machineVersionBytes(m.modelVersion);
    if (!ASCII.test(m.modelVersion)) this.nonAscii = true;
    this.ensure(p, version.length + 8);
    b = this.scratch;
    b[p++] = 0x7d; // } of contributions
    p = put(b, p, version);
    p = put(b, p, m.warmingUp ? K_TRUE : K_FALSE);
    b[p++] = 0x7d;
    return p;
  }

  private machineVersion: { version: string | null; bytes: Uint8Array } = { version: null, bytes: new Uint8Array(0) };
  private machineVersionBytes(version: string): Uint8Array {
    if (this.machineVersion.version !== version) {
      this.machineVersion = { version, bytes: Buffer.from(`,"modelVersion":${JSON.stringify(version)},"warmingUp":`, 'utf8') };
    }
    return this.machineVersion.bytes;
  }

  private sensorScore(p: number, cols: SensorScoreRows, k: number, input: ScoredPoints, prefix: Uint8Array, version: Uint8Array): number {
    this.ensure(p, prefix.length + version.length + ROW_BOUND);
    const b = this.scratch;
    b.set(prefix, p);
    p = writeJsonNumber(b, p + prefix.length, input.ts[cols.point[k]]);
    p = this.nextNumber(b, W_VALUE(b, p));
    p = writeModelNumber(b, W_PREDICTED(b, p), cols.predicted[k]);
    p = writeModelNumber(b, W_LOWER(b, p), cols.lower[k]);
    p = writeModelNumber(b, W_UPPER(b, p), cols.upper[k]);
    p = writeModelNumber(b, W_RAW(b, p), cols.rawScore[k]);
    p = this.nextNumber(b, W_LIKELIHOOD(b, p));
    b.set(version, p);
    p += version.length;
    const h = cols.forecastHorizonMs[k];
    const ttl = cols.timeToLimitMs[k];
    if (h !== h && ttl !== ttl) return cols.warmingUp[k] === 1 ? W_TRUE(b, p) : W_FALSE(b, p);
    // The optional keys come after warmingUp (they are added last to the object).
    p = cols.warmingUp[k] === 1 ? W_TRUE(b, p) : W_FALSE(b, p);
    p--; // reopen the object
    if (h === h) {
      p = this.nextNumber(b, W_FORECAST(b, p));
      p = writeModelNumber(b, W_VALUE(b, p), cols.forecastValue[k]);
      p = writeModelNumber(b, W_LOWER(b, p), cols.forecastLower[k]);
      p = writeModelNumber(b, W_UPPER(b, p), cols.forecastUpper[k]);
      b[p++] = 0x7d; // }
    }
    if (ttl === ttl) p = ttl === TTL_NONE ? W_NULL(b, W_TTL(b, p)) : this.nextNumber(b, W_TTL(b, p));
    b[p++] = 0x7d; // }
    return p;
  }
}

/**
 * The contribution keys of a machine score to write by hand: its keys are those of the schema in
 * the schema's order (what detectors build) and every contribution is a number; else null
 * (JSON.stringify writes it).
 */
function handKeys(m: MachineScore, slot: MachineSlot): string[] | null {
  if (m.kind !== 'machine' || m.site !== slot.site || m.line !== slot.line || m.machine !== slot.machine) return null;
  let i = 0;
  for (const k in m) if (k !== MACHINE_KEYS[i++]) return null;
  if (i !== MACHINE_KEYS.length) return null;
  if (typeof m.ts !== 'number' || typeof m.rawScore !== 'number' || typeof m.likelihood !== 'number') return null;
  if (typeof m.modelVersion !== 'string' || typeof m.warmingUp !== 'boolean') return null;
  const c = m.contributions;
  if (c === null || typeof c !== 'object' || Array.isArray(c)) return null;
  const keys = Object.keys(c);
  for (const key of keys) if (typeof c[key] !== 'number') return null;
  return keys;
}
