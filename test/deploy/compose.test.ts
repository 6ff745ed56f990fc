/**
 * No Docker engine runs where we build, so docker-compose.yml is checked here instead: every
 * Plantwatch service runs a real CLI command, its environment passes the platform's config schema,
 * the addresses point at services that exist and listen there, and published ports match the
 * component's configured port.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../../common/config/load.ts';
import { PlatformConfig, COMPONENTS, type PlatformConfig as Config } from '../../platform/config.schema.ts';

interface Service {
  image?: string;
  build?: string;
  command?: string[];
  profiles?: string[];
  environment?: Record<string, string | number>;
  ports?: string[];
  depends_on?: Record<string, unknown>;
}
const compose = parse(readFileSync(new URL('../../docker-compose.yml', import.meta.url), 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
};
const services = compose.services;
const ours = Object.entries(services).filter(([, s]) => s.build !== undefined);
const commandFor: Record<string, string> = Object.fromEntries(COMPONENTS.map((c) => [c === 'simulator' ? 'simulate-demo' : c, c]));

function envOf(s: Service): Record<string, string> {
  return Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, String(v)]));
}
function containerPorts(s: Service): number[] {
  return (s.ports ?? []).map((p) => Number(String(p).split(':').pop()));
}
function hostPort(addr: string): { host: string; port: number } {
  const u = new URL(addr.includes('://') ? addr : `tcp://${addr}`);
  return { host: u.hostname, port: Number(u.port) };
}

describe('deploy > docker-compose.yml', () => {
  it('brings Apache Kafka in KRaft mode, InfluxDB 1.8 and Mosquitto', () => {
    expect(services.kafka.image).toMatch(/^apache\/kafka:/);
    expect(services.kafka.environment?.KAFKA_PROCESS_ROLES).toBe('broker,controller');
    expect(services.influxdb.image).toBe('influxdb:1.8');
    expect(services.mosquitto.image).toMatch(/^eclipse-mosquitto:2/);
  });

  it('runs every component as its own service from the one Dockerfile', () => {
    const commands = ours.map(([, s]) => s.command?.[0]);
    for (const c of ['edge', 'anomaly', 'storage', 'alerts', 'gateway']) expect(commands).toContain(c);
    for (const [name, s] of ours) {
      expect(s.build, name).toBe('.');
      expect(Object.keys(commandFor), `${name}: command ${s.command?.[0]}`).toContain(s.command?.[0]);
    }
  });

  for (const [name, s] of ours) {
    describe(name, () => {
      const env = envOf(s);
      const component = commandFor[s.command?.[0] ?? ''] as keyof Config;
      let config: Config;
      it('has an environment the config schema accepts', () => {
        config = loadConfig(PlatformConfig, { env });
      });

      it('points KAFKA_BROKERS / INFLUX_URL / MQTT_URL at services that exist and listen there', () => {
        config ??= loadConfig(PlatformConfig, { env });
        if (component !== 'simulator') expect(config.kafka.brokers.length, 'needs KAFKA_BROKERS').toBeGreaterThan(0);
        for (const b of config.kafka.brokers) {
          const { host, port } = hostPort(b);
          expect(Object.keys(services)).toContain(host);
          expect(String(services[host].environment?.KAFKA_ADVERTISED_LISTENERS)).toContain(`${host}:${port}`);
          expect(Object.keys(s.depends_on ?? {})).toContain(host);
        }
        if (component === 'storage' || component === 'gateway') {
          const u = new URL(config.influx.url);
          expect(u.hostname).toBe('influxdb');
          expect(u.port).toBe('8086');
          expect(u.pathname.slice(1)).toBe(String(services.influxdb.environment?.INFLUXDB_DB));
        }
        if (component === 'edge' || component === 'simulator') {
          const { host, port } = hostPort(config.mqtt.url);
          expect(host).toBe('mosquitto');
          expect(containerPorts(services.mosquitto)).toContain(port);
        }
        if (component === 'gateway') {
          const { host, port } = hostPort(config.gateway.alertsApiUrl);
          expect(host).toBe('alerts');
          const alertsConfig = loadConfig(PlatformConfig, { env: envOf(services.alerts) });
          expect(port).toBe(alertsConfig.alerts.httpPort);
        }
      });

      it('publishes the port the component listens on', () => {
        config ??= loadConfig(PlatformConfig, { env });
        if (component === 'simulator') return;
        const section = config[component] as { httpPort?: number | null; port?: number };
        const listening = component === 'gateway' ? section.port : section.httpPort;
        expect(containerPorts(s)).toContain(listening);
      });
    });
  }
});
