/** Machine view: one chart per sensor (value, predicted band, anomaly score, alert markers). */
import type { Alert } from '../../../common/messages.ts';
import type { LiveClient, LiveSubscription } from '../live.ts';
import { SensorChart } from '../chart.ts';
import { type PlantModel, type Health } from '../model.ts';
import { alertRow, esc, sortAlerts, type View } from './common.ts';

export const RANGES = [
  { id: 'live', label: 'Live', windowMs: 15 * 60_000 },
  { id: '1h', label: '1 h', windowMs: 3600_000 },
  { id: '24h', label: '24 h', windowMs: 24 * 3600_000 },
  { id: '7d', label: '7 d', windowMs: 7 * 24 * 3600_000 },
] as const;
export type RangeId = (typeof RANGES)[number]['id'];

const HEALTH_TEXT: Record<Health, string> = { ok: 'Normal', warning: 'Warning', critical: 'Critical', stale: 'No data', unknown: 'Waiting' };

export function machineView(model: PlantModel, live: LiveClient, site: string, line: string, machine: string, rangeId: RangeId): View {
  const key = `${site}/${line}/${machine}`;
  const range = RANGES.find((r) => r.id === rangeId) ?? RANGES[0];
  const el = document.createElement('main');
  el.className = 'machine';
  el.dataset.machine = key;
  el.innerHTML = `
    <div class="machine-head">
      <a class="btn btn-back" href="#/">‹ Plant</a>
      <div class="machine-title"><h1>${esc(machine)}</h1><div class="muted">${esc(site)} › ${esc(line)}</div></div>
      <span class="pill machine-health"></span>
      <div class="machine-score"><span class="muted">Worst anomaly</span> <b></b></div>
      <nav class="ranges" aria-label="time range">${RANGES.map((r) => `<a class="btn range${r.id === range.id ? ' active' : ''}" data-range="${r.id}" href="#/machine/${encodeURIComponent(site)}/${encodeURIComponent(line)}/${encodeURIComponent(machine)}?range=${r.id}">${r.label}</a>`).join('')}</nav>
    </div>
    <div class="machine-alerts"></div>
    <div class="charts"><p class="muted loading">Loading history…</p></div>`;
  const chartsEl = el.querySelector('.charts') as HTMLElement;
  const alertsEl = el.querySelector('.machine-alerts') as HTMLElement;
  const charts = new Map<string, SensorChart>();
  /** Alerts seen for this machine (resolved ones too, for the markers). */
  const seenAlerts = new Map<string, Alert>();
  const units = new Map<string, string | undefined>();

  const chart = (sensor: string): SensorChart => {
    let c = charts.get(sensor);
    if (!c) {
      c = new SensorChart(sensor, units.get(sensor), range.windowMs);
      c.fitToData = range.id === 'live';
      charts.set(sensor, c);
      chartsEl.querySelector('.loading')?.remove();
      const after = [...chartsEl.children].find((x) => (x as HTMLElement).dataset.sensor! > sensor);
      chartsEl.insertBefore(c.el, after ?? null);
    }
    return c;
  };

  const sub: LiveSubscription = live.subscribe(
    { site, line, machine },
    {
      onBackfill(b, reset) {
        if (reset) for (const c of charts.values()) c.clear();
        for (const r of b.latest) units.set(r.sensor, r.unit);
        for (const s of b.series) {
          const c = chart(s.sensor);
          for (const [ts, v] of s.points) c.addValue(ts, v);
        }
        for (const s of b.scores) {
          const c = chart(s.sensor);
          for (const p of s.points) c.addScore(p[0], p[1], p[2], p[3], p[4], p[5]);
        }
        // Past alerts in the range first (oldest to newest), then the open ones: the newest state wins.
        for (const a of b.alertHistory ?? []) {
          const prev = seenAlerts.get(a.fingerprint);
          if (!prev || prev.updatedAt <= a.updatedAt) seenAlerts.set(a.fingerprint, a);
        }
        for (const a of b.alerts) seenAlerts.set(a.fingerprint, a);
        for (const s of b.latestScores) if (s.kind === 'sensor' && `${s.site}/${s.line}/${s.machine}` === key) chart(s.sensor).warmingUp = s.warmingUp;
        if (b.series.length === 0 && charts.size === 0) chartsEl.innerHTML = '<p class="muted loading">No data for this machine in this range yet.</p>';
      },
      onLive(p) {
        for (const r of p.readings ?? []) {
          if (`${r.site}/${r.line}/${r.machine}` !== key) continue;
          if (!units.has(r.sensor)) units.set(r.sensor, r.unit);
          chart(r.sensor).addValue(r.ts, r.value);
        }
        for (const s of p.scores ?? []) {
          if (s.kind !== 'sensor' || `${s.site}/${s.line}/${s.machine}` !== key) continue;
          const c = chart(s.sensor);
          c.addScore(s.ts, s.value, s.predicted, s.lower, s.upper, s.likelihood);
          c.warmingUp = s.warmingUp;
        }
        for (const a of p.alerts ?? []) if (`${a.site}/${a.line}/${a.machine}` === key) seenAlerts.set(a.fingerprint, a);
      },
      onError(code, message) {
        chartsEl.innerHTML = `<p class="error">Could not load this machine (${esc(code)}): ${esc(message)}</p>`;
      },
    },
    { windowMs: range.windowMs, maxPoints: 1200 },
  );

  const onResize = () => charts.forEach((c) => c.resize());
  window.addEventListener('resize', onResize);
  let alertsSig = '';

  return {
    el,
    update(now) {
      const m = model.machines.get(key);
      const health = m ? model.health(m, now, live.hello?.staleAfterMs ?? 15_000) : 'unknown';
      const hp = el.querySelector('.machine-health') as HTMLElement;
      hp.className = `pill machine-health health-${health}`;
      hp.textContent = HEALTH_TEXT[health];
      el.dataset.health = health;
      const w = m ? model.worstScore(m) : null;
      (el.querySelector('.machine-score b') as HTMLElement).textContent = w && Number.isFinite(w.likelihood) ? `${Math.round(w.likelihood * 100)}%${w.sensor && w.likelihood >= 0.7 ? ` (${w.sensor})` : ''}` : w?.warmingUp ? 'model learning' : '—';
      const open = sortAlerts(model.alertsOf(key));
      for (const a of open) seenAlerts.set(a.fingerprint, a);
      const sig = open.map((a) => `${a.fingerprint}@${a.updatedAt}`).join('|') + `#${Math.floor(now / 10_000)}`;
      if (sig !== alertsSig) {
        alertsSig = sig;
        alertsEl.replaceChildren(...open.map((a) => alertRow(a, live, now, { showMachine: false })));
      }
      for (const c of charts.values()) {
        c.alerts = [...seenAlerts.values()].filter((a) => !a.sensor || a.sensor === c.sensor);
        c.render(now);
      }
    },
    destroy() {
      sub.close();
      window.removeEventListener('resize', onResize);
      charts.forEach((c) => c.destroy());
    },
  };
}
