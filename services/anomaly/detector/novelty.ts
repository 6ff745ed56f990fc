/**
 * Pattern novelty per stream: a small, bounded memory of prototype windows (the stream's recent
 * shapes, in its own units). A window is scored by its distance to the nearest prototype, relative to
 * the stream's value range, and then absorbed: it nudges that prototype when close enough (vigilance)
 * or becomes a new prototype, replacing the least recently matched one when memory is full.
 * This is what a one-step predictor misses: a periodic pattern that is perfectly usual (a daily
 * switch-on) is not novel, while a shape never seen before (a plateau where the signal always moves,
 * a new level) is, even when each single step looks ordinary.
 */
export interface NoveltyJson {
  protos: number[];
  used: number[];
  count: number;
  clock: number;
}

/**
 * Distance (RMS per element, divided by `range`) of `w` to the nearest prototype, then learns `w`
 * (-1 when the memory was empty). The memory lives in pooled storage (the detector's per-stream
 * slots): prototypes at `protos[po…]` (float32), use stamps at
 * `num[usedAt…]`, the prototype count and clock at `num[countAt]` and `num[clockAt]`.
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
