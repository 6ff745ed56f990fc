/**
 * The README is part of the contract: its example receiver must accept our signatures and refuse
 * tampered or replayed ones, and every metric and error code in the code must be documented.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { createRegistry } from '../../common/metrics.ts';
import { ALERTS_DEAD_LETTER, ALERTS_ERRORS, ALERTS_REST_ERRORS } from './errors.ts';
import { alertsMetrics } from './metrics.ts';
import { signedHeaders } from './webhook.ts';

const README = readFileSync(join(import.meta.dirname, 'README.md'), 'utf8');

describe('services > alerts > README', () => {
  it('the example receiver verifies real signatures and rejects tampered and replayed requests', async () => {
    const code = /Example receiver[\s\S]*?```js\n([\s\S]*?)```/.exec(README)?.[1];
    expect(code).toBeDefined();
    expect(code).toContain('.listen(8099)');
    const dir = mkdtempSync(join(tmpdir(), 'plantwatch-readme-'));
    const file = join(dir, 'receiver.mjs');
    // Same code, but on an ephemeral port that it reports.
    writeFileSync(file, code!.replace('.listen(8099)', ".listen(0, function () { console.log('PORT ' + this.address().port); })"));
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    const child = spawn(process.execPath, [file], { env: { ...process.env, WEBHOOK_SECRET: secret }, stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const lines = createInterface({ input: child.stdout! });
      const output: string[] = [];
      const port = await new Promise<number>((resolve, reject) => {
        lines.on('line', (l) => {
          output.push(l);
          const m = /^PORT (\d+)$/.exec(l);
          if (m) resolve(Number(m[1]));
        });
        child.once('exit', (c) => reject(new Error(`receiver exited ${c}`)));
      });
      const body = JSON.stringify({ status: 'firing', groupKey: 'site=a,line=b,machine=c', alerts: [{ rule: 'anomaly', status: 'firing' }] });
      const now = Math.floor(Date.now() / 1000);
      const post = (b: string, ts: number) => fetch(`http://127.0.0.1:${port}/`, { method: 'POST', headers: { ...signedHeaders(secret, 'msg_readme', ts, body) }, body: b });
      expect((await post(body, now)).status).toBe(204);
      expect((await post(body.replace('firing', 'resolved'), now)).status).toBe(401);
      expect((await post(body, now - 600)).status).toBe(401);
      await new Promise((r) => setTimeout(r, 100));
      expect(output.some((l) => l.includes('anomaly:firing'))).toBe(true);
    } finally {
      child.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('documents every metric', async () => {
    const registry = createRegistry('alerts');
    alertsMetrics(registry);
    const names = (await registry.getMetricsAsJSON()).map((m) => m.name);
    expect(names.length).toBeGreaterThan(10);
    for (const name of names) expect(README, name).toContain(`\`${name}\``);
  });

  it('documents every error, dead-letter and REST code', () => {
    for (const table of [ALERTS_ERRORS, ALERTS_DEAD_LETTER, ALERTS_REST_ERRORS]) {
      for (const code of Object.values(table)) expect(README, code).toContain(`\`${code}\``);
    }
  });

  it('uses no error code outside the tables', () => {
    const known = new Set<string>([...Object.values(ALERTS_ERRORS), ...Object.values(ALERTS_DEAD_LETTER), ...Object.values(ALERTS_REST_ERRORS)]);
    const codes = new Set<string>();
    for (const f of readdirSync(import.meta.dirname).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))) {
      const src = readFileSync(join(import.meta.dirname, f), 'utf8');
      for (const m of src.matchAll(/'([A-Z][A-Z_]{3,})'/g)) if (m[1].includes('_') || ['UNAUTHORIZED'].includes(m[1])) codes.add(m[1]);
    }
    for (const code of codes) expect(known.has(code), code).toBe(true);
  });
});
