/**
 * docs/errors.md must list exactly the codes the source emits, per component (Fastify's
 * errors.md-vs-code test). The extraction rule is documented in ./error-codes.ts.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compare, extractCodes, parseErrorsDoc, scanRepository, type Emission } from './error-codes.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DOC_PATH = join(ROOT, 'docs', 'errors.md');

const emissions = scanRepository(ROOT);
const doc = parseErrorsDoc(readFileSync(DOC_PATH, 'utf8'));
const codesOf = (list: Emission[], component: string): string[] => [...new Set(list.filter((e) => e.component === component).map((e) => e.code))].sort();

describe('docs > errors.md', () => {
  it('the scan finds the codes of every component (the extraction still works)', () => {
    // One known code per kind of emission: if a refactor hides codes from the scan, this fails
    // before the comparison below could pass on an empty set.
    const has = (component: string, code: string, rule: Emission['rule']) =>
      emissions.some((e) => e.component === component && e.code === code && e.rule === rule);
    expect(has('common', 'CONFIG_INVALID', 'constructor')).toBe(true);
    expect(has('edge', 'READING_INVALID', 'property')).toBe(true);
    expect(has('services/storage', 'STORAGE_WRITE_REJECTED', 'table')).toBe(true);
    expect(has('services/gateway', 'GATEWAY_UI_MISSING', 'table')).toBe(true);
    expect(has('services/anomaly', 'DETECTOR_FAILED', 'constructor')).toBe(true);
    expect(has('services/kafka-broker', 'UNKNOWN_TOPIC_OR_PARTITION', 'kafka')).toBe(true);
    expect(has('simulators', 'SIM_MQTT_CONNECT', 'constructor')).toBe(true);
  });

  it('every component that emits codes has a section', () => {
    expect(compare(emissions, doc).missingSections).toEqual([]);
  });

  it('every emitted code is documented under its component', () => {
    const missing = compare(emissions, doc).undocumented.map((u) => `${u.component}: ${u.code} (emitted at ${u.at.join(', ')})`);
    expect(missing, 'add these rows to docs/errors.md').toEqual([]);
  });

  it('every documented code is still emitted by its component', () => {
    const stale = compare(emissions, doc).notEmitted.map((n) => `${n.component}: ${n.code} (docs/errors.md:${n.line})`);
    expect(stale, 'no longer emitted: move these rows to "Retired codes" (codes are never reused)').toEqual([]);
  });

  it('no code is listed twice in a section', () => {
    expect(compare(emissions, doc).duplicates).toEqual([]);
  });

  it('retired codes are never emitted again', () => {
    const reused = compare(emissions, doc).retiredButEmitted.map((r) => `${r.component}: ${r.code} (at ${r.at.join(', ')})`);
    expect(reused, 'codes are never reused: pick a new code').toEqual([]);
  });

  it('Kafka protocol codes carry the number the broker sends', () => {
    const table = readFileSync(join(ROOT, 'services/kafka-broker/src/protocol/errors.ts'), 'utf8');
    const numbers = new Map([...table.matchAll(/^\s+([A-Z_]+): (-?\d+),$/gm)].map((m) => [m[1], Number(m[2])]));
    const rows = [...readFileSync(DOC_PATH, 'utf8').matchAll(/^\| `([A-Z_]+)` \((-?\d+)\) \|/gm)];
    expect(rows.length).toBe(codesOf(emissions, 'services/kafka-broker').filter((c) => numbers.has(c)).length);
    for (const [, name, n] of rows) expect({ name, n: Number(n) }).toEqual({ name, n: numbers.get(name) });
  });
});

describe('docs > errors.md > extraction rule', () => {
  const src = `
    throw new PlatformError('FAKE_THROWN', 'boom', { retriable: false });
    super('FAKE_SUPER', message, { retriable: false });
    throw new PlatformError(
      err.code === 'ENOENT' ? 'FAKE_MISSING' : 'FAKE_CORRUPT',
      'x', { retriable: false });
    out.push(deadLetter('FAKE_DEAD', 'reason', source, raw, now));
    rejects.push({ code: 'FAKE_PROPERTY', reason: 'r' });
    sendJson(res, 503, { error: 'FAKE_BODY', message: 'm' });
    const code = ok ? 'FAKE_ASSIGNED' : 'FAKE_OTHER';
    if (err.code === 'NOT_EMITTED_COMPARED') return;
    const label = 'NOT_EMITTED_PLAIN';
    // rejects.push({ code: 'NOT_EMITTED_COMMENT' });
    const built = { code: 'HTTP_' + status };
    export const FAKE_ERRORS = { a: 'FAKE_TABLE_VALUE', FAKE_TABLE_KEY: { status: 400, message: 'NOT_EMITTED_MESSAGE x' } } as const;
    res.errorCode = ErrorCode.FAKE_KAFKA;
    res.errorCode = ErrorCode.NONE;
  `;

  it('takes codes from constructors, dead-letter helpers, code/error properties and code tables only', () => {
    const found = extractCodes('services/demo/x.ts', src).map((e) => e.code);
    expect([...new Set(found)].sort()).toEqual(
      ['FAKE_ASSIGNED', 'FAKE_BODY', 'FAKE_CORRUPT', 'FAKE_DEAD', 'FAKE_MISSING', 'FAKE_OTHER', 'FAKE_PROPERTY', 'FAKE_SUPER', 'FAKE_TABLE_KEY', 'FAKE_TABLE_VALUE', 'FAKE_THROWN'].sort(),
    );
    expect(extractCodes('services/kafka-broker/src/x.ts', src).filter((e) => e.rule === 'kafka').map((e) => e.code)).toEqual(['FAKE_KAFKA']);
  });

  // The comparison on a small doc of its own, so these tests fail only if the comparison breaks.
  const miniDoc = parseErrorsDoc(
    ['## Storage (`services/storage/`)', '| code | where |', '|---|---|', '| `STORAGE_A` | log |', '| `STORAGE_B` | log |', '## Simulators (`simulators/`)', '| code |', '|---|', '| `SIM_A` |', '## Retired codes', '| code |', '|---|', '| `STORAGE_OLD` |'].join('\n'),
  );
  const emit = (file: string, code: string) => extractCodes(file, `throw new PlatformError('${code}', 'x', { retriable: false });`);
  const inSync = [...emit('services/storage/a.ts', 'STORAGE_A'), ...emit('services/storage/b.ts', 'STORAGE_B'), ...emit('simulators/a.ts', 'SIM_A')];

  it('passes when doc and source agree', () => {
    expect(compare(inSync, miniDoc)).toEqual({ undocumented: [], notEmitted: [], missingSections: [], duplicates: [], retiredButEmitted: [] });
  });

  it('reports a new code that is not documented, and a documented code that is gone', () => {
    const r = compare([...inSync.filter((e) => e.code !== 'STORAGE_B'), ...emit('services/storage/new.ts', 'STORAGE_NEW')], miniDoc);
    expect(r.undocumented.map((u) => `${u.component}:${u.code}:${u.at.join()}`)).toEqual(['services/storage:STORAGE_NEW:services/storage/new.ts:1']);
    expect(r.notEmitted.map((n) => `${n.component}:${n.code}`)).toEqual(['services/storage:STORAGE_B']);
  });

  it('reports a code documented under another component than the one emitting it', () => {
    const r = compare([...inSync.filter((e) => e.code !== 'SIM_A'), ...emit('edge/a.ts', 'SIM_A')], miniDoc);
    expect(r.missingSections).toEqual(['edge']);
    expect(r.undocumented.map((u) => `${u.component}:${u.code}`)).toEqual(['edge:SIM_A']);
    expect(r.notEmitted.map((n) => `${n.component}:${n.code}`)).toEqual(['simulators:SIM_A']);
  });

  it('reports a retired code that is emitted again and a code listed twice', () => {
    expect(compare([...inSync, ...emit('services/storage/c.ts', 'STORAGE_OLD')], miniDoc).retiredButEmitted.map((r) => r.code)).toEqual(['STORAGE_OLD']);
    const twice = parseErrorsDoc('## S (`simulators/`)\n| `SIM_A` |\n| `SIM_A` |\n');
    expect(compare(emit('simulators/a.ts', 'SIM_A'), twice).duplicates.map((d) => d.code)).toEqual(['SIM_A']);
  });
});
