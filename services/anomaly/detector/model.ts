/**
 * The shared tfjs predictor: a small dense network (window → tanh → tanh → 1) that predicts the next
 * value of a stream from its last `window` values, all expressed in units of that stream's typical
 * step and centred on its last value. Because every stream is normalised the same way, ONE network
 * serves all streams and a whole batch of readings of any streams is one tensor call.
 * Trained online with Adam (written out here so that its moments checkpoint with the weights) on a
 * reservoir of recent examples; the output layer starts at zero, so an untrained model predicts
 * "same as last value" rather than noise.
 */
import { tf } from '../tf.ts';
import { toArray, type Rng } from './stats.ts';

type Tensor = ReturnType<typeof tf.tensor>;

export interface PredictorState {
  inputs: number;
  hidden: number;
  step: number;
  weights: number[][];
  m: number[][];
  v: number[][];
}

const BETA1 = 0.9;
const BETA2 = 0.999;
const EPS = 1e-7;

export class Predictor {
  readonly inputs: number;
  readonly hidden: number;
  private readonly lr: number;
  private readonly shapes: number[][];
  private readonly sizes: number[];
  /**
   * All weights in ONE flat tensor, with Adam's moments alike: an update is a handful of tensor ops
   * whatever the number of layers (each op costs tens of µs of tfjs overhead at these sizes, far
   * more than its arithmetic). `layers` are the per-layer views the forward pass uses.
   */
  private w: Tensor;
  private m: Tensor;
  private v: Tensor;
  private layers: Tensor[];
  step = 0;

  constructor(inputs: number, hidden: number, learningRate: number, rng: Rng) {
    this.inputs = inputs;
    this.hidden = hidden;
    this.lr = learningRate;
    this.shapes = [[inputs, hidden], [hidden], [hidden, hidden], [hidden], [hidden, 1], [1]];
    this.sizes = this.shapes.map((s) => s.reduce((a, b) => a * b, 1));
    const glorot = (fanIn: number, fanOut: number, n: number): Float32Array => {
      const lim = Math.sqrt(6 / (fanIn + fanOut));
      const a = new Float32Array(n);
      for (let i = 0; i < n; i++) a[i] = (rng.next() * 2 - 1) * lim;
      return a;
    };
    const init: Float32Array[] = [
      glorot(inputs, hidden, inputs * hidden),
      new Float32Array(hidden),
      glorot(hidden, hidden, hidden * hidden),
      new Float32Array(hidden),
      new Float32Array(hidden), // zero output layer: untrained ⇒ persistence forecast
      new Float32Array(1),
    ];
    this.w = tf.tensor1d(this.flatten(init));
    this.m = tf.zeros([this.w.size]);
    this.v = tf.zeros([this.w.size]);
    this.layers = this.split(this.w);
  }

  private flatten(parts: ArrayLike<number>[]): Float32Array {
    const flat = new Float32Array(this.sizes.reduce((a, b) => a + b, 0));
    let off = 0;
    parts.forEach((p, i) => {
      if (p.length !== this.sizes[i]) throw new Error(`model layer ${i} has ${p.length} values, expected ${this.sizes[i]}`);
      flat.set(p, off);
      off += p.length;
    });
    return flat;
  }

  private split(flat: Tensor): Tensor[] {
    return tf.tidy(() => tf.split(flat, this.sizes).map((t, i) => tf.reshape(t, this.shapes[i])));
  }

  private forward(x: Tensor): Tensor {
    const [w1, b1, w2, b2, w3, b3] = this.layers;
    const h1 = tf.tanh(tf.add(tf.matMul(x as never, w1 as never), b1));
    const h2 = tf.tanh(tf.add(tf.matMul(h1 as never, w2 as never), b2));
    return tf.add(tf.matMul(h2 as never, w3 as never), b3);
  }

  /** Predicts n rows of `inputs` features; one tensor call for the whole batch. */
  predict(x: Float32Array, n: number): Float32Array {
    if (n === 0) return new Float32Array(0);
    // Read outside tidy(): tidy walks what its function returns key by key (a Float32Array of n
    // predictions cost ~5 % of the detector's CPU at batch 2048).
    const y = tf.tidy(() => this.forward(tf.tensor2d(x, [n, this.inputs])));
    try {
      return y.dataSync() as Float32Array;
    } finally {
      y.dispose();
    }
  }

  /**
   * One Adam step on a minibatch; Huber loss (delta 1, mean over the batch) so that anomalies in the
   * replay do not dominate. The gradients are written out (two tanh layers) rather than taped by
   * `tf.variableGrads`: half the tensor ops, same step.
   */
  trainStep(x: Float32Array, y: Float32Array, n: number): void {
    this.step++;
    const c1 = 1 - Math.pow(BETA1, this.step);
    const c2 = 1 - Math.pow(BETA2, this.step);
    const [w, m, v] = tf.tidy(() => {
      const [w1, b1, w2, b2, w3, b3] = this.layers;
      const xs = tf.tensor2d(x, [n, this.inputs]);
      const ys = tf.tensor2d(y, [n, 1]);
      const h1 = tf.tanh(tf.add(tf.matMul(xs, w1 as never), b1));
      const h2 = tf.tanh(tf.add(tf.matMul(h1, w2 as never), b2));
      const out = tf.add(tf.matMul(h2, w3 as never), b3);
      // d(mean Huber)/d(out) = clip(out - y, -1, 1) / n; back through the tanh layers (tanh' = 1 - h²)
      const d3 = tf.mul(tf.clipByValue(tf.sub(out, ys), -1, 1), 1 / n);
      const d2 = tf.mul(tf.matMul(d3, w3 as never, false, true), tf.sub(1, tf.square(h2)));
      const d1 = tf.mul(tf.matMul(d2, w2 as never, false, true), tf.sub(1, tf.square(h1)));
      const g = tf.concat([
        tf.reshape(tf.matMul(xs, d1, true, false), [-1]),
        tf.sum(d1, 0),
        tf.reshape(tf.matMul(h1, d2, true, false), [-1]),
        tf.sum(d2, 0),
        tf.reshape(tf.matMul(h2, d3, true, false), [-1]),
        tf.sum(d3, 0),
      ]);
      const m1 = tf.add(tf.mul(this.m, BETA1), tf.mul(g, 1 - BETA1));
      const v1 = tf.add(tf.mul(this.v, BETA2), tf.mul(tf.square(g), 1 - BETA2));
      const upd = tf.div(tf.mul(m1, this.lr / c1), tf.add(tf.sqrt(tf.div(v1, c2)), EPS));
      return [tf.sub(this.w, upd), m1, v1];
    });
    this.replace(w, m, v);
  }

  private replace(w: Tensor, m: Tensor, v: Tensor): void {
    for (const t of [this.w, this.m, this.v, ...this.layers]) t.dispose();
    this.w = w;
    this.m = m;
    this.v = v;
    this.layers = this.split(w);
  }

  state(): PredictorState {
    const dump = (t: Tensor) => {
      const flat = t.dataSync();
      const out: number[][] = [];
      let off = 0;
      for (const n of this.sizes) {
        out.push(toArray(flat.subarray(off, off + n)));
        off += n;
      }
      return out;
    };
    return { inputs: this.inputs, hidden: this.hidden, step: this.step, weights: dump(this.w), m: dump(this.m), v: dump(this.v) };
  }

  load(s: PredictorState): void {
    if (s.inputs !== this.inputs || s.hidden !== this.hidden) {
      throw new Error(`snapshot model shape ${s.inputs}x${s.hidden} does not match configured ${this.inputs}x${this.hidden}`);
    }
    this.replace(tf.tensor1d(this.flatten(s.weights)), tf.tensor1d(this.flatten(s.m)), tf.tensor1d(this.flatten(s.v)));
    this.step = s.step;
  }

  dispose(): void {
    for (const t of [this.w, this.m, this.v, ...this.layers]) t.dispose();
  }
}
