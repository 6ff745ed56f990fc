/** Alert list: every open alert, worst first, with acknowledge for operators. */
import type { LiveClient } from '../live.ts';
import type { PlantModel } from '../model.ts';
import { alertRow, sortAlerts, type View } from './common.ts';

export function alertsView(model: PlantModel, live: LiveClient): View {
  const el = document.createElement('main');
  el.className = 'alerts-page';
  el.innerHTML = `<h1>Open alerts</h1><p class="muted role-note"></p><div class="alert-list"></div>`;
  const list = el.querySelector('.alert-list') as HTMLElement;
  let sig = '';
  return {
    el,
    update(now) {
      (el.querySelector('.role-note') as HTMLElement).textContent = live.hello?.user.role === 'operator' ? 'You can acknowledge alerts.' : 'Read-only: sign in as an operator to acknowledge alerts.';
      const alerts = sortAlerts([...model.alerts.values()]);
      const s = alerts.map((a) => `${a.fingerprint}@${a.updatedAt}`).join('|') + `#${Math.floor(now / 10_000)}`;
      if (s === sig) return;
      sig = s;
      if (alerts.length === 0) list.innerHTML = '<p class="empty">No open alerts. All machines are within their normal range.</p>';
      else list.replaceChildren(...alerts.map((a) => alertRow(a, live, now, { showMachine: true })));
    },
    destroy() {},
  };
}
