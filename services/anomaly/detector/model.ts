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
import type { Rng } from './stats.ts';

type Tensor = ReturnType<typeof tf.tensor>;
type Variable = ReturnType<typeof tf.variable>;

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
  private vars: Variable[];
  private m: Variable[];
  private v: Variable[];
  private shapes: number[][];
  step = 0;

  constructor(inputs: number, hidden: number, learningRate: number, rng: Rng) {
    this.inputs = inputs;
    this.hidden = hidden;
    this.lr = learningRate;
    this.shapes = [[inputs, hidden], [hidden], [hidden, hidden], [hidden], [hidden, 1], [1]];
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
    this.vars = init.map((a, i) => tf.variable(tf.tensor(a, this.shapes[i]), true));
    this.m = this.shapes.map((s) => tf.variable(tf.zeros(s), false));
    this.v = this.shapes.map((s) => tf.variable(tf.zeros(s), false));
  }

  private forward(x: Tensor): Tensor {
    const [w1, b1, w2, b2, w3, b3] = this.vars;
    const h1 = tf.tanh(tf.add(tf.matMul(x as never, w1 as never), b1));
    const h2 = tf.tanh(tf.add(tf.matMul(h1 as never, w2 as never), b2));
    return tf.add(tf.matMul(h2 as never, w3 as never), b3);
  }

  /** Predicts n rows of `inputs` features; one tensor call for the whole batch. */
  predict(x: Float32Array, n: number): Float32Array {
    if (n === 0) return new Float32Array(0);
    return tf.tidy(() => this.forward(tf.tensor2d(x, [n, this.inputs])).dataSync() as Float32Array);
  }

  /** One Adam step on a minibatch; Huber loss so that anomalies in the replay do not dominate. */
  trainStep(x: Float32Array, y: Float32Array, n: number): number {
    return tf.tidy(() => {
      const xs = tf.tensor2d(x, [n, this.inputs]);
      const ys = tf.tensor2d(y, [n, 1]);
      const { value, grads } = tf.variableGrads(() => tf.losses.huberLoss(ys, this.forward(xs)) as never, this.vars);
      this.step++;
      const c1 = 1 - Math.pow(BETA1, this.step);
      const c2 = 1 - Math.pow(BETA2, this.step);
      this.vars.forEach((w, i) => {
        const g = grads[w.name];
        const m = this.m[i];
        const v = this.v[i];
        m.assign(tf.add(tf.mul(m, BETA1), tf.mul(g, 1 - BETA1)));
        v.assign(tf.add(tf.mul(v, BETA2), tf.mul(tf.square(g), 1 - BETA2)));
        const upd = tf.div(tf.mul(m, this.lr / c1), tf.add(tf.sqrt(tf.div(v, c2)), EPS));
        w.assign(tf.sub(w, upd));
      });
      return value.dataSync()[0];
    });
  }

  state(): PredictorState {
    const dump = (vs: Variable[]) => vs.map((t) => Array.from(t.dataSync()));
    return { inputs: this.inputs, hidden: this.hidden, step: this.step, weights: dump(this.vars), m: dump(this.m), v: dump(this.v) };
  }

  load(s: PredictorState): void {
    if (s.inputs !== this.inputs || s.hidden !== this.hidden) {
      throw new Error(`snapshot model shape ${s.inputs}x${s.hidden} does not match configured ${this.inputs}x${this.hidden}`);
    }
    const set = (vs: Variable[], arrs: number[][]) =>
      vs.forEach((t, i) => t.assign(tf.tensor(Float32Array.from(arrs[i]), this.shapes[i])));
    set(this.vars, s.weights);
    set(this.m, s.m);
    set(this.v, s.v);
    this.step = s.step;
  }

  dispose(): void {
    for (const t of [...this.vars, ...this.m, ...this.v]) t.dispose();
  }
}
