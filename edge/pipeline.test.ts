import { describe, expect, it } from 'vitest';
import { DeadLetter, Reading, ReadingRecord } from '../common/messages.ts';
import { EdgeConfig } from './config.schema.ts';
import { Ingestor, type InboundMessage } from './pipeline.ts';

const NOW = Date.UTC(2026, 5, 1, 12, 0, 0);
const TOPIC = 'plant/s1/l1/m1/temp';

function ingest(payload: string | Buffer, topic = TOPIC, cfg: Parameters<typeof EdgeConfig.parse>[0] = {}) {
  const ing = new Ingestor(EdgeConfig.parse(cfg));
  const msg: InboundMessage = { topic, payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload), qos: 1, clientId: 'dev-1', receivedAt: NOW, userProperties: { line: 'A' } };
  return ing.ingest(msg);
}

const readings = (res: ReturnType<typeof ingest>) => res.records.filter((r) => r.topic === 'plantwatch.readings').flatMap((r) => [ReadingRecord.parse(JSON.parse(r.value))].flat());
const deadLetters = (res: ReturnType<typeof ingest>) => res.records.filter((r) => r.topic === 'plantwatch.deadletter').map((r) => DeadLetter.parse(JSON.parse(r.value)));

describe('edge > pipeline', () => {
  it('maps the default topic to a reading keyed by site/line/machine with MQTT headers', () => {
    const res = ingest(JSON.stringify({ ts: NOW - 1000, value: 21.5, unit: 'degC', quality: 'good' }));
    expect(res.records).toHaveLength(1);
    const rec = res.records[0];
    expect(rec.key).toBe('s1/l1/m1');
    expect(JSON.parse(rec.value)).toEqual({ site: 's1', line: 'l1', machine: 'm1', sensor: 'temp', ts: NOW - 1000, value: 21.5, unit: 'degC', quality: 'good', receivedAt: NOW });
    expect(rec.headers).toEqual({ 'mqtt.topic': TOPIC, 'mqtt.client_id': 'dev-1', 'mqtt.qos': '1', 'mqtt.user.line': 'A' });
  });

  it('accepts ISO-8601 timestamps, bare numbers (stamped on arrival) and JSON numbers', () => {
    expect(readings(ingest(JSON.stringify({ ts: new Date(NOW - 5).toISOString(), value: 1 })))[0].ts).toBe(NOW - 5);
    expect(readings(ingest('42.5'))[0]).toMatchObject({ value: 42.5, ts: NOW, receivedAt: NOW });
    expect(readings(ingest(' -1e3 '))[0].value).toBe(-1000);
  });

  it('a JSON array becomes one array record of that machine; bad elements are dead-lettered alone', () => {
    const payload = JSON.stringify([{ ts: NOW - 3, value: 1 }, { ts: NOW - 2, value: 'x' }, { ts: NOW - 1, value: 3 }, { value: 4 }]);
    const res = ingest(payload);
    const recs = res.records.filter((r) => r.topic === 'plantwatch.readings');
    expect(recs).toHaveLength(1);
    expect(Array.isArray(JSON.parse(recs[0].value))).toBe(true);
    expect(readings(res).map((r) => r.value)).toEqual([1, 3]);
    const dl = deadLetters(res);
    expect(dl.map((d) => [d.code, d.source.index])).toEqual([
      ['READING_INVALID', 1],
      ['READING_INVALID', 3],
    ]);
    expect(dl[1].reason).toMatch(/^ts: required/);
    expect(JSON.parse(Buffer.from(dl[0].rawBase64, 'base64').toString())).toEqual({ ts: NOW - 2, value: 'x' });
  });

  it.each([
    ['not JSON', '{"ts": 1, "value":', 'PAYLOAD_NOT_DECODABLE'],
    ['NaN', 'NaN', 'READING_INVALID'],
    ['Infinity literal', 'Infinity', 'READING_INVALID'],
    ['overflowing number', '{"ts": 1780000000000, "value": 1e999}', 'READING_INVALID'],
    ['wrong type', '{"ts": 1780000000000, "value": "12"}', 'READING_INVALID'],
    ['missing value', '{"ts": 1780000000000}', 'READING_INVALID'],
    ['unknown key', `{"ts": ${NOW}, "value": 1, "evil": true}`, 'READING_INVALID'],
    ['bad quality', `{"ts": ${NOW}, "value": 1, "quality": "great"}`, 'READING_INVALID'],
    ['empty', '', 'PAYLOAD_EMPTY'],
    ['empty array', '[]', 'PAYLOAD_EMPTY'],
    ['string document', '"hello"', 'READING_INVALID'],
    ['1970 timestamp', '{"ts": 5, "value": 1}', 'TIMESTAMP_OUT_OF_RANGE'],
    ['far future', `{"ts": ${NOW + 3600_000}, "value": 1}`, 'TIMESTAMP_OUT_OF_RANGE'],
    ['negative ts', '{"ts": -5, "value": 1}', 'READING_INVALID'],
    ['ISO garbage', '{"ts": "yesterday", "value": 1}', 'READING_INVALID'],
  ])('dead-letters %s with code %s and the raw bytes', (_name, payload, code) => {
    const res = ingest(payload);
    expect(readings(res)).toEqual([]);
    const dl = deadLetters(res);
    expect(dl).toHaveLength(1);
    expect(dl[0].code).toBe(code);
    expect(dl[0].component).toBe('edge');
    expect(dl[0].source.mqttTopic).toBe(TOPIC);
    expect(Buffer.from(dl[0].rawBase64, 'base64').toString()).toBe(payload);
  });

  it('dead-letters oversize payloads (raw bytes truncated to the limit) and over-long batches', () => {
    const big = ingest('1'.padEnd(2000, ' '), TOPIC, { validation: { maxPayloadBytes: 1000 } });
    expect(deadLetters(big).map((d) => d.code)).toEqual(['PAYLOAD_OVERSIZE']);
    expect(Buffer.from(deadLetters(big)[0].rawBase64, 'base64').length).toBe(1000);
    const many = ingest(JSON.stringify(Array.from({ length: 11 }, () => 1)), TOPIC, { validation: { maxBatchReadings: 10 } });
    expect(deadLetters(many).map((d) => d.code)).toEqual(['BATCH_TOO_LARGE']);
  });

  it('identifiers from the topic are validated too', () => {
    const res = ingest('1', 'plant/s1/l1/m 1/temp');
    expect(deadLetters(res)[0].reason).toMatch(/machine/);
  });

  it('topics matching no rule produce nothing; custom rules map to other topics, keys and defaults', () => {
    expect(ingest('1', 'other/topic').rule).toBeNull();
    const res = ingest('7', 'factory/m9/rpm', { mapping: [{ pattern: 'factory/{machine}/{sensor}', kafkaTopic: 'custom.readings', key: '{machine}', defaults: { site: 'hq', line: 'main' } }] });
    expect(res.records[0]).toMatchObject({ topic: 'custom.readings', key: 'm9' });
    expect(Reading.parse(JSON.parse(res.records[0].value))).toMatchObject({ site: 'hq', line: 'main', machine: 'm9', sensor: 'rpm', value: 7 });
  });

  it('fuzz: 10k hostile payloads never throw and are all dead-lettered; 10k good ones all pass', () => {
    const ing = new Ingestor(EdgeConfig.parse({}));
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const hostile = [
      () => Buffer.from(Array.from({ length: Math.floor(rand() * 200) + 1 }, () => Math.floor(rand() * 256))),
      () => Buffer.from(`{"ts":${Math.floor(rand() * 1e15)},"value":${rand()}}`),
      () => Buffer.from(`[${'['.repeat(Math.floor(rand() * 50))}`),
      () => Buffer.from(JSON.stringify({ ts: NOW, value: { nested: rand() } })),
      () => Buffer.from(JSON.stringify({ __proto__: { value: 1 }, ts: NOW })),
      () => Buffer.from('{"constructor":{"prototype":{"x":1}},"ts":1,"value":2}'),
      () => Buffer.from(JSON.stringify([{ ts: NOW, value: null }])),
      () => Buffer.from('\u0000\uffff' + 'NaN'),
    ];
    let bad = 0;
    let goodReadings = 0;
    for (let i = 0; i < 10_000; i++) {
      const res = ing.ingest({ topic: TOPIC, payload: hostile[i % hostile.length](), qos: 1, clientId: 'fuzz', receivedAt: NOW });
      expect(res.readings).toBe(0);
      bad += res.rejects.length;
      const good = ing.ingest({ topic: `plant/s1/l1/m${i % 7}/t`, payload: Buffer.from(JSON.stringify({ ts: NOW - i, value: i })), qos: 1, clientId: 'fuzz', receivedAt: NOW });
      goodReadings += good.readings;
    }
    expect(bad).toBe(10_000);
    expect(goodReadings).toBe(10_000);
  });
});

describe('edge > decode fast validation', () => {
  it('isValidReading accepts exactly what the Reading schema accepts', async () => {
    const { isValidReading } = await import('./decode.ts');
    const samples: unknown[] = [1, -1, 0, 1.5, NaN, Infinity, -0, 2 ** 53, 1e300, '1', '', 'a'.repeat(64), 'a'.repeat(65), 'a b', 'ü', null, undefined, true, {}, [], 'good', 'bad', 'great', 'degC', 'x'.repeat(32), 'x'.repeat(33)];
    let seed = 3;
    const pick = () => samples[(seed = (seed * 1103515245 + 12345) & 0x7fffffff) % samples.length];
    let agreeValid = 0;
    for (let i = 0; i < 20_000; i++) {
      const base: Record<string, unknown> = { site: 's1', line: 'l1', machine: 'm1', sensor: 't', ts: 1, value: 2, receivedAt: 3 };
      const field = ['site', 'line', 'machine', 'sensor', 'ts', 'value', 'unit', 'quality', 'receivedAt', 'extra'][i % 10];
      base[field] = pick();
      if (i % 7 === 0) base.unit = pick();
      const fast = isValidReading(base);
      const slow = Reading.safeParse(base).success;
      if (fast) expect(slow, JSON.stringify(base)).toBe(true);
      // Where the slow path would accept, the fast one may only disagree for undefined optional keys.
      if (slow && !fast) expect(Object.values(base).includes(undefined) || field === 'extra').toBe(true);
      if (fast && slow) agreeValid++;
    }
    expect(agreeValid).toBeGreaterThan(1000);
  });
});

describe('edge > pipeline record size', () => {
  it('splits a huge batched payload into consecutive records under kafka.maxRecordBytes, order kept', () => {
    const n = 3000;
    const payload = JSON.stringify(Array.from({ length: n }, (_, i) => ({ ts: NOW - n + i, value: i })));
    const res = ingest(payload, TOPIC, { kafka: { maxRecordBytes: 64 * 1024 } });
    const recs = res.records.filter((r) => r.topic === 'plantwatch.readings');
    expect(recs.length).toBeGreaterThan(1);
    expect(recs.every((r) => r.value.length <= 64 * 1024 && r.key === 's1/l1/m1')).toBe(true);
    expect(recs.flatMap((r) => (JSON.parse(r.value) as { value: number }[]).map((x) => x.value))).toEqual(Array.from({ length: n }, (_, i) => i));
  });
});
