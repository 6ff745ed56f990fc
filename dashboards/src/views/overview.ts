/** Plant overview: every machine a tile coloured by health, with its worst score, values, alerts. */
import type { LiveClient } from '../live.ts';
import { WARN_LIKELIHOOD, fmtAge, fmtValue, type Health, type MachineState, type PlantModel } from '../model.ts';
import { esc, type View } from './common.ts';

const HEALTH_TEXT: Record<Health, string> = { ok: 'Running normally', warning: 'Warning', critical: 'Critical', stale: 'No data', unknown: 'Waiting for data' };
const MAX_VALUES = 4;

export function overviewView(model: PlantModel, live: LiveClient): View {
  const el = document.createElement('main');
  el.className = 'overview';
  el.innerHTML = `<div class="summary" aria-live="polite"></div><div class="attention" aria-live="polite"></div><div class="lines"></div>`;
  const summary = el.querySelector('.summary') as HTMLElement;
  const attention = el.querySelector('.attention') as HTMLElement;
  const linesEl = el.querySelector('.lines') as HTMLElement;
  const tiles = new Map<string, HTMLAnchorElement>();
  const lineEls = new Map<string, HTMLElement>();

  function tileFor(m: MachineState): HTMLAnchorElement {
    let t = tiles.get(m.key);
    if (t) return t;
    const lineKey = `${m.site}/${m.line}`;
    let lineEl = lineEls.get(lineKey);
    if (!lineEl) {
      lineEl = document.createElement('section');
      lineEl.className = 'line';
      lineEl.innerHTML = `<h2>${esc(m.site)} <span class="muted">›</span> ${esc(m.line)}</h2><div class="tiles"></div>`;
      lineEls.set(lineKey, lineEl);
      const sorted = [...lineEls.entries()].sort((a, b) => a[0].localeCompare(b[0]));
      linesEl.replaceChildren(...sorted.map(([, e]) => e));
    }
    t = document.createElement('a');
    t.className = 'tile';
    t.href = `#/machine/${encodeURIComponent(m.site)}/${encodeURIComponent(m.line)}/${encodeURIComponent(m.machine)}`;
    t.dataset.machine = m.key;
    t.innerHTML = `
      <div class="tile-head"><span class="tile-name"></span><span class="tile-alerts"></span></div>
      <div class="tile-score"><span class="tile-score-label">Anomaly</span><span class="tile-score-value"></span><span class="tile-score-sensor"></span></div>
      <ul class="tile-values"></ul>
      <div class="tile-foot"><span class="tile-health"></span><span class="tile-age"></span></div>`;
    (t.querySelector('.tile-name') as HTMLElement).textContent = m.machine;
    tiles.set(m.key, t);
    const grid = lineEl.querySelector('.tiles') as HTMLElement;
    const after = [...grid.children].find((c) => (c as HTMLElement).dataset.machine! > m.key);
    grid.insertBefore(t, after ?? null);
    return t;
  }

  return {
    el,
    update(now) {
      const staleAfter = live.hello?.staleAfterMs ?? 15_000;
      const counts: Record<Health, number> = { ok: 0, warning: 0, critical: 0, stale: 0, unknown: 0 };
      const needy: { m: MachineState; health: Health }[] = [];
      for (const m of model.machines.values()) {
        const t = tileFor(m);
        const health = model.health(m, now, staleAfter);
        counts[health]++;
        if (health === 'critical' || health === 'warning' || health === 'stale') needy.push({ m, health });
        if (t.dataset.health !== health) {
          t.dataset.health = health;
          t.className = `tile health-${health}`;
        }
        const alerts = model.alertsOf(m.key);
        const unacked = alerts.filter((a) => !a.acknowledgedBy).length;
        (t.querySelector('.tile-alerts') as HTMLElement).textContent = alerts.length ? `${alerts.length} alert${alerts.length > 1 ? 's' : ''}${unacked ? '' : ' ✔'}` : '';
        t.dataset.alerts = String(alerts.length);
        const w = model.worstScore(m);
        const sv = t.querySelector('.tile-score-value') as HTMLElement;
        sv.textContent = Number.isFinite(w.likelihood) ? `${Math.round(w.likelihood * 100)}%` : w.warmingUp ? 'model learning…' : '—';
        sv.classList.toggle('learning', !Number.isFinite(w.likelihood));
        (t.querySelector('.tile-score-sensor') as HTMLElement).textContent = w.likelihood >= WARN_LIKELIHOOD && w.sensor ? w.sensor : '';
        t.dataset.score = Number.isFinite(w.likelihood) ? w.likelihood.toFixed(3) : '';
        const values = [...m.sensors.values()].filter((r) => Number.isFinite(r.value)).sort((a, b) => a.sensor.localeCompare(b.sensor));
        const ul = t.querySelector('.tile-values') as HTMLElement;
        const html = values
          .slice(0, MAX_VALUES)
          .map((r) => `<li><span>${esc(r.sensor)}</span><b>${esc(fmtValue(r.value, r.unit))}</b></li>`)
          .join('') + (values.length > MAX_VALUES ? `<li class="muted">+${values.length - MAX_VALUES} more sensors</li>` : '');
        if (ul.innerHTML !== html) ul.innerHTML = html;
        (t.querySelector('.tile-health') as HTMLElement).textContent = HEALTH_TEXT[health];
        (t.querySelector('.tile-age') as HTMLElement).textContent = m.lastSeen ? `${fmtAge(now - m.lastSeen)} ago` : '';
      }
      const n = model.machines.size;
      // Big plants: smaller tiles, and the machines needing attention named up top, so a problem is
      // visible on a wall screen even when its tile is below the fold.
      el.classList.toggle('compact', n > 24);
      const rank: Record<string, number> = { critical: 0, warning: 1, stale: 2 };
      needy.sort((a, b) => rank[a.health] - rank[b.health] || a.m.key.localeCompare(b.m.key));
      const att = n > 12 && needy.length
        ? `<span class="muted">Needs attention:</span> ` + needy.map(({ m, health }) => `<a class="pill health-${health}" href="#/machine/${encodeURIComponent(m.site)}/${encodeURIComponent(m.line)}/${encodeURIComponent(m.machine)}">${esc(m.machine)}</a>`).join(' ')
        : '';
      if (attention.innerHTML !== att) attention.innerHTML = att;
      const open = model.alerts.size;
      summary.innerHTML = n === 0
        ? `<span class="muted">Waiting for machines to report…</span>`
        : `<b>${n}</b> machine${n === 1 ? '' : 's'}` +
          (counts.critical ? ` <span class="pill health-critical">${counts.critical} critical</span>` : '') +
          (counts.warning ? ` <span class="pill health-warning">${counts.warning} warning</span>` : '') +
          (counts.stale ? ` <span class="pill health-stale">${counts.stale} no data</span>` : '') +
          (counts.ok || n === counts.ok ? ` <span class="pill health-ok">${counts.ok} normal</span>` : '') +
          ` <a class="summary-alerts" href="#/alerts">${open} open alert${open === 1 ? '' : 's'}</a>`;
    },
    destroy() {},
  };
}
