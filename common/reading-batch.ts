/**
 * The readings hot path in columns: a `ReadingBatch` holds a batch's points as typed arrays plus
 * one interned `SeriesEntry` per point, and `decodeReadingRecord` fills it straight from a Kafka
 * record's bytes in one pass (no JSON.parse, no object per reading, no string per identifier).
 *
 * Why: JSON.parse + an object per reading + validation + a line-protocol string per point cost the
 * writer ~2.5 µs per point more than the raw store paths (services/storage/README.md › Performance). The stores read
 * these columns directly (line protocol bytes for InfluxDB, DuckDB data chunks for the embedded
 * store), so a reading is never materialised as an object unless it is refused and dead-lettered.
 *
 * The byte decoder accepts only a strict, common subset of JSON (ASCII, no string escapes, no
 * exponents, no duplicate keys, integers of at most 15 digits for times); for anything else it
 * says "not sure" and the caller falls back to JSON.parse + the zod schema (`ReadingRecord`), which
 * stays the authority and writes the error message. Whatever the decoder accepts, JSON.parse + zod
 * accept too and yield the same readings (reading-batch.test.ts checks this on random and mutated
 * records).
 */
import type { Reading } from './messages.ts';

/** One series (site, line, machine, sensor), interned: the same identifiers give the same object. */
export class SeriesEntry {
  /** Per-store cache (series key bytes, DuckDB series id…): valid while `cacheOwner` is the store's token. */
  cacheOwner: object | undefined = undefined;
  cacheValue: unknown = undefined;
  constructor(
    readonly id: number,
    readonly site: string,
    readonly line: string,
    readonly machine: string,
    readonly sensor: string,
  ) {}
}

export const QUALITIES = [undefined, 'good', 'uncertain', 'bad'] as const;
export type QualityCode = 0 | 1 | 2 | 3;

function qualityCode(q: Reading['quality']): QualityCode {
  return q === undefined ? 0 : q === 'good' ? 1 : q === 'uncertain' ? 2 : 3;
}

const FNV_SEED = 0x811c9dc5 | 0;

/** FNV-1a over a string's char codes: for ASCII identifiers the same as over their bytes. */
function fnvString(s: string): number {
  let h = FNV_SEED;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h;
}

/** The series hash from its four field hashes (the same whether decoded from bytes or strings). */
function combine(h0: number, h1: number, h2: number, h3: number): number {
  let h = FNV_SEED;
  h = Math.imul(h ^ h0, 16777619);
  h = Math.imul(h ^ h1, 16777619);
  h = Math.imul(h ^ h2, 16777619);
  return Math.imul(h ^ h3, 16777619);
}
/** Beyond this many series the interner starts afresh (bounded memory under a cardinality flood). */
const MAX_INTERNED = 1 << 18;

/**
 * One string object per distinct identifier value. Series share their site, line and machine (and
 * the few sensor names), but each one decoded or received brings four new strings. Every
 * mark-compact visits each string it keeps: at 100k series, one copy per value cut a full GC of an
 * interner's heap from ~25 to ~14 ms, and of the anomaly producer thread's series mirror from ~35
 * to ~25 ms (median of 15 `gc()` calls, 2026-11-27).
 */
export class IdentifierStrings {
  private readonly strings = new Map<string, string>();

  get size(): number {
    return this.strings.size;
  }

  of(s: string): string {
    const known = this.strings.get(s);
    if (known !== undefined) return known;
    this.strings.set(s, s);
    return s;
  }

  clear(): void {
    this.strings.clear();
  }
}

/**
 * Interns series by the bytes of their four identifiers (open addressing on an FNV-1a hash), so the
 * decoder finds a known series without building a string. Bounded: past MAX_INTERNED it is reset
 * (entries already handed out stay valid objects; their ids are never reused).
 */
export class SeriesInterner {
  private readonly ids = new IdentifierStrings();
  private hashes = new Int32Array(1024);
  private slots: (SeriesEntry | undefined)[] = new Array(1024).fill(undefined);
  private mask = 1023;
  private count = 0;
  private nextId = 1;

  get size(): number {
    return this.count;
  }

  /** Looks up by the identifier byte ranges of `b` (ASCII, validated by the caller). */
  lookupBytes(b: Uint8Array, h: number, s0: number, e0: number, s1: number, e1: number, s2: number, e2: number, s3: number, e3: number): SeriesEntry {
    let i = h & this.mask;
    for (;;) {
      const e = this.slots[i];
      if (e === undefined) break;
      if (this.hashes[i] === h && eqBytes(b, s0, e0, e.site) && eqBytes(b, s1, e1, e.line) && eqBytes(b, s2, e2, e.machine) && eqBytes(b, s3, e3, e.sensor)) return e;
      i = (i + 1) & this.mask;
    }
    const ids = this.ids;
    return this.insert(h, new SeriesEntry(this.nextId++, ids.of(latin1(b, s0, e0)), ids.of(latin1(b, s1, e1)), ids.of(latin1(b, s2, e2)), ids.of(latin1(b, s3, e3))));
  }

  /** Looks up by strings (readings that came through JSON.parse + zod). */
  lookup(site: string, line: string, machine: string, sensor: string): SeriesEntry {
    const h = combine(fnvString(site), fnvString(line), fnvString(machine), fnvString(sensor));
    let i = h & this.mask;
    for (;;) {
      const e = this.slots[i];
      if (e === undefined) break;
      if (this.hashes[i] === h && e.site === site && e.line === line && e.machine === machine && e.sensor === sensor) return e;
      i = (i + 1) & this.mask;
    }
    const ids = this.ids;
    return this.insert(h, new SeriesEntry(this.nextId++, ids.of(site), ids.of(line), ids.of(machine), ids.of(sensor)));
  }

  private insert(h: number, entry: SeriesEntry): SeriesEntry {
    if (this.count >= MAX_INTERNED) {
      this.reset(1024);
      this.ids.clear();
    }
    else if ((this.count + 1) * 2 > this.slots.length) this.reset(this.slots.length * 2, true);
    let i = h & this.mask;
    while (this.slots[i] !== undefined) i = (i + 1) & this.mask;
    this.slots[i] = entry;
    this.hashes[i] = h;
    this.count++;
    return entry;
  }

  private reset(capacity: number, keep = false): void {
    const oldSlots = this.slots;
    const oldHashes = this.hashes;
    this.slots = new Array(capacity).fill(undefined);
    this.hashes = new Int32Array(capacity);
    this.mask = capacity - 1;
    this.count = 0;
    if (!keep) return;
    for (let j = 0; j < oldSlots.length; j++) {
      const e = oldSlots[j];
      if (e === undefined) continue;
      let i = oldHashes[j] & this.mask;
      while (this.slots[i] !== undefined) i = (i + 1) & this.mask;
      this.slots[i] = e;
      this.hashes[i] = oldHashes[j];
      this.count++;
    }
  }
}

function eqBytes(b: Uint8Array, s: number, e: number, str: string): boolean {
  if (e - s !== str.length) return false;
  for (let i = 0; i < str.length; i++) if (b[s + i] !== str.charCodeAt(i)) return false;
  return true;
}

function latin1(b: Uint8Array, s: number, e: number): string {
  return Buffer.prototype.latin1Slice.call(b, s, e) as string;
}

/**
 * A batch of readings in columns. Points are appended record by record; `recordEnd[k]` is the
 * point index after record k's last point (records are never split across batches).
 */
export class ReadingBatch {
  n = 0;
  series: SeriesEntry[];
  ts: Float64Array;
  value: Float64Array;
  receivedAt: Float64Array;
  unit: (string | undefined)[];
  quality: Uint8Array;
  /** Record bytes the points were decoded from. */
  sources: Uint8Array[] = [];
  /**
   * Where the value's JSON text is (points decoded from bytes): 1 + index into `sources` (0 = not
   * decoded from bytes), offset and length. Line protocol copies that text verbatim.
   */
  valueSource: Int32Array;
  valueOff: Int32Array;
  valueLen: Uint8Array;

  constructor(capacity = 1024) {
    // Pre-sized (holey) so filling them never grows them point by point.
    this.series = new Array(capacity);
    this.unit = new Array(capacity);
    this.valueSource = new Int32Array(capacity);
    this.ts = new Float64Array(capacity);
    this.value = new Float64Array(capacity);
    this.receivedAt = new Float64Array(capacity);
    this.quality = new Uint8Array(capacity);
    this.valueOff = new Int32Array(capacity);
    this.valueLen = new Uint8Array(capacity);
  }

  static fromReadings(readings: Reading[], interner: SeriesInterner): ReadingBatch {
    const b = new ReadingBatch(Math.max(16, readings.length));
    for (const r of readings) b.pushReading(r, interner);
    return b;
  }

  /** Makes room for one more point. */
  reserve(): void {
    if (this.n < this.ts.length) return;
    const cap = this.ts.length * 2;
    const grow = <T extends Float64Array | Int32Array | Uint8Array>(a: T, make: (n: number) => T): T => {
      const b = make(cap);
      b.set(a);
      return b;
    };
    this.ts = grow(this.ts, (n) => new Float64Array(n));
    this.value = grow(this.value, (n) => new Float64Array(n));
    this.receivedAt = grow(this.receivedAt, (n) => new Float64Array(n));
    this.quality = grow(this.quality, (n) => new Uint8Array(n));
    this.valueOff = grow(this.valueOff, (n) => new Int32Array(n));
    this.valueSource = grow(this.valueSource, (n) => new Int32Array(n));
    this.valueLen = grow(this.valueLen, (n) => new Uint8Array(n));
  }

  /** Appends a reading already validated (by zod or the caller). */
  pushReading(r: Reading, interner: SeriesInterner): void {
    this.reserve();
    const i = this.n++;
    this.series[i] = interner.lookup(r.site, r.line, r.machine, r.sensor);
    this.ts[i] = r.ts;
    this.value[i] = r.value;
    this.receivedAt[i] = r.receivedAt;
    this.unit[i] = r.unit;
    this.quality[i] = qualityCode(r.quality);
    this.valueSource[i] = 0;
  }

  /** Empties the batch for reuse (keeps its arrays). */
  clear(): void {
    this.truncate(0);
    this.sources.length = 0;
  }

  /** Forgets points from `n` on (a record the decoder gave up on halfway). */
  truncate(n: number): void {
    for (let i = n; i < this.n; i++) this.unit[i] = undefined;
    this.n = n;
  }

  /** Point i as the Reading object JSON.parse + zod would have produced (dead letters, fallbacks). */
  readingAt(i: number): Reading {
    const s = this.series[i];
    const r: Reading = { site: s.site, line: s.line, machine: s.machine, sensor: s.sensor, ts: this.ts[i], value: this.value[i], receivedAt: this.receivedAt[i] };
    if (this.unit[i] !== undefined) r.unit = this.unit[i];
    const q = QUALITIES[this.quality[i]];
    if (q !== undefined) r.quality = q;
    return r;
  }

  toReadings(): Reading[] {
    const out: Reading[] = new Array(this.n);
    for (let i = 0; i < this.n; i++) out[i] = this.readingAt(i);
    return out;
  }
}

// ------------------------------------------------------------------ the byte decoder

const QUOTE = 0x22;
const COMMA = 0x2c;
const COLON = 0x3a;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const MINUS = 0x2d;
const DOT = 0x2e;
const ZERO = 0x30;
const BACKSLASH = 0x5c;

/** Identifier bytes: A-Z a-z 0-9 _ . : - (common/messages.ts Identifier). */
const ID_BYTE = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-') ID_BYTE[c.charCodeAt(0)] = 1;

/** Key ids; bit i of a "seen" mask. */
const K_SITE = 0;
const K_LINE = 1;
const K_MACHINE = 2;
const K_SENSOR = 3;
const K_TS = 4;
const K_VALUE = 5;
const K_UNIT = 6;
const K_QUALITY = 7;
const K_RECEIVED = 8;
const REQUIRED = (1 << K_SITE) | (1 << K_LINE) | (1 << K_MACHINE) | (1 << K_SENSOR) | (1 << K_TS) | (1 << K_VALUE) | (1 << K_RECEIVED);
const KEYS: [string, number][] = [
  ['site', K_SITE],
  ['line', K_LINE],
  ['machine', K_MACHINE],
  ['sensor', K_SENSOR],
  ['ts', K_TS],
  ['value', K_VALUE],
  ['unit', K_UNIT],
  ['quality', K_QUALITY],
  ['receivedAt', K_RECEIVED],
];
const KEY_BY_ID: Uint8Array[] = [];
/** `"key":` as bytes, for the guessed-order comparison. */
const QUOTED_KEY: Uint8Array[] = [];
for (const [k, id] of KEYS) {
  KEY_BY_ID[id] = Buffer.from(k, 'latin1');
  QUOTED_KEY[id] = Buffer.from(`"${k}":`, 'latin1');
}
const QUALITY_BYTES = QUALITIES.map((q) => (q === undefined ? undefined : Buffer.from(q, 'latin1')));
const POW10 = [1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22];

/** Small cache of unit strings by their bytes (units are few: degC, bar, rpm…). */
class UnitCache {
  private readonly list: string[] = [];
  get(b: Uint8Array, s: number, e: number): string {
    const list = this.list;
    for (let i = 0; i < list.length; i++) if (eqBytes(b, s, e, list[i])) return list[i];
    const u = latin1(b, s, e);
    if (list.length >= 64) list.length = 0;
    list.push(u);
    return u;
  }
}

/** Skips JSON whitespace from p. */
function skipWs(b: Uint8Array, p: number): number {
  for (;;) {
    const c = b[p];
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) p++;
    else return p;
  }
}

/**
 * Decoder state kept between records: the series interner and unit cache. One per writer.
 * The scanning functions keep the position in a local and return the next one (-1 = not sure).
 */
export class ReadingDecoder {
  readonly interner: SeriesInterner;
  private readonly units = new UnitCache();
  // Fields of the object being decoded (instead of an object per reading).
  private readonly idS = new Int32Array(4);
  private readonly idE = new Int32Array(4);
  private readonly idH = new Int32Array(4);
  private ts = 0;
  private recv = 0;
  private value = 0;
  private valS = 0;
  private valE = 0;
  private unit: string | undefined = undefined;
  private quality: QualityCode = 0;
  /** 1 + index of the record being decoded in the batch's `sources`. */
  private source = 0;
  /** Key ids in the order the last object had them (guessed for the next one). */
  private readonly keyOrder = new Int8Array(9);
  private keyOrderLen = 0;

  constructor(interner = new SeriesInterner()) {
    this.interner = interner;
  }

  /**
   * Appends the readings of one `plantwatch.readings` record value to `batch` and returns how many,
   * or -1 (batch unchanged) when the bytes are outside the subset this decoder is sure about: the
   * caller then parses them with JSON.parse + zod.
   */
  decode(b: Uint8Array, batch: ReadingBatch): number {
    const start = batch.n;
    batch.sources.push(b);
    this.source = batch.sources.length;
    let p = skipWs(b, 0);
    if (b[p] === LBRACKET) {
      p = skipWs(b, p + 1);
      if (b[p] === RBRACKET) p = -1;
      while (p >= 0) {
        p = this.object(b, p, batch);
        if (p < 0) break;
        p = skipWs(b, p);
        const c = b[p++];
        if (c === COMMA) {
          p = skipWs(b, p);
          continue;
        }
        if (c !== RBRACKET) p = -1;
        break;
      }
    } else if (b[p] === LBRACE) {
      p = this.object(b, p, batch);
    } else p = -1;
    if (p >= 0 && skipWs(b, p) === b.length) return batch.n - start;
    batch.truncate(start);
    batch.sources.pop();
    return -1;
  }

  /** One reading object at p (a '{'); appends it to the batch and returns the position after it. */
  private object(b: Uint8Array, p: number, batch: ReadingBatch): number {
    if (b[p] !== LBRACE) return -1;
    let seen = 0;
    this.unit = undefined;
    this.quality = 0;
    p = skipWs(b, p + 1);
    const order = this.keyOrder;
    for (let f = 0; ; f++) {
      // The key: first a guess that it comes where it came in the last object (producers write one
      // order), compared together with its quotes and colon; else scanned and matched by name.
      let key = -1;
      if (f < this.keyOrderLen) {
        const k = order[f];
        const quoted = QUOTED_KEY[k];
        let ok = true;
        for (let j = 0; j < quoted.length; j++) {
          if (b[p + j] !== quoted[j]) {
            ok = false;
            break;
          }
        }
        if (ok) {
          key = k;
          p += quoted.length;
        }
      }
      if (key < 0) {
        if (b[p] !== QUOTE) return -1;
        const ks = p + 1;
        p = ks;
        while (p < b.length && b[p] !== QUOTE && b[p] !== BACKSLASH) p++;
        if (b[p] !== QUOTE) return -1;
        key = matchKey(b, ks, p);
        if (key < 0) return -1;
        p = skipWs(b, p + 1);
        if (b[p] !== COLON) return -1;
        p++;
        order[f] = key;
      }
      if (seen & (1 << key)) return -1;
      seen |= 1 << key;
      p = skipWs(b, p);
      if (key <= K_SENSOR) p = this.identifier(b, p, key);
      else if (key === K_TS) p = this.epochMs(b, p, true);
      else if (key === K_RECEIVED) p = this.epochMs(b, p, false);
      else if (key === K_VALUE) p = this.number(b, p);
      else if (key === K_UNIT) p = this.unitString(b, p);
      else p = this.qualityString(b, p);
      if (p < 0) return -1;
      p = skipWs(b, p);
      const c = b[p++];
      if (c === COMMA) {
        p = skipWs(b, p);
        continue;
      }
      if (c !== RBRACE) return -1;
      this.keyOrderLen = f + 1;
      break;
    }
    if ((seen & REQUIRED) !== REQUIRED) return -1;
    batch.reserve();
    const i = batch.n++;
    const idS = this.idS;
    const idE = this.idE;
    const idH = this.idH;
    batch.series[i] = this.interner.lookupBytes(b, combine(idH[0], idH[1], idH[2], idH[3]), idS[0], idE[0], idS[1], idE[1], idS[2], idE[2], idS[3], idE[3]);
    batch.ts[i] = this.ts;
    batch.value[i] = this.value;
    batch.receivedAt[i] = this.recv;
    batch.unit[i] = this.unit;
    batch.quality[i] = this.quality;
    batch.valueSource[i] = this.source;
    batch.valueOff[i] = this.valS;
    batch.valueLen[i] = this.valE - this.valS;
    return p;
  }

  /** "…" of 1-64 identifier bytes; records the range and a hash. */
  private identifier(b: Uint8Array, p: number, k: number): number {
    if (b[p] !== QUOTE) return -1;
    const s = ++p;
    let h = FNV_SEED;
    for (;;) {
      const c = b[p];
      if (ID_BYTE[c] !== 1) break;
      h = Math.imul(h ^ c, 16777619);
      p++;
    }
    if (b[p] !== QUOTE || p === s || p - s > 64) return -1;
    this.idS[k] = s;
    this.idE[k] = p;
    this.idH[k] = h;
    return p + 1;
  }

  /** A non-negative integer of 1-15 digits without leading zeros, exponent or fraction. */
  private epochMs(b: Uint8Array, p: number, isTs: boolean): number {
    const s = p;
    let v = 0;
    for (;;) {
      const d = b[p] - ZERO;
      if (!(d >= 0 && d <= 9)) break;
      v = v * 10 + d;
      p++;
    }
    const digits = p - s;
    if (digits === 0 || digits > 15 || (digits > 1 && b[s] === ZERO)) return -1;
    const c = b[p];
    if (c === DOT || c === 0x65 || c === 0x45) return -1;
    if (isTs) this.ts = v;
    else this.recv = v;
    return p;
  }

  /**
   * A JSON number without exponent: -?(0|[1-9][0-9]*)(.[0-9]+)? Up to 15 significant digits and 22
   * fraction digits it is computed exactly (integer mantissa / power of ten, both exact doubles, one
   * correctly rounded division); longer ones go through Number(). Negative zero is left to zod.
   */
  private number(b: Uint8Array, p: number): number {
    const s = p;
    const neg = b[p] === MINUS;
    if (neg) p++;
    const is = p;
    let m = 0;
    let sig = 0;
    for (;;) {
      const d = b[p] - ZERO;
      if (!(d >= 0 && d <= 9)) break;
      m = m * 10 + d;
      if (m !== 0) sig++;
      p++;
    }
    const intDigits = p - is;
    if (intDigits === 0 || (intDigits > 1 && b[is] === ZERO)) return -1;
    let frac = 0;
    if (b[p] === DOT) {
      p++;
      const fs = p;
      for (;;) {
        const d = b[p] - ZERO;
        if (!(d >= 0 && d <= 9)) break;
        m = m * 10 + d;
        if (m !== 0) sig++;
        p++;
      }
      frac = p - fs;
      if (frac === 0) return -1;
    }
    const c = b[p];
    if (c === 0x65 || c === 0x45 || p - s > 255) return -1;
    const v = sig <= 15 && frac <= 22 ? m / POW10[frac] : Number(latin1(b, is, p));
    if ((v === 0 && neg) || !Number.isFinite(v)) return -1;
    this.value = neg ? -v : v;
    this.valS = s;
    this.valE = p;
    return p;
  }

  /** "…" of at most 32 printable ASCII bytes without escapes. */
  private unitString(b: Uint8Array, p: number): number {
    if (b[p] !== QUOTE) return -1;
    const s = ++p;
    for (;;) {
      const c = b[p];
      if (!(c >= 0x20 && c <= 0x7e) || c === QUOTE || c === BACKSLASH) break;
      p++;
    }
    if (b[p] !== QUOTE || p - s > 32) return -1;
    this.unit = this.units.get(b, s, p);
    return p + 1;
  }

  private qualityString(b: Uint8Array, p: number): number {
    if (b[p] !== QUOTE) return -1;
    const s = p + 1;
    p = s;
    while (p < b.length && b[p] !== QUOTE && p - s <= 9) p++;
    if (b[p] !== QUOTE) return -1;
    for (let q = 1; q <= 3; q++) {
      const bytes = QUALITY_BYTES[q]!;
      if (p - s === bytes.length && eqRange(b, s, bytes)) {
        this.quality = q as QualityCode;
        return p + 1;
      }
    }
    return -1;
  }
}

function eqRange(b: Uint8Array, s: number, bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (b[s + i] !== bytes[i]) return false;
  return true;
}

/** The key id of the bytes s..e, or -1: switch on length and first byte, then compare the rest. */
function matchKey(b: Uint8Array, s: number, e: number): number {
  let id = -1;
  switch (e - s) {
    case 2:
      id = b[s] === 0x74 ? K_TS : -1; // ts
      break;
    case 4:
      id = b[s] === 0x73 ? K_SITE : b[s] === 0x6c ? K_LINE : b[s] === 0x75 ? K_UNIT : -1; // site line unit
      break;
    case 5:
      id = b[s] === 0x76 ? K_VALUE : -1; // value
      break;
    case 6:
      id = b[s] === 0x73 ? K_SENSOR : -1; // sensor
      break;
    case 7:
      id = b[s] === 0x6d ? K_MACHINE : b[s] === 0x71 ? K_QUALITY : -1; // machine quality
      break;
    case 10:
      id = b[s] === 0x72 ? K_RECEIVED : -1; // receivedAt
      break;
  }
  if (id < 0) return -1;
  const kb = KEY_BY_ID[id];
  for (let i = 1; i < kb.length; i++) if (b[s + i] !== kb[i]) return -1;
  return id;
}
