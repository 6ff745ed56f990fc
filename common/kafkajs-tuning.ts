/**
 * Two hot spots of kafkajs 2.2.4's producer path, replaced before kafkajs loads (common/kafka.ts
 * imports this module first). Profiled in the anomaly service at 50k readings/s, they took ~15 % of
 * its CPU, and as much of any other process producing at that rate:
 *
 * - CRC-32C of every record batch: kafkajs computes it a byte at a time (~430 MB/s here). This is
 *   the same checksum computed eight bytes per step ("slicing-by-8", ~2.6x faster here), with equal
 *   results (kafkajs-tuning.test.ts checks against kafkajs' own function).
 * - `Encoder#ensureAvailable` grows its buffer with `Buffer.alloc`, zero-filling every doubled
 *   buffer before copying over it. Everything past `offset` is written before it is read (the
 *   encoder only ever exposes `buf.slice(0, offset)`), so the growth uses `Buffer.allocUnsafe`.
 *
 * kafkajs is pinned to an exact version in package.json (its last release is from 2023); the
 * patch checks the version and the shape of what it replaces, and leaves kafkajs untouched (with
 * a warning on stderr) if either differs, so an upgrade degrades to stock speed, never to wrong
 * bytes.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** The kafkajs version whose internals this was written against. */
export const TUNED_KAFKAJS_VERSION = '2.2.4';

/** Reflected CRC-32C (Castagnoli) polynomial. */
const POLY = 0x82f63b78;

function buildTables(): Int32Array[] {
  const t0 = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t0[n] = c;
  }
  const tables = [t0];
  for (let t = 1; t < 8; t++) {
    const prev = tables[t - 1];
    const next = new Int32Array(256);
    for (let n = 0; n < 256; n++) next[n] = (prev[n] >>> 8) ^ t0[prev[n] & 0xff];
    tables.push(next);
  }
  return tables;
}
const [T0, T1, T2, T3, T4, T5, T6, T7] = buildTables();

/** CRC-32C of `buf` as an unsigned 32-bit number (what a Kafka record batch header carries). */
export function crc32c(buf: Uint8Array): number {
  let crc = -1;
  let i = 0;
  const n = buf.length;
  const end8 = n - (n & 7);
  for (; i < end8; i += 8) {
    crc ^= buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24);
    crc =
      T7[crc & 0xff] ^
      T6[(crc >>> 8) & 0xff] ^
      T5[(crc >>> 16) & 0xff] ^
      T4[crc >>> 24] ^
      T3[buf[i + 4]] ^
      T2[buf[i + 5]] ^
      T1[buf[i + 6]] ^
      T0[buf[i + 7]];
  }
  for (; i < n; i++) crc = T0[(crc ^ buf[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ -1) >>> 0;
}

export interface TuningResult {
  applied: boolean;
  /** Why not, when not applied. */
  reason?: string;
}

interface EncoderClass {
  nextPowerOfTwo(value: number): number;
  prototype: { ensureAvailable(this: { offset: number; buf: Buffer }, length: number): void };
}

let result: TuningResult | null = null;
const TUNED = Symbol.for('plantwatch.kafkajs-tuned');

/** Applies the replacements once (idempotent); must run before kafkajs' record batch module loads. */
export function tuneKafkajs(): TuningResult {
  if (result !== null) return result;
  try {
    const version = (require('kafkajs/package.json') as { version: string }).version;
    if (version !== TUNED_KAFKAJS_VERSION) return (result = { applied: false, reason: `kafkajs ${version} is not ${TUNED_KAFKAJS_VERSION}` });
    const crcPath = require.resolve('kafkajs/src/protocol/recordBatch/crc32C/index.js');
    // Already done by an earlier copy of this module (the CommonJS cache outlives a test runner's
    // fresh ES module graph).
    if ((require.cache[crcPath]?.exports as Record<symbol, unknown> | undefined)?.[TUNED] === true) return (result = { applied: true });
    const batchPath = require.resolve('kafkajs/src/protocol/recordBatch/v0/index.js');
    if (require.cache[batchPath] !== undefined) return (result = { applied: false, reason: 'kafkajs was loaded before the tuning' });
    const stockCrc = require(crcPath) as (b: Buffer) => number;
    const probe = Buffer.from('123456789');
    // 0xe3069283: the CRC-32C check value of "123456789".
    if (typeof stockCrc !== 'function' || stockCrc(probe) !== 0xe3069283 || crc32c(probe) !== 0xe3069283) {
      return (result = { applied: false, reason: 'kafkajs crc32C module has an unexpected shape' });
    }
    const Encoder = require('kafkajs/src/protocol/encoder.js') as EncoderClass;
    if (typeof Encoder?.prototype?.ensureAvailable !== 'function' || typeof Encoder.nextPowerOfTwo !== 'function') {
      return (result = { applied: false, reason: 'kafkajs Encoder has an unexpected shape' });
    }
    const tunedCrc = (b: Uint8Array) => crc32c(b);
    (tunedCrc as unknown as Record<symbol, unknown>)[TUNED] = true;
    require.cache[crcPath]!.exports = tunedCrc;
    Encoder.prototype.ensureAvailable = function ensureAvailable(length: number): void {
      if (this.offset + length > this.buf.length) {
        const grown = Buffer.allocUnsafe(Encoder.nextPowerOfTwo(this.offset + length));
        this.buf.copy(grown, 0, 0, this.offset);
        this.buf = grown;
      }
    };
    return (result = { applied: true });
  } catch (err) {
    return (result = { applied: false, reason: `kafkajs internals not found: ${(err as Error).message}` });
  }
}

const tuning = tuneKafkajs();
if (!tuning.applied) process.emitWarning(`kafkajs tuning not applied (${tuning.reason}); producing at stock speed`, { code: 'PLANTWATCH_KAFKAJS_TUNING' });
