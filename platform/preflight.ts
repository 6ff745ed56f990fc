/**
 * Start-up reachability checks for external servers. A wrong KAFKA_BROKERS / INFLUX_URL / MQTT_URL
 * must stop the platform with one line naming the key and the address, not a stack trace after a
 * minute of client retries.
 */
import { connect } from 'node:net';
import { ConfigError } from '../common/errors.ts';

export function tcpReachable(host: string, port: number, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (err: string | null) => {
      socket.destroy();
      resolve(err);
    };
    socket.setTimeout(timeoutMs, () => done(`no answer within ${timeoutMs} ms`));
    socket.once('connect', () => done(null));
    socket.once('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
  });
}

export interface PreflightTargets {
  kafkaBrokers: string[];
  mqttUrl: string;
  influxUrl: string;
}

/** Throws ConfigError for the first unreachable server. Empty settings mean embedded: nothing to check. */
export async function preflight(t: PreflightTargets, timeoutMs = 3000): Promise<void> {
  const checks: { key: string; host: string; port: number; shown: string }[] = [];
  for (const b of t.kafkaBrokers) {
    const i = b.lastIndexOf(':');
    checks.push({ key: 'kafka.brokers (KAFKA_BROKERS)', host: b.slice(0, i), port: Number(b.slice(i + 1)), shown: b });
  }
  if (t.mqttUrl) {
    const u = new URL(t.mqttUrl);
    const secure = u.protocol === 'mqtts:' || u.protocol === 'ssl:' || u.protocol === 'wss:';
    checks.push({ key: 'mqtt.url (MQTT_URL)', host: u.hostname, port: Number(u.port || (secure ? 8883 : 1883)), shown: `${u.hostname}:${u.port || (secure ? 8883 : 1883)}` });
  }
  if (t.influxUrl) {
    const u = new URL(t.influxUrl);
    checks.push({ key: 'influx.url (INFLUX_URL)', host: u.hostname, port: Number(u.port || (u.protocol === 'https:' ? 443 : 8086)), shown: u.host || u.hostname });
  }
  const results = await Promise.all(checks.map(async (c) => ({ c, err: await tcpReachable(c.host, c.port, timeoutMs) })));
  const failed = results.find((r) => r.err !== null);
  if (failed) {
    throw new ConfigError(`invalid config: ${failed.c.key}: cannot reach ${failed.c.shown} (${failed.err})`, { key: failed.c.key });
  }
}
