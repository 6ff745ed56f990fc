/** Small numeric helpers for the detector: tail probabilities, a seeded PRNG, a Cholesky solve. */

const LN10 = Math.log(10);

/** erfc(x) for x ≥ 0 (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7). */
function erfcPos(x: number): number {
  const t = 1 / (1 + 0.5 * x);
  const y =
    t *
    Math.exp(
      -x * x -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return y;
}

/** Upper tail of the standard normal, Q(z) = P(N(0,1) > z). */
export function normalTail(z: number): number {
  return z >= 0 ? 0.5 * erfcPos(z / Math.SQRT2) : 1 - 0.5 * erfcPos(-z / Math.SQRT2);
}

/**
 * Surprise of a two-sided normalised error in decimal digits: -log10(P(|N(0,1)| > z)).
 * Computed in the log domain so very large errors keep growing instead of saturating.
 */
export function twoSidedSurprise(z: number): number {
  const a = Math.abs(z);
  // clamped: the erfc fit is 3e-8 above 1 at 0, which would make a perfect prediction "negative surprise"
  if (a < 5) return Math.max(0, -Math.log10(Math.max(2 * normalTail(a), 1e-300)));
  // Mills-ratio asymptote of log(2Q(a)).
  const logP = Math.log(2) - (a * a) / 2 - Math.log(a * Math.sqrt(2 * Math.PI)) + Math.log(1 - 1 / (a * a) + 3 / (a * a * a * a));
  return -logP / LN10;
}

/** Regularised lower incomplete gamma P(a, x) (series / continued fraction, Numerical Recipes). */
function gammaP(a: number, x: number): number {
  if (x <= 0) return 0;
  const gln = lnGamma(a);
  if (x < a + 1) {
    let sum = 1 / a;
    let del = sum;
    let ap = a;
    for (let n = 0; n < 200; n++) {
      ap += 1;
      del *= x / ap;
      sum += del;
      if (Math.abs(del) < Math.abs(sum) * 1e-12) break;
    }
    return sum * Math.exp(-x + a * Math.log(x) - gln);
  }
  let b = x + 1 - a;
  let c = 1 / 1e-300;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 200; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < 1e-300) d = 1e-300;
    c = b + an / c;
    if (Math.abs(c) < 1e-300) c = 1e-300;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-12) break;
  }
  return 1 - Math.exp(-x + a * Math.log(x) - gln) * h;
}

function lnGamma(x: number): number {
  const cof = [76.18009172947146, -86.50532032941677, 24.01409824083091, -1.231739572450155, 0.1208650973866179e-2, -0.5395239384953e-5];
  let y = x;
  const tmp = x + 5.5 - (x + 0.5) * Math.log(x + 5.5);
  let ser = 1.000000000190015;
  for (const c of cof) ser += c / ++y;
  return -tmp + Math.log((2.5066282746310005 * ser) / x);
}

/** Surprise (decimal digits) of a chi-square statistic with k degrees of freedom: -log10(P(X > d2)). */
export function chiSquareSurprise(d2: number, k: number): number {
  const upper = 1 - gammaP(k / 2, d2 / 2);
  if (upper > 1e-12) return -Math.log10(upper);
  // Deep tail: Wilson–Hilferty normal approximation keeps the score growing.
  const z = (Math.cbrt(d2 / k) - (1 - 2 / (9 * k))) / Math.sqrt(2 / (9 * k));
  return twoSidedSurprise(z) - Math.log10(2);
}

/** mulberry32: tiny seeded PRNG whose whole state is one uint32 (so it checkpoints). */
export class Rng {
  constructor(public state: number) {}
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

/**
 * Solves A x = b for a symmetric positive-definite A (row-major n×n) by Cholesky; returns null when
 * A is not positive definite.
 */
export function choleskySolve(a: Float64Array, b: Float64Array, n: number): Float64Array | null {
  const x = new Float64Array(n);
  return choleskySolveInto(a, b, n, new Float64Array(n * n), new Float64Array(n), x) ? x : null;
}

/**
 * `choleskySolve` into caller-owned scratch (`l` ≥ n², `y` and `x` ≥ n; A may be bigger than n×n
 * storage-wise, it is read as n×n row-major): false when A is not positive definite.
 */
export function choleskySolveInto(a: Float64Array, b: Float64Array, n: number, l: Float64Array, y: Float64Array, x: Float64Array): boolean {
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * n + j];
      for (let k = 0; k < j; k++) s -= l[i * n + k] * l[j * n + k];
      if (i === j) {
        if (s <= 0) return false;
        l[i * n + i] = Math.sqrt(s);
      } else l[i * n + j] = s / l[j * n + j];
    }
  }
  for (let i = 0; i < n; i++) {
    let s = b[i];
    for (let k = 0; k < i; k++) s -= l[i * n + k] * y[k];
    y[i] = s / l[i * n + i];
  }
  for (let i = n - 1; i >= 0; i--) {
    let s = y[i];
    for (let k = i + 1; k < n; k++) s -= l[k * n + i] * x[k];
    x[i] = s / l[i * n + i];
  }
  return true;
}

/** The first `n` values of a typed array as a plain array (a loop: ~8x faster than `Array.from` here). */
export function toArray(t: ArrayLike<number>, n = t.length): number[] {
  const a = new Array<number>(n);
  for (let i = 0; i < n; i++) a[i] = t[i];
  return a;
}
