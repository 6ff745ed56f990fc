/**
 * Configuration loading: one YAML/JSON file, then environment overrides, validated with zod.
 * Errors name the key, say what was expected and where the value came from, in one line, so a
 * bad config exits with an explanation instead of a stack trace.
 *
 * Environment overrides:
 * - the well-known variables in ENV_ALIASES (KAFKA_BROKERS, INFLUX_URL, MQTT_URL, …);
 * - any key as `PLANTWATCH_<SECTION>__<KEY>`: `__` separates levels and SNAKE_CASE becomes
 *   camelCase, e.g. `PLANTWATCH_GATEWAY__HTTP_PORT=8081` sets `gateway.httpPort`. Values are parsed
 *   as JSON when they are valid JSON (numbers, booleans, arrays), else taken as strings.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../errors.ts';

type Path = string[];
interface EnvAlias {
  path: Path;
  parse?: (raw: string) => unknown;
}

const commaList = (raw: string) =>
  raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

export const ENV_ALIASES: Record<string, EnvAlias> = {
  KAFKA_BROKERS: { path: ['kafka', 'brokers'], parse: commaList },
  INFLUX_URL: { path: ['influx', 'url'] },
  MQTT_URL: { path: ['mqtt', 'url'] },
  LOG_LEVEL: { path: ['log', 'level'] },
  PLANTWATCH_DATA_DIR: { path: ['dataDir'] },
  PLANTWATCH_HTTP_PORT: { path: ['http', 'port'], parse: Number },
};

const ENV_PREFIX = 'PLANTWATCH_';

function snakeToCamel(s: string): string {
  return s.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function parseEnvValue(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

function setPath(target: Record<string, unknown>, path: Path, value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (next === undefined || next === null || typeof next !== 'object' || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]] = value;
}

export interface LoadOptions {
  /** Path of a YAML or JSON config file; optional. */
  file?: string;
  env?: Record<string, string | undefined>;
  /** Applied last: programmatic overrides (tests, CLI flags). */
  overrides?: Record<string, unknown>;
}

function deepMerge(base: Record<string, unknown>, extra: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(extra)) {
    const b = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b)
        ? deepMerge(b as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as Record<string, unknown>)) deepFreeze(v);
  }
  return value;
}

/** Reads, overrides and validates; throws ConfigError with a one-line message. */
export function loadConfig<S extends z.ZodType>(schema: S, opts: LoadOptions = {}): z.infer<S> {
  let raw: Record<string, unknown> = {};
  const sources = new Map<string, string>();
  if (opts.file) {
    let text: string;
    try {
      text = readFileSync(opts.file, 'utf8');
    } catch (err) {
      throw new ConfigError(`config file ${opts.file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
    let parsed: unknown;
    try {
      parsed = parseYaml(text) ?? {};
    } catch (err) {
      throw new ConfigError(`config file ${opts.file} is not valid YAML/JSON: ${(err as Error).message.split('\n')[0]}`);
    }
    if (typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new ConfigError(`config file ${opts.file} must contain a mapping of sections, got ${Array.isArray(parsed) ? 'a list' : typeof parsed}`);
    }
    raw = parsed as Record<string, unknown>;
  }
  const env = opts.env ?? {};
  for (const [name, alias] of Object.entries(ENV_ALIASES)) {
    const v = env[name];
    if (v === undefined || v === '') continue;
    setPath(raw, alias.path, alias.parse ? alias.parse(v) : v);
    sources.set(alias.path.join('.'), `env ${name}`);
  }
  for (const [name, v] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || v === undefined || name in ENV_ALIASES) continue;
    const path = name.slice(ENV_PREFIX.length).split('__').map(snakeToCamel);
    if (path.some((p) => p === '')) continue;
    setPath(raw, path, parseEnvValue(v));
    sources.set(path.join('.'), `env ${name}`);
  }
  if (opts.overrides) raw = deepMerge(raw, opts.overrides);

  const result = schema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0];
    const path = issue.path.map(String);
    let key = path.join('.') || '(root)';
    let message = issue.message;
    if (issue.code === 'unrecognized_keys') {
      const keys = (issue as { keys: string[] }).keys;
      key = [...path, keys[0]].join('.');
      message = `unknown key (not part of the ${path.join('.') || 'top-level'} section)`;
    }
    const from = sources.get(path.join('.')) ?? (opts.file ? `file ${opts.file}` : 'defaults');
    const more = result.error.issues.length > 1 ? ` (+${result.error.issues.length - 1} more)` : '';
    throw new ConfigError(`invalid config: ${key}: ${message} (from ${from})${more}`, { key });
  }
  return deepFreeze(result.data);
}
