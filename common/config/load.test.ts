import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConfigError } from '../errors.ts';
import { loadConfig } from './load.ts';
import { InfluxConfig, KafkaClientConfig, MqttClientConfig } from './fragments.ts';

const Schema = z.strictObject({
  kafka: KafkaClientConfig.default(KafkaClientConfig.parse({})),
  mqtt: MqttClientConfig.default(MqttClientConfig.parse({})),
  influx: InfluxConfig.default(InfluxConfig.parse({})),
  gateway: z.strictObject({ httpPort: z.number().int().default(8080), title: z.string().default('Plant') }).default({ httpPort: 8080, title: 'Plant' }),
});

function file(text: string, name = 'plantwatch.yaml'): string {
  const dir = mkdtempSync(join(tmpdir(), 'pw-config-'));
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe('common > config > loadConfig', () => {
  it('gives working defaults with no file and no env', () => {
    const c = loadConfig(Schema);
    expect(c.kafka.brokers).toEqual([]);
    expect(c.gateway.httpPort).toBe(8080);
    expect(Object.isFrozen(c.kafka)).toBe(true);
  });

  it('reads YAML, then lets the well-known env variables override it', () => {
    const p = file('kafka:\n  brokers: ["10.0.0.1:9092"]\ngateway:\n  title: Line 4\n');
    const c = loadConfig(Schema, {
      file: p,
      env: { KAFKA_BROKERS: '127.0.0.1:9092, 127.0.0.2:9093', INFLUX_URL: 'http://u:p@127.0.0.1:8086/plantwatch', MQTT_URL: 'mqtt://127.0.0.1:1883' },
    });
    expect(c.kafka.brokers).toEqual(['127.0.0.1:9092', '127.0.0.2:9093']);
    expect(c.influx.url).toBe('http://u:p@127.0.0.1:8086/plantwatch');
    expect(c.mqtt.url).toBe('mqtt://127.0.0.1:1883');
    expect(c.gateway.title).toBe('Line 4');
  });

  it('maps PLANTWATCH_<SECTION>__<KEY> to camelCase keys and parses JSON values', () => {
    const c = loadConfig(Schema, { env: { PLANTWATCH_GATEWAY__HTTP_PORT: '8181' } });
    expect(c.gateway.httpPort).toBe(8181);
  });

  it('reads JSON files too', () => {
    const c = loadConfig(Schema, { file: file('{"gateway":{"httpPort":9000}}', 'c.json') });
    expect(c.gateway.httpPort).toBe(9000);
  });

  const failures: [string, () => unknown, RegExp][] = [
    ['unknown key', () => loadConfig(Schema, { file: file('gateway:\n  colour: red\n') }), /^invalid config: gateway\.colour: unknown key .*\(from file .*plantwatch\.yaml\)$/],
    ['wrong type from env', () => loadConfig(Schema, { env: { PLANTWATCH_GATEWAY__HTTP_PORT: 'eighty' } }), /^invalid config: gateway\.httpPort: .*number.*\(from env PLANTWATCH_GATEWAY__HTTP_PORT\)$/],
    ['bad broker address', () => loadConfig(Schema, { env: { KAFKA_BROKERS: 'kafka-without-port' } }), /^invalid config: kafka\.brokers\.0: expected host:port/],
    ['bad influx url', () => loadConfig(Schema, { env: { INFLUX_URL: 'ftp://x/db' } }), /^invalid config: influx\.url: /],
    ['missing file', () => loadConfig(Schema, { file: '/nonexistent/plantwatch.yaml' }), /^config file \/nonexistent\/plantwatch\.yaml cannot be read: ENOENT$/],
    ['broken YAML', () => loadConfig(Schema, { file: file('gateway: [unclosed\n') }), /is not valid YAML\/JSON/],
    ['a list instead of sections', () => loadConfig(Schema, { file: file('- a\n- b\n') }), /must contain a mapping of sections, got a list/],
  ];
  for (const [name, fn, pattern] of failures) {
    it(`rejects ${name} with a one-line ConfigError`, () => {
      let err: unknown;
      try {
        fn();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      const msg = (err as Error).message;
      expect(msg).not.toContain('\n');
      expect(msg).toMatch(pattern);
    });
  }
});
