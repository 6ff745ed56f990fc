/**
 * The dashboard on the whole platform (`startPlatform`: embedded Kafka broker, edge + aedes, anomaly,
 * storage, alerts, gateway, demo simulator), in headless Chromium: the printed link signs in, the
 * overview lists every demo machine with live values, a machine's charts update live, a fault
 * injected into the simulator raises an alert (a threshold rule on the overheating bearing) that
 * turns the tile red, and the operator acknowledges it through the alert service.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { describeWith } from '../helpers/integration.ts';
import { launchBrowser, type LaunchedBrowser } from '../helpers/browser.ts';
import { startTestPlatform } from '../e2e/harness.ts';
import type { PlatformConfigInput } from '../../platform/config.schema.ts';

const ARTIFACTS = join(import.meta.dirname, '..', '..', 'test-artifacts');

describeWith(['chromium'], 'test > browser > platform', () => {
  let p: Awaited<ReturnType<typeof startTestPlatform>>;
  let browser: LaunchedBrowser;
  let page: Page;
  const errors: string[] = [];

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    p = await startTestPlatform({
      overrides: {
        simulator: { enabled: true, faults: { random: { enabled: false } } },
        alerts: { rules: [{ id: 'bearing-hot', type: 'threshold', severity: 'critical', scope: { machine: 'pump-1', sensor: 'bearing_temp' }, above: 56, forMs: 0 }] },
      } as PlatformConfigInput,
    });
    browser = await launchBrowser({ width: 1600, height: 1000 });
    page = await browser.context.newPage();
    page.on('pageerror', (e) => errors.push(e.message));
  }, 90_000);
  afterAll(async () => {
    await browser?.close();
    await p?.dispose();
  });

  it('signs in from the printed link and shows every demo machine with live values', async () => {
    expect(p.dashboardUrl).toMatch(/\/\?token=demo-/);
    await page.goto(p.dashboardUrl!);
    await expect.poll(() => page.locator('.tile').count(), { timeout: 30_000 }).toBe(5);
    await expect.poll(() => page.locator('.tile[data-health=ok]').count(), { timeout: 30_000 }).toBe(5);
    const values = page.locator('.tile[data-machine="demo/line-1/pump-1"] .tile-values');
    const before = await values.textContent();
    await expect.poll(() => values.textContent(), { timeout: 10_000 }).not.toBe(before);
  });

  it('opens a machine and its charts update live', async () => {
    await page.click('.tile[data-machine="demo/line-1/pump-1"]');
    await page.waitForSelector('.chart-card[data-sensor=bearing_temp] canvas');
    const chart = page.locator('.chart-card[data-sensor=bearing_temp]');
    const last = Number(await chart.getAttribute('data-last-ts'));
    await expect.poll(async () => Number(await chart.getAttribute('data-last-ts')), { timeout: 10_000 }).toBeGreaterThan(last);
    await page.click('.btn-back');
  });

  it('turns the tile red on an injected fault, and the operator acknowledges the alert', async () => {
    p.components.simulator!.injectFault({ kind: 'overheating', machine: 'pump-1', severity: 5, durationS: 300 });
    const tile = page.locator('.tile[data-machine="demo/line-1/pump-1"]');
    await expect.poll(() => tile.getAttribute('data-health'), { timeout: 90_000 }).toBe('critical');
    await page.screenshot({ path: join(ARTIFACTS, 'platform-overview.png') });
    await tile.click();
    await page.waitForSelector('.machine-alerts .alert-row.sev-critical .btn-ack');
    await page.waitForTimeout(1500);
    await page.screenshot({ path: join(ARTIFACTS, 'platform-machine.png') });
    await page.click('.machine-alerts .btn-ack');
    await expect.poll(() => page.textContent('.machine-alerts .alert-row'), { timeout: 15_000 }).toContain('acknowledged by demo');
    const alerts = await p.components.alerts!.list({ machine: 'pump-1' });
    expect(alerts.find((a) => a.rule === 'bearing-hot')?.acknowledgedBy).toBe('demo');
    expect(errors).toEqual([]);
  });
});
