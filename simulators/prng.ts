/**
 * Counter-based randomness: every random number is a hash of (seed, stream, index), never the next
 * value of a shared generator. So any sample can be computed on its own, in any order, and the same
 * seed gives bit-identical data whether a run is real-time, accelerated or a back-fill.
 */

/** 32-bit integer avalanche mix (xorshift-multiply, constants from the public "lowbias32" search). */
export function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x21f0aaad);
  x ^= x >>> 15;
  x = Math.imul(x, 0x735a2d97);
  x ^= x >>> 15;
  return x >>> 0;
}

/** FNV-1a of a string: stable 32-bit ids for machine and sensor names. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

const TWO32 = 4294967296;

/** Hash of (stream, index, salt) to a 32-bit integer; `index` may exceed 2^32 (sample index at 1 kHz). */
export function hash3(stream: number, index: number, salt: number): number {
  const lo = index >>> 0;
  const hi = Math.floor(index / TWO32) >>> 0;
  let h = mix32(stream ^ Math.imul(salt + 1, 0x9e3779b9));
  h = mix32(h ^ lo);
  h = mix32(h ^ Math.imul(hi + 0x632be5ab, 0x85ebca6b));
  return h;
}

/** Uniform in [0, 1). */
export function uniform(stream: number, index: number, salt = 0): number {
  return hash3(stream, index, salt) / TWO32;
}

/** Standard normal via Box-Muller on two independent uniforms. */
export function gaussian(stream: number, index: number, salt = 0): number {
  const u1 = (hash3(stream, index, salt * 2 + 7) + 1) / (TWO32 + 1); // (0, 1]: log(0) never happens
  const u2 = uniform(stream, index, salt * 2 + 8);
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

/** A stream id from a seed and a name, e.g. streamId(seed, 'demo/line-1/pump-1/vibration'). */
export function streamId(seed: number, name: string): number {
  return mix32(hashString(name) ^ mix32(seed >>> 0) ^ Math.imul(Math.floor(seed / TWO32) >>> 0, 0x27d4eb2f));
}
