import type { Alert } from '../../../common/messages.ts';
import type { LiveClient } from '../live.ts';
import { fmtAge } from '../model.ts';

export interface View {
  el: HTMLElement;
  /** Called on data changes (throttled to animation frames) and once a second. */
  update(now: number): void;
  destroy(): void;
}

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export function toast(text: string, kind: 'error' | 'ok' = 'error'): void {
  const t = document.createElement('div');
  t.className = `toast toast-${kind}`;
  t.setAttribute('role', 'status');
  t.textContent = text;
  document.body.appendChild(t);
  setTimeout(() => t.remove(), 5000);
}

/** One alert as a row: severity, where, what, since when, acknowledge (operators only). */
export function alertRow(a: Alert, live: LiveClient, now: number, opts: { showMachine: boolean }): HTMLElement {
  const row = document.createElement('div');
  row.className = `alert-row sev-${a.severity}${a.acknowledgedBy ? ' acked' : ''}`;
  row.dataset.fingerprint = a.fingerprint;
  const where = `${a.machine}${a.sensor ? ` · ${a.sensor}` : ''}`;
  const ack = a.acknowledgedBy
    ? `<span class="ack-state">✔ acknowledged by ${esc(a.acknowledgedBy)}${a.acknowledgedAt ? ` · ${fmtAge(now - a.acknowledgedAt)} ago` : ''}</span>`
    : live.hello?.user.role === 'operator'
      ? `<button class="btn btn-ack" type="button">Acknowledge</button>`
      : `<span class="ack-state muted">not acknowledged</span>`;
  row.innerHTML = `
    <span class="sev-pill">${esc(a.severity.toUpperCase())}</span>
    <div class="alert-main">
      <div class="alert-summary">${esc(a.summary)}</div>
      <div class="alert-meta">${opts.showMachine ? `<a href="#/machine/${encodeURIComponent(a.site)}/${encodeURIComponent(a.line)}/${encodeURIComponent(a.machine)}">${esc(where)}</a> · ` : a.sensor ? `${esc(a.sensor)} · ` : ''}${esc(a.status)} for ${fmtAge(now - a.startsAt)}${a.value !== null ? ` · value ${esc(String(+a.value.toFixed(3)))}` : ''}</div>
    </div>
    <div class="alert-ack">${ack}</div>`;
  const btn = row.querySelector('.btn-ack') as HTMLButtonElement | null;
  btn?.addEventListener('click', async () => {
    btn.disabled = true;
    btn.textContent = 'Acknowledging…';
    try {
      const res = await live.acknowledge(a.fingerprint);
      if (!res.ok) throw new Error(res.error.message);
      toast(`Acknowledged: ${a.summary}`, 'ok');
    } catch (e) {
      btn.disabled = false;
      btn.textContent = 'Acknowledge';
      toast(`Could not acknowledge: ${(e as Error).message}`);
    }
  });
  return row;
}

export function sortAlerts(alerts: Alert[]): Alert[] {
  const rank: Record<string, number> = { critical: 0, warning: 1, info: 2 };
  return alerts.sort((a, b) => Number(!!a.acknowledgedBy) - Number(!!b.acknowledgedBy) || rank[a.severity] - rank[b.severity] || b.startsAt - a.startsAt);
}
