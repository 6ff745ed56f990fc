/**
 * Topic mapping: MQTT topic patterns with named wildcards (`plant/{site}/{line}/{machine}/{sensor}`)
 * → variables, Kafka topic and record key. Patterns are compiled once; matching is a split and a
 * walk, no regex per message.
 */
import type { MappingRule } from './config.schema.ts';

export interface CompiledRule {
  rule: MappingRule;
  /** Literal level, or a named single-level capture, or an anonymous `+`. */
  levels: ({ literal: string } | { name: string | null })[];
  /** Trailing `#`: any number of further levels (kept as `rest`). */
  multi: boolean;
  keyParts: ({ literal: string } | { name: string })[];
}

export interface TopicMatch {
  rule: MappingRule;
  vars: Record<string, string>;
  /** Levels matched by a trailing `#`. */
  rest: string[];
}

const VAR = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/;

export function compileRule(rule: MappingRule): CompiledRule {
  const parts = rule.pattern.split('/');
  let multi = false;
  if (parts[parts.length - 1] === '#') {
    multi = true;
    parts.pop();
  }
  const levels = parts.map((p) => {
    if (p === '+') return { name: null };
    const m = VAR.exec(p);
    if (m) return { name: m[1] };
    if (p.includes('#') || p.includes('+') || p.includes('{')) throw new Error(`mapping pattern ${rule.pattern}: bad level "${p}"`);
    return { literal: p };
  });
  const keyParts: CompiledRule['keyParts'] = [];
  const re = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;
  let last = 0;
  for (let m = re.exec(rule.key); m; m = re.exec(rule.key)) {
    if (m.index > last) keyParts.push({ literal: rule.key.slice(last, m.index) });
    keyParts.push({ name: m[1] });
    last = m.index + m[0].length;
  }
  if (last < rule.key.length) keyParts.push({ literal: rule.key.slice(last) });
  return { rule, levels, multi, keyParts };
}

export function matchTopic(rules: CompiledRule[], topic: string): TopicMatch | null {
  const parts = topic.split('/');
  outer: for (const c of rules) {
    if (c.multi ? parts.length < c.levels.length : parts.length !== c.levels.length) continue;
    const vars: Record<string, string> = { ...c.rule.defaults };
    for (let i = 0; i < c.levels.length; i++) {
      const l = c.levels[i];
      if ('literal' in l) {
        if (l.literal !== parts[i]) continue outer;
      } else {
        // [MQTT-4.7.1-3]-style empty levels never match a named capture: an identifier cannot be empty.
        if (parts[i] === '') continue outer;
        if (l.name) vars[l.name] = parts[i];
      }
    }
    return { rule: c.rule, vars, rest: parts.slice(c.levels.length) };
  }
  return null;
}

/** Renders the key template; a variable that is not known renders as empty. */
export function renderKey(c: CompiledRule, vars: Record<string, string>): string {
  let out = '';
  for (const p of c.keyParts) out += 'literal' in p ? p.literal : (vars[p.name] ?? '');
  return out;
}

/** MQTT topic filter match (`+`, `#`), for ACLs. */
export function filterMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') {
      // [MQTT-4.7.2-1] wildcards do not match topics beginning with `$` at the first level.
      return !(i === 0 && t[0]?.startsWith('$'));
    }
    if (i >= t.length) return false;
    if (f[i] === '+') {
      if (i === 0 && t[0].startsWith('$')) return false;
      continue;
    }
    if (f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** Is every topic `sub` can match also matched by `allowed`? (subscription ACL) */
export function filterCovers(allowed: string, sub: string): boolean {
  const a = allowed.split('/');
  const s = sub.split('/');
  for (let i = 0; i < a.length; i++) {
    if (a[i] === '#') return true;
    if (i >= s.length) return false;
    if (s[i] === '#') return false;
    if (a[i] === '+') continue;
    if (s[i] === '+' || a[i] !== s[i]) return false;
  }
  return a.length === s.length;
}
