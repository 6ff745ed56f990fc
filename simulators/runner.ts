/**
 * Drives a PlantModel through time and hands its messages to an Output. Simulated time advances at
 * `speed` × wall time (1 = real time for demos, N = accelerated, 0 = as fast as the output takes
 * it, for back-fill). If the output cannot keep up, simulated time falls behind the target instead of
 * buffering without bound; the progress line shows that lag.
 */
import type { FaultSpecInput } from './config.schema.ts';
import type { FaultLabel } from './faults.ts';
import type { LabelRecorder } from './labels.ts';
import type { PlantModel } from './model.ts';
import type { Output, OutputStats } from './outputs.ts';

export interface RunnerOptions {
  model: PlantModel;
  output: Output;
  labels: LabelRecorder;
  /** Simulated ms per wall ms; 0 = unpaced. */
  speed: number;
  tickMs: number;
  /** First simulated instant (epoch ms). */
  startMs: number;
  /** Stop when simulated time reaches this (exclusive). */
  endMs?: number;
  /** Wall clock (injectable for tests). */
  now?: () => number;
  /** Called when a fault's label is recorded. */
  onLabel?: (label: FaultLabel) => void;
}

export interface Progress {
  wallS: number;
  simMs: number;
  /** Simulated ms behind where the speed says it should be (0 when keeping up). */
  lagMs: number;
  readings: number;
  messages: number;
  errors: number;
  bytes: number;
  /** Readings per wall second since the previous progress() call. */
  rate: number;
  /** Readings per wall second since start. */
  averageRate: number;
}

export class SimulationRunner {
  cursor: number;
  private readonly o: RunnerOptions;
  private readonly now: () => number;
  private readonly chunkMs: number;
  private stopped = false;
  private wake: (() => void) | undefined;
  private wall0 = 0;
  private last = { wall: 0, readings: 0 };
  private running: Promise<void> | undefined;

  constructor(o: RunnerOptions) {
    this.o = o;
    this.now = o.now ?? Date.now;
    this.cursor = o.startMs;
    // One round covers one tick of simulated time (so batches hold a tick's samples), but at least
    // ~20k readings' worth when unpaced, so a fast run still yields to timers and I/O.
    const byReadings = Math.max(1, Math.floor((20_000 / Math.max(1, o.model.naturalRate)) * 1000));
    this.chunkMs = o.speed > 0 ? Math.max(byReadings, Math.ceil(o.tickMs * o.speed)) : byReadings;
  }

  get stats(): OutputStats {
    return this.o.output.stats;
  }

  /** Runs until stop() or endMs. */
  run(): Promise<void> {
    return (this.running ??= this.loop());
  }

  private step(from: number, to: number): void {
    for (const f of this.o.model.faultsBetween(from, to)) {
      if (f.start < to && !this.o.labels.has(f.id)) {
        const label = this.o.model.label(f);
        this.o.labels.record(label);
        this.o.onLabel?.(label);
      }
    }
    this.o.output.send(this.o.model.generate(from, to), to);
  }

  private targetAt(wall: number): number {
    const t = this.o.speed > 0 ? this.o.startMs + (wall - this.wall0) * this.o.speed : Number.POSITIVE_INFINITY;
    return this.o.endMs === undefined ? t : Math.min(t, this.o.endMs);
  }

  private async loop(): Promise<void> {
    this.wall0 = this.now();
    this.last = { wall: this.wall0, readings: this.stats.readings };
    while (!this.stopped) {
      const tickStart = this.now();
      const target = this.targetAt(tickStart);
      while (this.cursor < target && !this.stopped) {
        const to = Math.min(target, this.cursor + this.chunkMs);
        this.step(this.cursor, to);
        this.cursor = to;
        await this.o.output.ready();
        // Let timers (progress line, keepalives) run between rounds.
        await new Promise((r) => setImmediate(r));
        if (this.o.speed > 0 && this.now() - tickStart > this.o.tickMs) break;
      }
      if (this.o.endMs !== undefined && this.cursor >= this.o.endMs) break;
      if (this.o.speed > 0) {
        const wait = this.o.tickMs - (this.now() - tickStart);
        if (wait > 0) await new Promise<void>((r) => {
          const t = setTimeout(r, wait);
          this.wake = () => {
            clearTimeout(t);
            r();
          };
        });
        this.wake = undefined;
      }
    }
  }

  /** Stops after the current round; resolves when the loop has ended (output not closed). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.running;
  }

  /** Injects a fault at the current simulated time (+ spec.at seconds) and records its label. */
  injectFault(spec: FaultSpecInput): FaultLabel {
    const label = this.o.model.injectFault(spec, this.cursor);
    this.o.labels.record(label);
    this.o.onLabel?.(label);
    return label;
  }

  progress(): Progress {
    const wall = this.now();
    const s = this.stats;
    const dt = (wall - this.last.wall) / 1000;
    const rate = dt > 0 ? (s.readings - this.last.readings) / dt : 0;
    this.last = { wall, readings: s.readings };
    const wallS = (wall - this.wall0) / 1000;
    const target = this.targetAt(wall);
    return {
      wallS,
      simMs: this.cursor,
      lagMs: this.o.speed > 0 ? Math.max(0, target - this.cursor) : 0,
      readings: s.readings,
      messages: s.messages,
      errors: s.errors,
      bytes: s.bytes,
      rate,
      averageRate: wallS > 0 ? s.readings / wallS : 0,
    };
  }
}

export function formatProgress(p: Progress): string {
  const n = (x: number) => Math.round(x).toLocaleString('en-US');
  return (
    `rate ${n(p.rate)} readings/s | sent ${n(p.readings)} readings in ${n(p.messages)} msgs | errors ${n(p.errors)} | ` +
    `sim ${new Date(p.simMs).toISOString()}${p.lagMs > 1000 ? ` (behind by ${(p.lagMs / 1000).toFixed(1)} s)` : ''}`
  );
}
