import { describe, expect, it } from 'vitest';
import { ConfigError } from '../common/errors.ts';
import { PlatformConfig } from './config.schema.ts';
import { checkPortClashes, envNameOf, explainListenError, listenerPorts } from './ports.ts';

const defaults = PlatformConfig.parse({}) as unknown as Record<string, unknown>;
const ALL = ['broker', 'edge', 'anomaly', 'storage', 'alerts', 'gateway', 'simulator'];

describe('platform > listener ports', () => {
  it('finds every default listener port under the started components, none disabled', () => {
    const ports = listenerPorts(defaults, ALL);
    const byPath = Object.fromEntries(ports.map((p) => [p.path, p.port]));
    expect(byPath['gateway.port']).toBe(8080);
    expect(byPath['broker.port']).toBe(9092);
    expect(byPath['edge.embedded.port']).toBe(1883);
    // The MQTT WebSocket listener is disabled by default, so its port is not a listener.
    expect(Object.keys(byPath).some((k) => k.startsWith('edge.embedded.ws'))).toBe(false);
    // The defaults never clash with each other.
    expect(() => checkPortClashes(ports)).not.toThrow();
  });

  it('only looks at the components being started', () => {
    const ports = listenerPorts(defaults, ['gateway']);
    expect(ports.every((p) => p.path.startsWith('gateway.'))).toBe(true);
  });

  it('refuses two listeners on one port before anything starts, naming both keys', () => {
    const config = PlatformConfig.parse({ edge: { httpPort: 8080 } }) as unknown as Record<string, unknown>;
    expect(() => checkPortClashes(listenerPorts(config, ALL))).toThrow(ConfigError);
    expect(() => checkPortClashes(listenerPorts(config, ALL))).toThrow(/edge\.httpPort and gateway\.port are both set to port 8080/);
  });

  it('names the setting and its env variable when a port is already in use', () => {
    const ports = listenerPorts(defaults, ALL);
    const err = Object.assign(new Error('listen EADDRINUSE: address already in use 0.0.0.0:8080'), { code: 'EADDRINUSE', port: 8080, address: '0.0.0.0' });
    const explained = explainListenError(err, ports);
    expect(explained).toBeInstanceOf(ConfigError);
    expect((explained as Error).message).toBe(
      'invalid config: gateway.port (PLANTWATCH_GATEWAY__PORT): 0.0.0.0:8080 is already in use (another Plantwatch or another server is listening there); stop it or choose a free port',
    );
  });

  it('reads the port from the message of an error relayed from a worker thread', () => {
    const relayed = new Error('listen EADDRINUSE: address already in use :::9092');
    const explained = explainListenError(relayed, listenerPorts(defaults, ALL)) as Error;
    expect(explained).toBeInstanceOf(ConfigError);
    expect(explained.message).toMatch(/^invalid config: broker\.port \(PLANTWATCH_BROKER__PORT\): :::9092 is already in use/);
  });

  it('leaves other errors alone', () => {
    const other = new Error('boom');
    expect(explainListenError(other, [])).toBe(other);
  });

  it('spells env names the way the config loader reads them', () => {
    expect(envNameOf('edge.embedded.port')).toBe('PLANTWATCH_EDGE__EMBEDDED__PORT');
    expect(envNameOf('alerts.httpPort')).toBe('PLANTWATCH_ALERTS__HTTP_PORT');
  });
});
