/**
 * Pattern novelty per stream: a small, bounded memory of prototype windows (the stream's recent
 * shapes, in its own units). A window is scored by its distance to the nearest prototype, relative to
 * the stream's value range, and then absorbed: it nudges that prototype when close enough (vigilance)
 * or becomes a new prototype, replacing the least recently matched one when memory is full.
 * This is what a one-step predictor misses: a periodic pattern that is perfectly usual (a daily
 * switch-on) is not novel, while a shape never seen before (a plateau where the signal always moves,
 * a new level) is, even when each single step looks ordinary.
 */
import { toArray } from './stats.ts';

export interface NoveltyJson {
  protos: number[];
  used: number[];
  count: number;
  clock: number;
}

export class NoveltyMemory {
  protos: Float32Array;
  used: Float64Array;
  count = 0;
  clock = 0;

  constructor(
    readonly dim: number,
    readonly capacity: number,
  ) {
    this.protos = new Float32Array(dim * capacity);
    this.used = new Float64Array(capacity);
  }

  /**
   * Distance (RMS per element, divided by `range`) of `w` to the nearest prototype; then learns `w`.
   * Returns -1 when the memory was empty.
   */
  scoreAndLearn(w: Float64Array, range: number, vigilance: number, learn: boolean): number {
    const D = this.dim;
    let best = -1;
    let bestD = Infinity;
    for (let p = 0; p < this.count; p++) {
      const off = p * D;
      let s = 0;
      for (let j = 0; j < D; j++) {
        const d = w[j] - this.protos[off + j];
        s += d * d;
        if (s >= bestD) break;
      }
      if (s < bestD) {
        bestD = s;
        best = p;
      }
    }
    const dist = best < 0 ? -1 : Math.sqrt(bestD / D) / range;
    if (!learn) return dist;
    this.clock++;
    if (best >= 0 && dist <= vigilance) {
      // Resonance: move the prototype a little towards the window.
      const off = best * D;
      for (let j = 0; j < D; j++) this.protos[off + j] += 0.1 * (w[j] - this.protos[off + j]);
      this.used[best] = this.clock;
    } else {
      let slot = this.count;
      if (this.count < this.capacity) this.count++;
      else {
        slot = 0;
        for (let p = 1; p < this.capacity; p++) if (this.used[p] < this.used[slot]) slot = p;
      }
      this.protos.set(w, slot * D);
      this.used[slot] = this.clock;
    }
    return dist;
  }

  bytes(): number {
    return this.protos.byteLength + this.used.byteLength;
  }

  toJson(): NoveltyJson {
    return { protos: toArray(this.protos, this.count * this.dim), used: toArray(this.used, this.count), count: this.count, clock: this.clock };
  }

  static fromJson(j: NoveltyJson, dim: number, capacity: number): NoveltyMemory {
    const m = new NoveltyMemory(dim, capacity);
    m.count = Math.min(j.count, capacity);
    m.clock = j.clock;
    m.protos.set(j.protos.slice(0, m.count * dim));
    m.used.set(j.used.slice(0, m.count));
    return m;
  }
}

/**
 * `NoveltyMemory.scoreAndLearn` (learning) on a memory kept in pooled storage (the detector's
 * per-stream slots): prototypes at `protos[po…]` (float32, like the class), use stamps at
 * `num[usedAt…]`, the prototype count and clock at `num[countAt]` and `num[clockAt]`.
 * Same arithmetic, same order: the same scores bit for bit.
 */
export function scoreAndLearnAt(
  protos: Float32Array,
  po: number,
  num: Float64Array,
  countAt: number,
  clockAt: number,
  usedAt: number,
  dim: number,
  capacity: number,
  w: Float64Array,
  range: number,
  vigilance: number,
): number {
  const D = dim;
  const count = num[countAt] | 0;
  let best = -1;
  let bestD = Infinity;
  for (let p = 0; p < count; p++) {
    const off = po + p * D;
    let s = 0;
    for (let j = 0; j < D; j++) {
      const d = w[j] - protos[off + j];
      s += d * d;
      if (s >= bestD) break;
    }
    if (s < bestD) {
      bestD = s;
      best = p;
    }
  }
  const dist = best < 0 ? -1 : Math.sqrt(bestD / D) / range;
  const clock = num[clockAt] + 1;
  num[clockAt] = clock;
  if (best >= 0 && dist <= vigilance) {
    const off = po + best * D;
    for (let j = 0; j < D; j++) protos[off + j] += 0.1 * (w[j] - protos[off + j]);
    num[usedAt + best] = clock;
  } else {
    let slot = count;
    if (count < capacity) num[countAt] = count + 1;
    else {
      slot = 0;
      for (let p = 1; p < capacity; p++) if (num[usedAt + p] < num[usedAt + slot]) slot = p;
    }
    const off = po + slot * D;
    for (let j = 0; j < D; j++) protos[off + j] = w[j];
    num[usedAt + slot] = clock;
  }
  return dist;
}
