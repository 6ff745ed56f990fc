/**
 * Issue 3, what a newcomer does: `plantwatch start` (what `npm start` runs) brings up the whole
 * platform with the demo plant; within 30 s the dashboard API lists the demo machines with live
 * values, every component's /metrics answers, and Ctrl-C (SIGINT) stops everything cleanly.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEMO_PLANT } from '../../simulators/index.ts';
import { freePorts, npmScriptNodeFlags } from '../helpers/processes.ts';

const ROOT = new URL('../..', import.meta.url).pathname;

const demoMachines = DEMO_PLANT.sites!.flatMap((s) => s.lines!.flatMap((l) => l.machines!.map((m) => m.id)));

describe('e2e > plantwatch start (npm start)', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'pw-npm-start-'));
  let child: ChildProcess | undefined;
  afterAll(() => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('shows the demo machines with live values within 30 s, serves /metrics per component, stops on Ctrl-C', async () => {
    const [broker, mqtt, gateway, edge, anomaly, storage, alerts, brokerOps] = await freePorts(8);
    const ports = { broker, mqtt, gateway, edge, anomaly, storage, alerts, brokerOps };
    const started = Date.now();
    child = spawn(process.execPath, [...npmScriptNodeFlags('start'), '--import', 'tsx', 'bin/plantwatch.ts', 'start'], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        PLANTWATCH_DATA_DIR: dataDir,
        PLANTWATCH_BROKER__PORT: String(ports.broker),
        PLANTWATCH_BROKER__HTTP_PORT: String(ports.brokerOps),
        PLANTWATCH_EDGE__EMBEDDED__PORT: String(ports.mqtt),
        PLANTWATCH_EDGE__HTTP_PORT: String(ports.edge),
        PLANTWATCH_ANOMALY__HTTP_PORT: String(ports.anomaly),
        PLANTWATCH_STORAGE__HTTP_PORT: String(ports.storage),
        PLANTWATCH_ALERTS__HTTP_PORT: String(ports.alerts),
        PLANTWATCH_GATEWAY__PORT: String(ports.gateway),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));

    // The printed dashboard URL carries the demo login token.
    const url = await new Promise<URL>((resolve, reject) => {
      const t = setInterval(() => {
        const m = /Dashboard:\s+(\S+)/.exec(out);
        if (m) {
          clearInterval(t);
          resolve(new URL(m[1]));
        } else if (child!.exitCode !== null || Date.now() - started > 30_000) {
          clearInterval(t);
          reject(new Error(`no dashboard URL printed (exit ${child!.exitCode}):\n${out.slice(-2000)}`));
        }
      }, 100);
    });
    const token = url.searchParams.get('token')!;
    expect(url.port).toBe(String(ports.gateway));
    expect(token).toBeTruthy();

    // Live values: newest reading per sensor of every demo machine, fresher than the start.
    let seen = new Set<string>();
    while (Date.now() - started < 30_000) {
      const res = await fetch(`http://127.0.0.1:${ports.gateway}/api/latest`, { headers: { authorization: `Bearer ${token}` } });
      if (res.ok) {
        const { latest } = (await res.json()) as { latest: { machine: string; ts: number; value: number }[] };
        seen = new Set(latest.filter((v) => v.ts >= started - 5_000 && Number.isFinite(v.value)).map((v) => v.machine));
        if (demoMachines.every((m) => seen.has(m))) break;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    expect([...seen].sort(), `live values within 30 s of start (took ${Date.now() - started} ms)`).toEqual([...demoMachines].sort());

    // The dashboard page itself is served.
    const page = await fetch(`http://127.0.0.1:${ports.gateway}/`, { headers: { authorization: `Bearer ${token}` } });
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/<html/i);

    for (const [name, port] of Object.entries({ broker: ports.brokerOps, edge: ports.edge, anomaly: ports.anomaly, storage: ports.storage, alerts: ports.alerts })) {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(res.status, name).toBe(200);
      expect(await res.text(), name).toMatch(new RegExp(`component="${name === 'broker' ? '[a-z-]+' : name}"`));
    }
    const merged = await fetch(`http://127.0.0.1:${ports.gateway}/metrics`, { headers: { authorization: `Bearer ${token}` } });
    expect(merged.status).toBe(200);

    child.kill('SIGINT');
    const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 30_000))]);
    expect(code, out.slice(-1500)).toBe(0);
    expect(out).toContain('kafka broker closed');
    expect(out).not.toContain('exiting without draining');
  }, 90_000);
});
