/**
 * One sensor chart on uPlot: the measured value, the model's predicted value with its band, the
 * anomaly likelihood on its own 0–1 axis, and alert markers (start line plus shaded span). Points
 * are kept per event time, so a late or repeated point replaces instead of duplicating.
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { Alert } from '../../common/messages.ts';

interface Row {
  value: number | null;
  predicted: number | null;
  lower: number | null;
  upper: number | null;
  likelihood: number | null;
}

const SEVERITY_COLOR: Record<string, string> = { critical: '#ff4d4f', warning: '#ffb020', info: '#4ea8ff' };

export class SensorChart {
  readonly el: HTMLElement;
  private readonly plotEl: HTMLElement;
  private plot: uPlot | null = null;
  private readonly rows = new Map<number, Row>();
  private keys: number[] = [];
  private sorted = true;
  private dirty = false;
  private lastDrawAt = 0;
  alerts: Alert[] = [];
  windowMs: number;
  /** Live mode: zoom to the data while there is less of it than the window (fresh start). */
  fitToData = false;
  /** The newest score came from a model still learning this sensor: not trusted. */
  warmingUp = false;

  constructor(
    readonly sensor: string,
    readonly unit: string | undefined,
    windowMs: number,
  ) {
    this.windowMs = windowMs;
    this.el = document.createElement('section');
    this.el.className = 'chart-card';
    this.el.dataset.sensor = sensor;
    this.el.innerHTML = `<header><h3></h3><div class="chart-now"><span class="chart-value">—</span><span class="chart-score" title="anomaly likelihood"></span></div></header><div class="chart-plot"></div><div class="chart-legend" aria-hidden="true"><span class="lg-value">value</span><span class="lg-predicted">predicted</span><span class="lg-band">expected band</span><span class="lg-score">anomaly (right axis)</span><span class="lg-alert">alert</span></div>`;
    this.el.querySelector('h3')!.textContent = sensor + (unit ? ` (${unit})` : '');
    this.plotEl = this.el.querySelector('.chart-plot') as HTMLElement;
  }

  private row(ts: number): Row {
    let r = this.rows.get(ts);
    if (!r) {
      r = { value: null, predicted: null, lower: null, upper: null, likelihood: null };
      this.rows.set(ts, r);
      if (this.keys.length && ts < this.keys[this.keys.length - 1]) this.sorted = false;
      this.keys.push(ts);
    }
    return r;
  }

  addValue(ts: number, value: number): void {
    this.row(ts).value = value;
    this.dirty = true;
  }

  addScore(ts: number, value: number, predicted: number, lower: number, upper: number, likelihood: number): void {
    const r = this.row(ts);
    if (r.value === null) r.value = value;
    r.predicted = predicted;
    r.lower = lower;
    r.upper = upper;
    r.likelihood = likelihood;
    this.dirty = true;
  }

  clear(): void {
    this.rows.clear();
    this.keys = [];
    this.dirty = true;
  }

  /** Redraws if anything changed; cheap to call every animation frame. */
  render(now: number): void {
    // Without new points the time axis still slides, but once a second is enough.
    if (!this.dirty && this.plot && now - this.lastDrawAt < 1000) return;
    this.lastDrawAt = now;
    this.dirty = false;
    if (!this.sorted) {
      this.keys.sort((a, b) => a - b);
      this.sorted = true;
    }
    const cutoff = now - this.windowMs;
    let drop = 0;
    while (drop < this.keys.length && this.keys[drop] < cutoff) this.rows.delete(this.keys[drop++]);
    if (drop) this.keys = this.keys.slice(drop);
    const n = this.keys.length;
    const x = new Float64Array(n);
    const cols: (number | null)[][] = [[], [], [], [], []];
    this.keys.forEach((k, i) => {
      x[i] = k / 1000;
      const r = this.rows.get(k)!;
      cols[0].push(r.value);
      cols[1].push(r.predicted);
      cols[2].push(r.lower);
      cols[3].push(r.upper);
      cols[4].push(r.likelihood);
    });
    const data = [x as unknown as number[], ...cols] as uPlot.AlignedData;
    const lastIdx = n - 1;
    let lastValue: number | null = null;
    let lastScore: number | null = null;
    for (let i = lastIdx; i >= 0 && (lastValue === null || lastScore === null); i--) {
      if (lastValue === null && cols[0][i] !== null) lastValue = cols[0][i];
      if (lastScore === null && cols[4][i] !== null) lastScore = cols[4][i];
    }
    (this.el.querySelector('.chart-value') as HTMLElement).textContent = lastValue === null ? '—' : formatNumber(lastValue) + (this.unit ? ` ${this.unit}` : '');
    const sc = this.el.querySelector('.chart-score') as HTMLElement;
    sc.textContent = lastScore === null ? '' : this.warmingUp ? 'model learning' : `score ${(lastScore * 100).toFixed(0)}%`;
    sc.className = `chart-score ${lastScore === null || this.warmingUp ? 'learning' : lastScore >= 0.9 ? 'critical' : lastScore >= 0.7 ? 'warning' : 'ok'}`;
    this.el.dataset.points = String(n);
    this.el.dataset.lastTs = n ? String(this.keys[lastIdx]) : '';
    // The last minute's event times, for tests and debugging (a hole in live data shows here).
    this.el.dataset.recentTs = this.keys.filter((k) => k > now - 60_000).join(',');
    const first = n ? this.keys[0] : now;
    const from = this.fitToData ? Math.max(cutoff, Math.min(first, now - 60_000)) : cutoff;
    const scaleX = { min: from / 1000, max: now / 1000 };
    if (!this.plot) {
      this.plot = new uPlot(this.options(), data, this.plotEl);
    } else {
      this.plot.batch(() => {
        this.plot!.setData(data, false);
        this.plot!.setScale('x', scaleX);
      });
      return;
    }
    this.plot.setScale('x', scaleX);
  }

  resize(): void {
    if (!this.plot) return;
    const w = this.plotEl.clientWidth;
    if (w > 0 && Math.abs(w - this.plot.width) > 2) this.plot.setSize({ width: w, height: this.height() });
  }

  private height(): number {
    return Math.max(160, Math.min(260, Math.round(window.innerHeight / 4)));
  }

  private options(): uPlot.Options {
    const self = this;
    const axisStyle = { stroke: '#c9d4e5', grid: { stroke: 'rgba(201,212,229,0.12)', width: 1 }, ticks: { stroke: 'rgba(201,212,229,0.25)', width: 1 }, font: '14px system-ui, sans-serif' };
    return {
      width: Math.max(300, this.plotEl.clientWidth || 600),
      height: this.height(),
      legend: { show: false },
      cursor: { drag: { x: false, y: false }, points: { size: 8 } },
      scales: {
        x: { time: true },
        // A flat signal still gets a readable axis around its value.
        y: { range: (_u, min, max) => (min === max ? [min - Math.max(1, Math.abs(min) * 0.05), max + Math.max(1, Math.abs(max) * 0.05)] : uPlot.rangeNum(min, max, 0.1, true)) },
        score: { range: [0, 1] },
      },
      axes: [
        { ...axisStyle },
        { ...axisStyle, size: 64, values: (_u, vals) => vals.map((v) => formatNumber(v)) },
        { ...axisStyle, scale: 'score', side: 1, size: 60, grid: { show: false }, values: (_u, vals) => vals.map((v) => `${Math.round(v * 100)}%`) },
      ],
      series: [
        {},
        { label: 'value', stroke: '#38d39f', width: 2.5, spanGaps: true, points: { show: false } },
        { label: 'predicted', stroke: '#9aa8ff', width: 1.5, dash: [6, 4], spanGaps: true, points: { show: false } },
        { label: 'lower', stroke: 'rgba(154,168,255,0.35)', width: 1, spanGaps: true, points: { show: false } },
        { label: 'upper', stroke: 'rgba(154,168,255,0.35)', width: 1, spanGaps: true, points: { show: false } },
        { label: 'anomaly', scale: 'score', stroke: 'rgba(255,77,79,0.75)', fill: 'rgba(255,77,79,0.22)', width: 1, spanGaps: true, points: { show: false } },
      ],
      bands: [{ series: [4, 3], fill: 'rgba(154,168,255,0.16)' }],
      hooks: {
        draw: [
          (u: uPlot) => {
            // Alert markers: a line where the alert started and a tint until it ended (or now).
            const ctx = u.ctx;
            const { top, height, left, width } = u.bbox;
            for (const a of self.alerts) {
              const x0 = u.valToPos(a.startsAt / 1000, 'x', true);
              const x1 = u.valToPos((a.endsAt ?? Date.now()) / 1000, 'x', true);
              const color = SEVERITY_COLOR[a.severity] ?? '#ffb020';
              const from = Math.max(left, x0);
              const to = Math.min(left + width, x1);
              if (to <= left || from >= left + width) continue;
              ctx.save();
              ctx.globalAlpha = 0.12;
              ctx.fillStyle = color;
              ctx.fillRect(from, top, to - from, height);
              ctx.globalAlpha = 1;
              if (x0 >= left) {
                ctx.strokeStyle = color;
                ctx.lineWidth = 3 * devicePixelRatio;
                ctx.beginPath();
                ctx.moveTo(x0, top);
                ctx.lineTo(x0, top + height);
                ctx.stroke();
              }
              ctx.restore();
            }
          },
        ],
      },
    };
  }

  destroy(): void {
    this.plot?.destroy();
    this.plot = null;
  }
}

export function formatNumber(v: number): string {
  const a = Math.abs(v);
  if (a >= 10000) return v.toFixed(0);
  if (a >= 100) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  if (a < 1e-9) return '0';
  return v.toPrecision(3);
}
