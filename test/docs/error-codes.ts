/**
 * Static scan for the stable error/reason codes the platform emits, and a parser for docs/errors.md.
 * Used by errors.test.ts (the doc must list exactly the emitted codes); `npx tsx test/docs/error-codes.ts`
 * prints what the scan finds, per component, to help update the doc.
 *
 * Extraction rule. Source = every `.ts` file of the repository except node_modules, dot-folders, tests
 * (`*.test.ts`, `test/`, `test-support/`, `testing.ts`), fixtures (`testdata/`, `testcases/`), `bench/`
 * and build output. Whole-line comments are ignored. A code is an upper-case string literal of at least
 * four characters not ending in `_` (`/^[A-Z][A-Z0-9_]{2,}[A-Z0-9]$/`; `'HTTP_' + status` is a prefix, not a
 * code) found in one of these places:
 *   1. the first argument of `new <Something>Error(…)` (PlatformError and every subclass, plain Error
 *      used as a socket `connect_error`), of `super(…)` (ConfigError's fixed code) or of a dead-letter helper (`deadLetter(…)`, `dead(…)`,
 *      `sendDeadLetter(…)`);
 *   2. the value of a `code` or `error` property or a `code =` assignment (dead letters, REST/socket
 *      error bodies, log fields);
 *   3. the values, and the keys that map to an object, of an exported code table
 *      `export const <NAME> = {…} | […]` whose NAME ends in ERRORS, CODES or DEAD_LETTER
 *      (services/storage/errors.ts, services/alerts/errors.ts, services/gateway/errors.ts, edge/decode.ts);
 *   4. in services/kafka-broker, every `ErrorCode.<NAME>` other than NONE: the Kafka protocol error
 *      codes the embedded broker answers with.
 * In 1 and 2 the whole argument/value expression counts, so both arms of `cond ? 'A' : 'B'` are codes;
 * a literal right after `===`/`!==` is a comparison (`err.code === 'ENOENT'`) and does not count.
 * A code belongs to the component of its file: `services/<name>` or the first folder (`edge`, `common`…).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

export const CODE_SHAPE = /^[A-Z][A-Z0-9_]{2,}[A-Z0-9]$/;

export interface Emission {
  code: string;
  component: string;
  /** `path:line`, for messages. */
  at: string;
  rule: 'constructor' | 'property' | 'table' | 'kafka';
}

const SKIP_DIRS = new Set(['node_modules', 'test', 'test-support', 'testdata', 'testcases', 'fixtures', 'bench', 'dist', 'data', 'test-artifacts']);

export function sourceFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue;
      if (e.isDirectory()) {
        if (!SKIP_DIRS.has(e.name)) walk(join(dir, e.name));
      } else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.d.ts') && e.name !== 'testing.ts') {
        out.push(join(dir, e.name));
      }
    }
  };
  walk(root);
  return out.sort();
}

export function componentOf(relPath: string): string {
  const parts = relPath.split(/[\\/]/);
  return parts[0] === 'services' && parts.length > 2 ? `services/${parts[1]}` : parts[0];
}

/** Blanks whole-line `//` comments and JSDoc/block comment lines, keeping line numbers. */
function withoutCommentLines(text: string): string {
  return text
    .split('\n')
    .map((l) => (/^\s*(\/\/|\/\*|\*)/.test(l) ? '' : l))
    .join('\n');
}

/** Index just past the string literal that starts at `i` (quote char at text[i]). */
function skipString(text: string, i: number): number {
  const q = text[i];
  let j = i + 1;
  while (j < text.length && text[j] !== q) {
    if (text[j] === '\\') j++;
    else if (q !== '`' && text[j] === '\n') break;
    j++;
  }
  return j + 1;
}

/**
 * The expression starting at `start` up to the first `,` `;` or closing bracket at depth 0 (or a
 * newline once something was read), returned as [from, to).
 */
function expressionSpan(text: string, start: number, maxLen = 400): [number, number] {
  let i = start;
  while (i < text.length && /\s/.test(text[i])) i++;
  const from = i;
  let depth = 0;
  while (i < text.length && i - from < maxLen) {
    const c = text[i];
    if (c === "'" || c === '"' || c === '`') {
      i = skipString(text, i);
      continue;
    }
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') {
      if (depth === 0) break;
      depth--;
    } else if (depth === 0 && (c === ',' || c === ';' || c === '\n')) break;
    i++;
  }
  return [from, i];
}

/** Code-shaped single/double-quoted literals in [from, to), except those right after `===`/`!==`/`==`. */
function codeLiterals(text: string, from: number, to: number): { code: string; index: number }[] {
  const out: { code: string; index: number }[] = [];
  let i = from;
  while (i < to) {
    const c = text[i];
    if (c === "'" || c === '"' || c === '`') {
      const end = skipString(text, i);
      const value = text.slice(i + 1, end - 1);
      const before = text.slice(Math.max(0, i - 4), i).trimEnd();
      if (c !== '`' && CODE_SHAPE.test(value) && !/[=!]=$/.test(before)) out.push({ code: value, index: i });
      i = end;
      continue;
    }
    i++;
  }
  return out;
}

function lineAt(text: string, index: number): number {
  let n = 1;
  for (let i = 0; i < index; i++) if (text.charCodeAt(i) === 10) n++;
  return n;
}

/** Codes emitted by one source file (see the extraction rule above). */
export function extractCodes(relPath: string, source: string): Emission[] {
  const text = withoutCommentLines(source);
  const component = componentOf(relPath);
  const out: Emission[] = [];
  const add = (code: string, index: number, rule: Emission['rule']): void => {
    out.push({ code, component, at: `${relPath.split(sep).join('/')}:${lineAt(text, index)}`, rule });
  };

  // 1. First argument of `new XxxError(` and of dead-letter helpers.
  for (const m of text.matchAll(/\bnew\s+(?:[A-Z]\w*)?Error\s*\(|\bsuper\s*\(|\b(?:deadLetter|dead|sendDeadLetter)\s*\(/g)) {
    const [from, to] = expressionSpan(text, m.index + m[0].length);
    for (const l of codeLiterals(text, from, to)) add(l.code, l.index, 'constructor');
  }
  // 2. `code:` / `error:` property values and `code =` assignments (not `code ===`).
  for (const m of text.matchAll(/\b(?:code|error)\s*:(?!:)|\bcode\s*=(?![=>])/g)) {
    const [from, to] = expressionSpan(text, m.index + m[0].length);
    for (const l of codeLiterals(text, from, to)) add(l.code, l.index, 'property');
  }
  // 3. Exported code tables.
  for (const m of text.matchAll(/\bexport\s+const\s+([A-Z][A-Z0-9_]*(?:ERRORS|CODES|DEAD_LETTER))\s*(?::[^=]+)?=\s*/g)) {
    const open = m.index + m[0].length;
    if (text[open] !== '{' && text[open] !== '[') continue;
    let depth = 0;
    let close = open;
    for (let i = open; i < text.length; i++) {
      const c = text[i];
      if (c === "'" || c === '"' || c === '`') {
        i = skipString(text, i) - 1;
        continue;
      }
      if (c === '{' || c === '[' || c === '(') depth++;
      else if ((c === '}' || c === ']' || c === ')') && --depth === 0) {
        close = i;
        break;
      }
    }
    for (const l of codeLiterals(text, open, close)) add(l.code, l.index, 'table');
    const body = text.slice(open, close);
    for (const k of body.matchAll(/(?<=[\s{,])([A-Z][A-Z0-9_]{3,})\s*:\s*\{/g)) add(k[1], open + k.index, 'table');
  }
  // 4. Kafka protocol error codes answered by the embedded broker.
  if (component === 'services/kafka-broker') {
    for (const m of text.matchAll(/\bErrorCode\.([A-Z][A-Z0-9_]+)/g)) if (m[1] !== 'NONE') add(m[1], m.index, 'kafka');
  }
  return out;
}

export function scanRepository(root: string): Emission[] {
  return sourceFiles(root).flatMap((f) => extractCodes(relative(root, f), readFileSync(f, 'utf8')));
}

export interface DocSection {
  /** `services/storage`, `edge`, … (from the backticked folder in the `##` heading). */
  component: string;
  heading: string;
  /** Every code listed in the first column of the section's tables, with its line in the doc. */
  codes: { code: string; line: number }[];
}

export interface ErrorsDoc {
  sections: DocSection[];
  /** Codes under `## Retired codes`: never to be emitted again. */
  retired: { code: string; line: number }[];
}

/**
 * docs/errors.md format: each component has a `## <Title> (`<folder>/`)` section; every table row
 * whose first cell holds backticked codes documents those codes for that component. Rows under
 * `## Retired codes` list codes that are no longer emitted and must never come back.
 */
export function parseErrorsDoc(markdown: string): ErrorsDoc {
  const sections: DocSection[] = [];
  const retired: ErrorsDoc['retired'] = [];
  let current: { codes: DocSection['codes'] } | null = null;
  markdown.split('\n').forEach((line, i) => {
    const h = /^##\s+(.*)$/.exec(line);
    if (h) {
      if (/^retired codes/i.test(h[1].trim())) {
        current = { codes: retired };
        return;
      }
      const folder = /`([a-z0-9/_-]+)\/`/.exec(h[1]);
      if (folder) {
        const section: DocSection = { component: folder[1], heading: h[1].trim(), codes: [] };
        sections.push(section);
        current = section;
      } else current = null;
      return;
    }
    if (!current || !line.startsWith('|')) return;
    const firstCell = line.split('|')[1] ?? '';
    for (const m of firstCell.matchAll(/`([^`]+)`/g)) {
      if (CODE_SHAPE.test(m[1])) current.codes.push({ code: m[1], line: i + 1 });
    }
  });
  return { sections, retired };
}

export interface Mismatch {
  undocumented: { code: string; component: string; at: string[] }[];
  notEmitted: { code: string; component: string; line: number }[];
  missingSections: string[];
  duplicates: { code: string; component: string; line: number }[];
  retiredButEmitted: { code: string; component: string; at: string[] }[];
}

/** Compares per component: a code must be documented in the section of the component that emits it. */
export function compare(emissions: Emission[], doc: ErrorsDoc): Mismatch {
  const emitted = new Map<string, Map<string, string[]>>();
  for (const e of emissions) {
    const byCode = emitted.get(e.component) ?? new Map<string, string[]>();
    emitted.set(e.component, byCode);
    byCode.set(e.code, [...(byCode.get(e.code) ?? []), e.at]);
  }
  const documented = new Map<string, Set<string>>();
  const result: Mismatch = { undocumented: [], notEmitted: [], missingSections: [], duplicates: [], retiredButEmitted: [] };
  for (const s of doc.sections) {
    const set = documented.get(s.component) ?? new Set<string>();
    documented.set(s.component, set);
    for (const c of s.codes) {
      if (set.has(c.code)) result.duplicates.push({ code: c.code, component: s.component, line: c.line });
      set.add(c.code);
      if (!emitted.get(s.component)?.has(c.code)) result.notEmitted.push({ code: c.code, component: s.component, line: c.line });
    }
  }
  const retired = new Set(doc.retired.map((r) => r.code));
  for (const [component, byCode] of emitted) {
    if (!documented.has(component)) result.missingSections.push(component);
    for (const [code, at] of byCode) {
      if (!documented.get(component)?.has(code)) result.undocumented.push({ code, component, at });
      if (retired.has(code)) result.retiredButEmitted.push({ code, component, at });
    }
  }
  return result;
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const emissions = scanRepository(process.cwd());
  const byComponent = new Map<string, Map<string, Set<string>>>();
  for (const e of emissions) {
    const m = byComponent.get(e.component) ?? new Map<string, Set<string>>();
    byComponent.set(e.component, m);
    m.set(e.code, (m.get(e.code) ?? new Set()).add(e.at));
  }
  for (const [component, codes] of [...byComponent].sort()) {
    console.log(`${component} (${codes.size})`);
    for (const [code, at] of [...codes].sort()) console.log(`  ${code.padEnd(34)} ${[...at].join(' ')}`);
  }
}
