/**
 * Issue 3: a bad config (unknown key, wrong type, unreachable server) makes `plantwatch start` exit
 * with a one-line explanation naming the key, not a stack trace.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { freePorts } from '../helpers/processes.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'pw-badconfig-'));

function startWith(args: string[], env: Record<string, string>) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'bin/plantwatch.ts', ...args, 'start'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', PLANTWATCH_DATA_DIR: join(dir, 'data'), ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, stderr: r.stderr.trim(), stdout: r.stdout };
}

const cases: { name: string; args?: string[]; env?: Record<string, string>; expect: RegExp }[] = [
  {
    name: 'an unknown key in the config file',
    args: ['--config', (() => { const f = join(dir, 'unknown.yaml'); writeFileSync(f, 'gateway:\n  prot: 8080\n'); return f; })()],
    expect: /^plantwatch: invalid config: gateway\.prot: unknown key .*unknown\.yaml\)$/,
  },
  {
    name: 'a value of the wrong type',
    env: { PLANTWATCH_GATEWAY__PORT: '"eighty"' },
    expect: /^plantwatch: invalid config: gateway\.port: .*number.*\(from env PLANTWATCH_GATEWAY__PORT\)$/,
  },
  {
    name: 'an unreachable Kafka cluster',
    env: { KAFKA_BROKERS: '127.0.0.1:1' },
    expect: /^plantwatch: invalid config: kafka\.brokers \(KAFKA_BROKERS\): cannot reach 127\.0\.0\.1:1 \(ECONNREFUSED\)$/,
  },
  {
    name: 'an unreachable InfluxDB',
    env: { INFLUX_URL: 'http://127.0.0.1:1/plantwatch' },
    expect: /^plantwatch: invalid config: influx\.url \(INFLUX_URL\): cannot reach 127\.0\.0\.1:1 \(ECONNREFUSED\)$/,
  },
  {
    name: 'an unreachable MQTT broker',
    env: { MQTT_URL: 'mqtt://127.0.0.1:1' },
    expect: /^plantwatch: invalid config: mqtt\.url \(MQTT_URL\): cannot reach 127\.0\.0\.1:1 \(ECONNREFUSED\)$/,
  },
];

describe('e2e > bad config', () => {
  for (const c of cases) {
    it(`exits 2 with one line for ${c.name}`, () => {
      const r = startWith(c.args ?? [], c.env ?? {});
      expect(r.stderr).toMatch(c.expect);
      expect(r.stderr.split('\n')).toHaveLength(1);
      expect(r.stderr).not.toMatch(/\bat .*\.ts:\d+/);
      expect(r.code).toBe(2);
    });
  }

  it('exits 2 naming the setting when a port is already taken (a second npm start, another server on 8080)', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '0.0.0.0', r));
    const port = (taken.address() as { port: number }).port;
    try {
      const env: Record<string, string> = { PLANTWATCH_GATEWAY__PORT: String(port) };
      const keys = ['BROKER__PORT', 'BROKER__HTTP_PORT', 'EDGE__EMBEDDED__PORT', 'EDGE__HTTP_PORT', 'ANOMALY__HTTP_PORT', 'STORAGE__HTTP_PORT', 'ALERTS__HTTP_PORT'];
      const ports = await freePorts(keys.length);
      keys.forEach((key, i) => (env[`PLANTWATCH_${key}`] = String(ports[i])));
      const r = startWith([], env);
      expect(r.stderr).toBe(
        `plantwatch: invalid config: gateway.port (PLANTWATCH_GATEWAY__PORT): 0.0.0.0:${port} is already in use (another Plantwatch or another server is listening there); stop it or choose a free port`,
      );
      expect(r.code).toBe(2);
    } finally {
      taken.close();
    }
  });

  it('exits 2 before starting anything when two settings share a port', () => {
    const r = startWith([], { PLANTWATCH_EDGE__HTTP_PORT: '8080' });
    expect(r.stderr).toBe('plantwatch: invalid config: edge.httpPort and gateway.port are both set to port 8080: each listener needs its own port');
    expect(r.code).toBe(2);
  });
});
