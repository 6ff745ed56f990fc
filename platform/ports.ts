/**
 * Listener ports in the config, so that a port clash names the setting to change. The commonest
 * first-run failure is "address already in use" (a second `npm start`, a local Mosquitto on 1883,
 * another dev server on 8080); Node's message says which address but not which Plantwatch setting
 * opened it, nor how to change it.
 */
import { ConfigError } from '../common/errors.ts';

export interface ListenerPort {
  /** Config key, e.g. `gateway.port`. */
  path: string;
  port: number;
}

const isPortKey = (key: string): boolean => key === 'port' || key.endsWith('Port');

/**
 * Every non-zero port setting under the given config sections. Objects with `enabled: false` are
 * skipped (a disabled WebSocket listener does not bind its port).
 */
export function listenerPorts(config: Record<string, unknown>, sections: readonly string[]): ListenerPort[] {
  const out: ListenerPort[] = [];
  const walk = (value: unknown, path: string[]): void => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return;
    const obj = value as Record<string, unknown>;
    if (obj.enabled === false) return;
    for (const [key, v] of Object.entries(obj)) {
      if (isPortKey(key) && typeof v === 'number' && Number.isInteger(v) && v > 0) out.push({ path: [...path, key].join('.'), port: v });
      else walk(v, [...path, key]);
    }
  };
  for (const s of sections) walk(config[s], [s]);
  return out;
}

/** The environment variable that overrides a config key (see common/config/load.ts). */
export function envNameOf(path: string): string {
  return `PLANTWATCH_${path
    .split('.')
    .map((p) => p.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase())
    .join('__')}`;
}

/** Two components configured to listen on the same port can never both start: say so before starting any. */
export function checkPortClashes(ports: readonly ListenerPort[]): void {
  const byPort = new Map<number, string[]>();
  for (const p of ports) byPort.set(p.port, [...(byPort.get(p.port) ?? []), p.path]);
  for (const [port, paths] of byPort) {
    if (paths.length > 1) throw new ConfigError(`invalid config: ${paths.join(' and ')} are ${paths.length === 2 ? 'both' : 'all'} set to port ${port}: each listener needs its own port`, { port, keys: paths });
  }
}

/**
 * Turns a listen error with EADDRINUSE into a ConfigError naming the setting(s) that asked for that
 * port; any other error is returned unchanged. Errors relayed from a worker thread keep only their
 * message, so the port is also read from Node's "address already in use HOST:PORT" text.
 */
export function explainListenError(err: unknown, ports: readonly ListenerPort[]): unknown {
  const e = err as { code?: unknown; port?: unknown; address?: unknown; message?: unknown };
  const message = typeof e?.message === 'string' ? e.message : '';
  if (e?.code !== 'EADDRINUSE' && !message.includes('EADDRINUSE')) return err;
  let port = typeof e.port === 'number' ? e.port : NaN;
  let address = typeof e.address === 'string' ? e.address : '';
  const m = /address already in use\s+(\S*?):(\d+)\s*$/.exec(message);
  if (m) {
    if (!Number.isFinite(port)) port = Number(m[2]);
    if (!address) address = m[1];
  }
  const keys = ports.filter((p) => p.port === port).map((p) => p.path);
  const where = address ? `${address}:${port}` : `port ${port}`;
  const hint = 'another Plantwatch or another server is listening there';
  if (keys.length === 0) return new ConfigError(`cannot listen on ${where}: address already in use (${hint})`, { port });
  const named = keys.map((k) => `${k} (${envNameOf(k)})`).join(' / ');
  return new ConfigError(`invalid config: ${named}: ${where} is already in use (${hint}); stop it or choose a free port`, { port, keys });
}
