import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLabels } from './labels.ts';
import { startAedes, type TestBroker } from './testing.ts';

const run = promisify(execFile);
const CLI = new URL('./cli.ts', import.meta.url).pathname;
const NAB = new URL('./testcases/nab/machine_temperature_system_failure.head500.csv', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'sim-cli-'));
const START = '2026-01-05T06:00:00Z';

async function cli(args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const r = await run(process.execPath, ['--import', 'tsx', CLI, ...args], { maxBuffer: 64 << 20, env: { ...process.env, LOG_LEVEL: 'silent' } });
    return { ...r, code: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

let broker: TestBroker;
beforeAll(async () => {
  broker = await startAedes();
});
afterAll(async () => {
  await broker.close();
});

describe('simulators > cli (npm run simulate)', () => {
  it('runs the demo plant to stdout in virtual time: same seed, same output; labels to a file', async () => {
    const labels = join(dir, 'labels.jsonl');
    const args = ['--output', 'stdout', '--speed', '0', '--start', START, '--duration', '20', '--seed', '5', '--no-random-faults', '--no-progress', '--json'];
    const a = await cli([...args, '--fault', 'stuck:pump-1/flow@5+10', '--labels', labels]);
    const b = await cli([...args, '--fault', 'stuck:pump-1/flow@5+10']);
    expect(a.code, a.stderr).toBe(0);
    const lines = a.stdout.trim().split('\n');
    const summary = JSON.parse(lines.pop()!) as Record<string, unknown>;
    expect(b.stdout.trim().split('\n').slice(0, -1)).toEqual(lines); // all but the summary (wall time)
    expect(summary).toMatchObject({ machines: 5, sensors: 25, readings: 500, messages: 500, errors: 0, faults: 1 });
    expect(lines).toHaveLength(500);
    const flow = lines.filter((l) => l.startsWith('plant/demo/line-1/pump-1/flow ')).map((l) => JSON.parse(l.split(' ')[1]) as { ts: number; value: number });
    const stuck = flow.filter((r) => r.ts >= Date.parse(START) + 5000 && r.ts < Date.parse(START) + 15000);
    expect(stuck).toHaveLength(10);
    expect(new Set(stuck.map((r) => r.value)).size).toBe(1);
    expect(parseLabels(readFileSync(labels, 'utf8'))).toMatchObject([{ kind: 'stuck', machineKey: 'demo/line-1/pump-1', sensor: 'flow', start: Date.parse(START) + 5000 }]);
  });

  it('load mode paces to the target rate and reports what it achieved', async () => {
    const r = await cli(['--load', '20000', '--machines', '20', '--rate-hz', '10', '--output', 'none', '--duration', '2', '--no-progress', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout) as { targetRate: number; achievedRate: number; readings: number; speed: number };
    expect(s.targetRate).toBe(20000);
    expect(s.readings).toBeGreaterThan(0);
    expect(s.readings).toBeLessThanOrEqual(20000 * 2 * 1.02); // never faster than the target
    expect(s.achievedRate).toBeGreaterThan(0);
    expect(s.speed).toBeCloseTo(20000 / (20 * 10 * 4.8), 5);
  });

  it('publishes to an MQTT broker with a progress line and a summary', async () => {
    const sub = await mqtt.connectAsync(broker.url, { clientId: 'cli-sub' });
    let received = 0;
    sub.on('message', () => received++);
    await sub.subscribeAsync('plant/#', { qos: 0 });
    const r = await cli(['--url', broker.url, '--speed', '600', '--duration', '1800', '--start', START, '--format', 'batch', '--qos', '1', '--no-random-faults']);
    await sub.endAsync();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/rate [\d,]+ readings\/s \| sent [\d,]+ readings in [\d,]+ msgs \| errors 0/);
    expect(r.stdout).toMatch(/sent +45,000 readings in [\d,]+ messages/);
    expect(r.stdout).toMatch(/errors +0/);
    expect(received).toBeGreaterThan(100);
  });

  it('replays a CSV over MQTT', async () => {
    const r = await cli(['replay', NAB, '--url', broker.url, '--speed', '0', '--site', 'nab', '--no-progress', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ rows: 500, sent: 500, skipped: 0, errors: 0 });
  });

  it('explains a bad plant file in one line and exits 2', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'sites:\n  - id: s\n    lines:\n      - id: l\n        machines:\n          - { id: m, type: pump, colour: red }\n');
    const r = await cli([bad, '--output', 'none']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([`simulate: invalid simulator config (${bad}): plant.sites.0.lines.0.machines.0.colour: unknown key`]);
    const r2 = await cli(['--fault', 'melting:pump-1', '--output', 'none']);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/^simulate: invalid --fault "melting:pump-1": kind: /);
  });
});
