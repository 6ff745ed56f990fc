import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../common/logger.ts';
import type { Score } from '../../common/messages.ts';
import { createRegistry } from '../../common/metrics.ts';
import { AlertsConfig } from './config.schema.ts';
import { Journal } from './journal.ts';
import { AlertService } from './service.ts';
import { DEFAULT_RULES, Rule, fingerprintOf, globToRegExp, inScope } from './rules.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'plantwatch-alerts-journal-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('services > alerts > journal', () => {
  it('replays ops after the snapshot and ignores a torn last line', () => {
    const j = new Journal(dir);
    expect(j.load()).toEqual({ state: null, ops: [], skippedLines: 0 });
    j.append({ t: 'a', n: 1 });
    j.compact({ upTo: 1 });
    j.append({ t: 'a', n: 2 });
    j.close();
    appendFileSync(join(dir, 'journal.jsonl'), '{"s":3,"o":{"t":"a","n"'); // crash mid-write
    const again = new Journal(dir);
    const loaded = again.load();
    expect(loaded.state).toEqual({ upTo: 1 });
    expect(loaded.ops.map((o) => o.op)).toEqual([{ t: 'a', n: 2 }]);
    expect(loaded.skippedLines).toBe(1);
    expect(again.append({ t: 'a', n: 3 })).toBe(3);
    again.close();
  });

  it('skips ops the snapshot already holds (crash between snapshot and truncation)', () => {
    const j = new Journal(dir);
    j.load();
    j.append({ t: 'a', n: 1 });
    j.append({ t: 'a', n: 2 });
    j.close();
    writeFileSync(join(dir, 'snapshot.json'), JSON.stringify({ seq: 2, state: 'both' }));
    const again = new Journal(dir);
    const loaded = again.load();
    expect(loaded).toMatchObject({ state: 'both', ops: [] });
    again.close();
  });

  it('refuses to start on a damaged snapshot rather than forget every alert', () => {
    writeFileSync(join(dir, 'snapshot.json'), '{garbage');
    expect(() => new Journal(dir).load()).toThrow(expect.objectContaining({ code: 'ALERTS_STATE_CORRUPT' }));
  });

  it('the service state survives compaction and a restart', async () => {
    const cfg = AlertsConfig.parse({ rules: [{ id: 'anom', type: 'likelihood', threshold: 0.9 }], stateDir: dir });
    const make = () => new AlertService({ config: cfg, dataDir: '/nonexistent', logger: silentLogger(), metrics: createRegistry('alerts'), compactAfterOps: 10 });
    const a = make();
    const s = (sensor: string, likelihood: number): Score => ({
      kind: 'sensor', site: 's', line: 'l', machine: 'm', sensor, ts: 1, value: 1, predicted: 1, lower: 0, upper: 2, rawScore: 1, likelihood, modelVersion: 'v', warmingUp: false,
    });
    for (let i = 0; i < 30; i++) a.ingestScore(s(`x${i}`, 0.95));
    a.tick(); // compacts: more than 10 ops
    expect(a.journal.size.ops).toBe(0);
    a.ingestScore(s('late', 0.99));
    await a.acknowledge(fingerprintOf('anom', { site: 's', line: 'l', machine: 'm', sensor: 'x3' }), 'ana');
    await a.close();
    const b = make();
    const open = await b.list({ limit: 100 });
    expect(open).toHaveLength(31);
    expect(open.find((x) => x.sensor === 'x3')?.acknowledgedBy).toBe('ana');
    await b.close();
  });
});

describe('services > alerts > rules and config', () => {
  it('the default config is a working config with the shipped rule set', () => {
    const cfg = AlertsConfig.parse({});
    expect(cfg.httpPort).toBe(9104);
    expect(cfg.receivers).toEqual([]);
    expect(cfg.grouping.by).toEqual(['site', 'line', 'machine']);
    expect(cfg.rules.map((r) => [r.id, r.type, r.severity])).toEqual([
      ['anomaly-warning', 'likelihood', 'warning'],
      ['anomaly-critical', 'likelihood', 'critical'],
      ['machine-offline', 'deadman', 'critical'],
      ['sensor-no-data', 'deadman', 'warning'],
      ['intake-silent', 'deadman', 'critical'],
    ]);
    expect(cfg.rules[0]).toMatchObject({ threshold: 0.9, forMs: 30_000 });
    expect(cfg.rules[2]).toMatchObject({ afterMs: 60_000, per: 'machine' });
    expect(DEFAULT_RULES).toHaveLength(5);
  });

  it('rejects unknown keys, bad secrets and rules without a limit', () => {
    expect(AlertsConfig.safeParse({ nope: 1 }).success).toBe(false);
    expect(AlertsConfig.safeParse({ receivers: [{ name: 'a', url: 'http://x', secret: 'plain' }] }).success).toBe(false);
    expect(AlertsConfig.safeParse({ receivers: [{ name: 'a', url: 'ftp://x' }] }).success).toBe(false);
    expect(Rule.safeParse({ id: 'x', type: 'threshold' }).success).toBe(false);
    expect(AlertsConfig.safeParse({ rules: [{ id: 'a', type: 'deadman' }, { id: 'a', type: 'deadman' }] }).success).toBe(false);
    expect(AlertsConfig.safeParse({ receivers: [{ name: 'a', url: 'http://x' }, { name: 'a', url: 'http://y' }] }).success).toBe(false);
    expect(Rule.safeParse({ id: 'x', type: 'likelihood', threshold: 2 }).success).toBe(false);
    expect(Rule.safeParse({ id: 'x', type: 'deadman', scope: { machine: 'press(' } }).success).toBe(false);
  });

  it('scope globs: *, ? and | alternatives; dots are literal', () => {
    expect(globToRegExp('press-*').test('press-12')).toBe(true);
    expect(globToRegExp('m?').test('m12')).toBe(false);
    expect(globToRegExp('temp|vib*').test('vib_x')).toBe(true);
    expect(globToRegExp('a.b').test('axb')).toBe(false);
    const scope = Rule.parse({ id: 'x', type: 'deadman', scope: { site: 'north', sensor: 'temp*' } }).scope;
    expect(inScope(scope, { site: 'north', line: 'l', machine: 'm', sensor: 'temp_1' })).toBe(true);
    expect(inScope(scope, { site: 'south', line: 'l', machine: 'm', sensor: 'temp_1' })).toBe(false);
    expect(inScope(scope, { site: 'north', line: 'l', machine: 'm' })).toBe(true);
  });

  it('fingerprints are stable and distinguish rule and target', () => {
    const t = { site: 's', line: 'l', machine: 'm', sensor: 'a' };
    expect(fingerprintOf('r', t)).toBe(fingerprintOf('r', { ...t }));
    expect(fingerprintOf('r', t)).toMatch(/^[0-9a-f]{16}$/);
    expect(fingerprintOf('r', t)).not.toBe(fingerprintOf('r2', t));
    expect(fingerprintOf('r', t)).not.toBe(fingerprintOf('r', { ...t, sensor: undefined }));
  });
});
