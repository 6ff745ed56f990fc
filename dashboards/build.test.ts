import { describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildDashboard, dashboardIsStale, ensureDashboardBuilt } from './build.ts';

describe('dashboards > build', () => {
  it('builds with Vite, then rebuilds only when sources are newer than the build', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pw-dist-'));
    const out = join(dir, 'dist');
    try {
      expect(dashboardIsStale(out)).toBe(true);
      const first = await buildDashboard(out);
      expect(first.built).toBe(true);
      const html = readFileSync(join(out, 'index.html'), 'utf8');
      const js = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
      expect(js).toBeTruthy();
      const bundle = readFileSync(join(out, js!), 'utf8');
      expect(bundle.includes('u-over')).toBe(true); // uPlot's overlay class: the charts come from uPlot, bundled
      expect(dashboardIsStale(out)).toBe(false);
      expect((await ensureDashboardBuilt(out)).built).toBe(false);
      const past = new Date(Date.now() - 365 * 86400_000);
      utimesSync(join(out, '.build-stamp'), past, past);
      expect(dashboardIsStale(out)).toBe(true);
      expect((await ensureDashboardBuilt(out)).built).toBe(true);
      expect(existsSync(`${out}.tmp-${process.pid}`)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
