/**
 * The dashboard in headless Chromium against a live harness plant (gateway + in-memory store and
 * alert service + a publisher): sign in, the overview fills, a machine's charts update live, an
 * injected fault turns its tile red and raises an alert, an operator acknowledges it, a viewer
 * cannot, and the stale banner shows when data stops. Screenshots go to test-artifacts/.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { describeWith } from '../test/helpers/integration.ts';
import { launchBrowser, type LaunchedBrowser } from '../test/helpers/browser.ts';
import { startHarness, type Harness } from '../test/browser/harness.ts';

const ARTIFACTS = join(import.meta.dirname, '..', 'test-artifacts');

describeWith(['chromium'], 'dashboards > browser', () => {
  let h: Harness;
  let browser: LaunchedBrowser;
  let page: Page;
  const errors: string[] = [];

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    h = await startHarness({ periodMs: 500, historyMs: 20 * 60_000 });
    browser = await launchBrowser({ width: 1600, height: 1000 });
    page = await browser.context.newPage();
    page.on('pageerror', (e) => errors.push(e.message));
  });
  afterAll(async () => {
    await browser?.close();
    await h?.close();
  });

  it('signs in with a token and fills the overview with every machine, live', async () => {
    await page.goto(`${h.url}/`);
    await page.fill('input[name=token]', 'wrong-token-123456');
    await page.click('button[type=submit]');
    await expect.poll(() => page.textContent('.login-error')).toContain('not valid');
    await page.fill('input[name=token]', h.operatorToken);
    await page.click('button[type=submit]');
    await page.waitForSelector('.tile');
    await expect.poll(() => page.locator('.tile[data-health=ok]').count(), { timeout: 15_000 }).toBe(h.machines.length);
    await expect.poll(() => page.getAttribute('body', 'data-conn')).toBe('live');
    const tile = page.locator('.tile[data-machine="plant1/machining/lathe-01"]');
    const before = await tile.locator('.tile-values').textContent();
    await expect.poll(() => tile.locator('.tile-values').textContent(), { timeout: 5000 }).not.toBe(before);
    expect(await tile.locator('.tile-values li').count()).toBe(4);
  });

  it('opens a machine whose charts show history and update live', async () => {
    await page.click('.tile[data-machine="plant1/machining/lathe-01"]');
    await page.waitForSelector('.chart-card[data-sensor=temperature] canvas');
    expect(await page.locator('.chart-card').count()).toBe(4);
    const chart = page.locator('.chart-card[data-sensor=temperature]');
    // 20 min of stored history at 5 s plus the live points.
    await expect.poll(async () => Number(await chart.getAttribute('data-points'))).toBeGreaterThan(100);
    const last = Number(await chart.getAttribute('data-last-ts'));
    await expect.poll(async () => Number(await chart.getAttribute('data-last-ts')), { timeout: 5000 }).toBeGreaterThan(last);
    await page.click('.range[data-range="1h"]');
    await expect.poll(() => page.locator('.range.active').getAttribute('data-range')).toBe('1h');
    await page.waitForSelector('.chart-card[data-sensor=temperature] canvas');
    await page.click('.btn-back');
  });

  it('turns the tile red on an injected fault, raises an alert, and lets an operator acknowledge it', async () => {
    const tile = page.locator('.tile[data-machine="plant1/machining/lathe-01"]');
    h.injectFault('lathe-01', 'temperature');
    await expect.poll(() => tile.getAttribute('data-health'), { timeout: 15_000 }).toBe('critical');
    await expect.poll(() => tile.getAttribute('data-alerts'), { timeout: 15_000 }).toBe('1');
    expect(await page.locator('.tile[data-health=critical]').count()).toBe(1);
    await page.waitForTimeout(1500); // let the pulse settle for the picture
    await page.screenshot({ path: join(ARTIFACTS, 'overview.png') });

    await tile.click();
    await page.waitForSelector('.machine-alerts .alert-row.sev-critical');
    await expect.poll(() => page.locator('.chart-card[data-sensor=temperature] .chart-score').getAttribute('class')).toContain('critical');
    await page.waitForTimeout(1000);
    await page.screenshot({ path: join(ARTIFACTS, 'machine.png') });

    await page.click('.machine-alerts .btn-ack');
    await expect.poll(() => page.textContent('.machine-alerts .alert-row'), { timeout: 10_000 }).toContain('acknowledged by olga');
    const stored = [...h.tg.alerts.byFingerprint.values()].find((a) => a.machine === 'lathe-01');
    expect(stored?.acknowledgedBy).toBe('olga');
    await page.goto(`${h.url}/#/alerts`);
    await expect.poll(() => page.textContent('.alert-list')).toContain('acknowledged by olga');
    await page.screenshot({ path: join(ARTIFACTS, 'alerts.png') });
  });

  it('shows a viewer the alert without an acknowledge button', async () => {
    const viewer = await launchBrowser({ width: 1024, height: 768 });
    try {
      const p = await viewer.context.newPage();
      await p.goto(`${h.url}/?token=${h.viewerToken}#/alerts`);
      await p.waitForSelector('.alert-row');
      expect(await p.locator('.btn-ack').count()).toBe(0);
      expect(await p.textContent('.role-note')).toContain('Read-only');
      const res = await p.evaluate(async () => (await fetch('/api/alerts/x/ack', { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } })).status);
      expect(res).toBe(403);
      await p.goto(`${h.url}/#/`);
      await p.waitForSelector('.tile');
      await p.screenshot({ path: join(ARTIFACTS, 'overview-tablet.png') });
    } finally {
      await viewer.close();
    }
  });

  it('shows the offline banner when the server drops the connection, then resumes live without losing data', async () => {
    await page.goto(`${h.url}/#/machine/plant1/stamping/press-01`);
    const chart = page.locator('.chart-card[data-sensor=pressure]');
    await page.waitForSelector('.chart-card[data-sensor=pressure] canvas');
    await expect.poll(() => page.getAttribute('body', 'data-conn')).toBe('live');
    const droppedAt = Date.now();
    h.tg.gw.io.disconnectSockets(true);
    await expect.poll(() => page.getAttribute('body', 'data-conn'), { timeout: 5000 }).toBe('offline');
    expect(await page.textContent('.banner')).toContain('NOT live');
    await page.screenshot({ path: join(ARTIFACTS, 'machine-offline.png') });
    await expect.poll(() => page.getAttribute('body', 'data-conn'), { timeout: 15_000 }).toBe('live');
    const backAt = Date.now();
    expect(backAt - droppedAt).toBeGreaterThan(1000); // really was offline for a while
    expect(await page.isVisible('.banner')).toBe(false);
    // Every reading published around and during the outage is on the chart (re-subscribed with cursors).
    await page.waitForTimeout(1500);
    const want = h.publishedTs.filter((t) => t > droppedAt - 3000 && t < backAt + 500);
    const onChart = new Set(((await chart.getAttribute('data-recent-ts')) ?? '').split(',').map(Number));
    expect(want.length).toBeGreaterThan(4);
    expect(want.filter((t) => !onChart.has(t))).toEqual([]);
  });

  it('shows a stale banner when live data stops and clears it when data returns', async () => {
    await page.goto(`${h.url}/#/`);
    await page.waitForSelector('.tile');
    h.pause();
    await expect.poll(() => page.getAttribute('body', 'data-conn'), { timeout: 15_000 }).toBe('stale');
    expect(await page.isVisible('.banner-stale')).toBe(true);
    expect(await page.textContent('.banner')).toContain('No live data');
    await page.screenshot({ path: join(ARTIFACTS, 'overview-stale.png') });
    h.resume();
    await expect.poll(() => page.getAttribute('body', 'data-conn'), { timeout: 10_000 }).toBe('live');
    expect(await page.isVisible('.banner')).toBe(false);
    expect(errors).toEqual([]);
  });
});
