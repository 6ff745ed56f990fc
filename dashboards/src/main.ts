/**
 * App shell: sign-in, the top bar (navigation, connection state, clock, user), the stale/offline
 * banner and a hash router over the overview, machine and alert views.
 */
import './style.css';
import { api, type Me } from './api.ts';
import { LiveClient } from './live.ts';
import { PlantModel, fmtAge, fmtTime } from './model.ts';
import { renderLogin } from './views/login.ts';
import { overviewView } from './views/overview.ts';
import { machineView, type RangeId } from './views/machine.ts';
import { alertsView } from './views/alerts.ts';
import { esc, type View } from './views/common.ts';

const root = document.getElementById('app')!;

async function boot(): Promise<void> {
  // `/?token=…` (the link printed by `npm start`) signs in and drops the token from the address bar.
  const params = new URLSearchParams(location.search);
  const token = params.get('token');
  if (token) {
    history.replaceState(null, '', location.pathname + location.hash);
    try {
      await api.loginToken(token);
    } catch {
      renderLogin(root, () => location.reload(), 'The token in the link is not valid.');
      return;
    }
  }
  let me: Me;
  try {
    me = await api.me();
  } catch {
    renderLogin(root, () => location.reload());
    return;
  }
  startApp(me);
}

function startApp(me: Me): void {
  const live = new LiveClient();
  const model = new PlantModel();
  // The whole plant, newest values only: feeds tiles, the alert count and machine health everywhere.
  live.subscribe({}, { onBackfill: (b, reset) => model.applyBackfill(b, reset), onLive: (p) => model.applyLive(p) });

  root.innerHTML = `
    <header class="topbar">
      <a class="brand" href="#/"><span class="brand-mark" aria-hidden="true"></span>Plantwatch</a>
      <nav class="nav"><a href="#/" data-nav="overview">Plant</a><a href="#/alerts" data-nav="alerts">Alerts <span class="count"></span></a></nav>
      <div class="spacer"></div>
      <span class="conn" role="status"></span>
      <span class="clock"></span>
      <span class="user">${esc(me.name)} <span class="role">${esc(me.role)}</span></span>
      <button class="btn btn-logout" type="button">Sign out</button>
    </header>
    <div class="banner" role="alert" hidden></div>
    <div class="view"></div>`;
  const viewEl = root.querySelector('.view') as HTMLElement;
  const banner = root.querySelector('.banner') as HTMLElement;
  const conn = root.querySelector('.conn') as HTMLElement;
  const clock = root.querySelector('.clock') as HTMLElement;
  const count = root.querySelector('.nav .count') as HTMLElement;
  root.querySelector('.btn-logout')!.addEventListener('click', async () => {
    await api.logout().catch(() => undefined);
    live.close();
    location.hash = '';
    location.reload();
  });

  let view: View | null = null;
  const route = () => {
    view?.destroy();
    const [path, query] = location.hash.replace(/^#/, '').split('?');
    const parts = (path || '/').split('/').filter(Boolean).map(decodeURIComponent);
    const range = (new URLSearchParams(query ?? '').get('range') ?? 'live') as RangeId;
    if (parts[0] === 'machine' && parts.length === 4) view = machineView(model, live, parts[1], parts[2], parts[3], range);
    else if (parts[0] === 'alerts') view = alertsView(model, live);
    else view = overviewView(model, live);
    viewEl.replaceChildren(view.el);
    root.querySelectorAll('[data-nav]').forEach((a) => a.classList.toggle('active', (a as HTMLElement).dataset.nav === (parts[0] === 'alerts' ? 'alerts' : parts[0] ? '' : 'overview')));
    scheduled = false;
    frame();
  };

  let scheduled = false;
  let seenVersion = -1;
  const frame = () => {
    scheduled = false;
    const now = live.now();
    view?.update(now);
    seenVersion = model.version;
    renderChrome(now);
  };
  const schedule = () => {
    if (!scheduled) {
      scheduled = true;
      requestAnimationFrame(frame);
    }
  };
  // Live data arrives in bursts; draw at most once per frame, and at least once a second for ages.
  setInterval(() => model.version !== seenVersion && schedule(), 100);
  setInterval(schedule, 1000);
  live.onChange(schedule);
  window.addEventListener('hashchange', route);

  function renderChrome(now: number): void {
    const open = model.alerts.size;
    count.textContent = open ? String(open) : '';
    count.className = `count${[...model.alerts.values()].some((a) => a.severity === 'critical' && !a.acknowledgedBy) ? ' critical' : ''}`;
    clock.textContent = fmtTime(now);
    let state: 'live' | 'connecting' | 'offline' | 'stale' | 'unauthorized' = live.state === 'live' ? 'live' : live.state;
    if (state === 'live' && live.status?.live.stale) state = 'stale';
    document.body.dataset.conn = state;
    conn.className = `conn conn-${state}`;
    conn.textContent = { live: '● Live', connecting: '● Connecting', offline: '● Offline', stale: '● Stale', unauthorized: '● Signed out' }[state];
    let text = '';
    if (state === 'offline') {
      const since = live.disconnectedAt ?? Date.now();
      text = `Connection to the server lost ${fmtAge(Date.now() - since)} ago — reconnecting. Values on screen are from ${fmtTime(since + live.clockSkew)} and are NOT live.`;
    } else if (state === 'unauthorized') {
      text = 'Your session has ended. Reload the page to sign in again.';
    } else if (state === 'stale') {
      const last = live.status?.live.lastMessageAt;
      text = last ? `No live data has reached the server for ${fmtAge(now - last)} — sensors or the data pipeline may be down. Values may be out of date.` : 'No live data has reached the server yet — waiting for the data pipeline.';
    }
    banner.hidden = text === '';
    banner.className = `banner banner-${state}`;
    if (banner.textContent !== text) banner.textContent = text;
  }

  route();
}

void boot();
