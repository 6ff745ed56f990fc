/** Synthetic sensor streams with injected anomalies, for tests and back-of-the-envelope checks. */
import type { Reading } from '../../../common/messages.ts';
import { Rng } from './stats.ts';

export type Injection = 'none' | 'spike' | 'levelShift' | 'drift' | 'stuck';

export interface SyntheticOptions {
  length: number;
  /** Reading index where the anomaly starts. */
  at: number;
  injection: Injection;
  seed?: number;
  stepMs?: number;
  sensor?: string;
  machine?: string;
}

/** Noise σ of the clean signal: anomalies below are sized in multiples of it. */
export const NOISE_SD = 0.5;

/** A slow daily-like cycle plus Gaussian noise (σ = NOISE_SD), with one injected anomaly. */
export function syntheticStream(o: SyntheticOptions): Reading[] {
  const rng = new Rng(o.seed ?? 1);
  const gauss = (): number => {
    // Box–Muller
    const u = Math.max(rng.next(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
  };
  const step = o.stepMs ?? 1000;
  const out: Reading[] = [];
  let frozen = 0;
  for (let i = 0; i < o.length; i++) {
    let v = 20 + 2 * Math.sin((2 * Math.PI * i) / 600) + NOISE_SD * gauss();
    if (i >= o.at) {
      if (o.injection === 'spike' && i === o.at) v += 12 * NOISE_SD;
      if (o.injection === 'levelShift') v += 8 * NOISE_SD;
      if (o.injection === 'drift') v += 0.02 * NOISE_SD * (i - o.at);
      if (o.injection === 'stuck') {
        if (i === o.at) frozen = v;
        v = frozen;
      }
    }
    out.push({ site: 'plant', line: 'l1', machine: o.machine ?? 'press', sensor: o.sensor ?? 'temp', ts: 1_700_000_000_000 + i * step, value: v, receivedAt: 1_700_000_000_000 + i * step });
  }
  return out;
}
