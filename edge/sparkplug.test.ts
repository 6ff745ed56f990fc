import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Reading } from '../common/messages.ts';
import { EdgeConfig } from './config.schema.ts';
import { Ingestor } from './pipeline.ts';
import { decodeSparkplug, REBIRTH_METRIC } from './sparkplug.ts';

interface Recorded {
  note: string;
  topic: string;
  receivedAt: number;
  payloadBase64: string;
}
const session = JSON.parse(readFileSync(new URL('./testdata/sparkplug-session.json', import.meta.url), 'utf8')) as Recorded[];

function replay(rebirthMinIntervalMs = 0) {
  const ing = new Ingestor(EdgeConfig.parse({ sparkplug: { rebirthMinIntervalMs } }));
  return session.map((s) => ({
    note: s.note,
    res: ing.ingest({ topic: s.topic, payload: Buffer.from(s.payloadBase64, 'base64'), qos: 0, clientId: 'line1', receivedAt: s.receivedAt }),
    ing,
  }));
}

const readingsOf = (r: ReturnType<typeof replay>[number]) =>
  r.res.records.filter((x) => x.topic === 'plantwatch.readings').flatMap((x) => [JSON.parse(x.value)].flat() as Reading[]);

describe('edge > sparkplug (recorded birth/data/death session)', () => {
  it('NBIRTH/DBIRTH define aliases and forward their numeric values; control metrics and strings are skipped', () => {
    const steps = replay();
    const nbirth = readingsOf(steps[0]);
    expect(nbirth.map((r) => [r.machine, r.sensor, r.value])).toEqual([['node', 'Supply_Voltage', 24.1]]);
    const dbirth = readingsOf(steps[1]);
    expect(dbirth.map((r) => [r.site, r.line, r.machine, r.sensor, r.value])).toEqual([
      ['plant1', 'line1', 'press-1', 'Temperature', 71.2],
      ['plant1', 'line1', 'press-1', 'Vibration_RMS', 0.25],
      ['plant1', 'line1', 'press-1', 'Running', 1],
    ]);
    for (const r of [...nbirth, ...dbirth]) expect(Reading.safeParse(r).success).toBe(true);
    expect(steps[1].res.records.every((r) => r.topic !== 'plantwatch.readings' || r.key === 'plant1/line1/press-1')).toBe(true);
  });

  it('DDATA by alias only resolves to the names from DBIRTH, with the metric timestamps', () => {
    const steps = replay();
    const data = readingsOf(steps[2]);
    expect(data.map((r) => [r.sensor, r.value, r.ts])).toEqual([
      ['Temperature', 71.5, session[2].receivedAt],
      ['Vibration_RMS', 0.5, session[2].receivedAt],
    ]);
    expect(steps[2].res.commands).toEqual([]);
  });

  it('a seq gap is counted, asks the node to rebirth with an NCMD, and still forwards the data', () => {
    const steps = replay();
    const gap = steps[4].res;
    expect(gap.sparkplugEvents).toContain('seq_gap');
    expect(gap.commands).toHaveLength(1);
    expect(gap.commands[0].topic).toBe('spBv1.0/plant1/NCMD/line1');
    const cmd = decodeSparkplug(gap.commands[0].payload);
    expect(cmd.metrics?.[0].name).toBe(REBIRTH_METRIC);
    expect(cmd.metrics?.[0].value).toBe(true);
    expect(readingsOf(steps[4]).map((r) => r.value)).toEqual([72.0]);
  });

  it('DATA before BIRTH is dead-lettered with its raw bytes and triggers a rebirth request', () => {
    const steps = replay();
    const early = steps[5].res;
    expect(early.sparkplugEvents).toContain('data_before_birth');
    expect(early.commands).toHaveLength(1);
    const dl = early.records.filter((r) => r.topic === 'plantwatch.deadletter').map((r) => JSON.parse(r.value));
    expect(dl).toHaveLength(1);
    expect(dl[0].code).toBe('SPARKPLUG_BEFORE_BIRTH');
    expect(dl[0].rawBase64).toBe(session[5].payloadBase64);
  });

  it('an unknown alias is dead-lettered while the known metric of the same message goes through', () => {
    const steps = replay();
    const r = steps[6].res;
    expect(r.sparkplugEvents).toContain('unknown_alias');
    expect(readingsOf(steps[6]).map((x) => [x.sensor, x.value])).toEqual([['Temperature', 72.4]]);
    expect(r.rejects.map((x) => x.code)).toEqual(['SPARKPLUG_UNKNOWN_ALIAS']);
  });

  it('DDEATH/NDEATH mark the device and node stale; data after death asks for rebirth; rebirth clears it', () => {
    const steps = replay();
    const ing = steps[0].ing;
    // state after the whole session: reborn
    expect(ing.sparkplug.isStale('plant1', 'line1')).toBe(false);
    expect(ing.sparkplug.isStale('plant1', 'line1', 'press-1')).toBe(false);
    expect(steps[7].res.sparkplugEvents).toEqual(['death']);
    expect(steps[8].res.sparkplugEvents).toEqual(['death']);
    expect(steps[9].res.sparkplugEvents).toContain('data_before_birth');
    expect(steps[9].res.commands).toHaveLength(1);
    expect(readingsOf(steps[12]).map((r) => [r.sensor, r.value])).toEqual([['Temperature', 70.3]]);
  });

  it('a death re-sends the last values with quality bad at the death time, one record per machine', () => {
    const steps = replay();
    const ddeath = readingsOf(steps[7]);
    expect(ddeath.map((r) => [r.machine, r.sensor, r.value, r.quality, r.ts])).toEqual([
      ['press-1', 'Temperature', 72.4, 'bad', session[7].receivedAt],
      ['press-1', 'Vibration_RMS', 0.5, 'bad', session[7].receivedAt],
      ['press-1', 'Running', 1, 'bad', session[7].receivedAt],
    ]);
    const ndeath = steps[8].res.records.filter((r) => r.topic === 'plantwatch.readings');
    expect(ndeath.map((r) => r.key).sort()).toEqual(['plant1/line1/node', 'plant1/line1/press-1']);
    const nodeReadings = readingsOf(steps[8]).filter((r) => r.machine === 'node');
    expect(nodeReadings.map((r) => [r.sensor, r.value, r.quality])).toEqual([['Supply_Voltage', 23.9, 'bad']]);
    for (const r of readingsOf(steps[8])) expect(Reading.safeParse(r).success).toBe(true);
  });

  it('stale state is visible between death and rebirth', () => {
    const ing = new Ingestor(EdgeConfig.parse({}));
    for (const s of session.slice(0, 9)) ing.ingest({ topic: s.topic, payload: Buffer.from(s.payloadBase64, 'base64'), qos: 0, clientId: 'x', receivedAt: s.receivedAt });
    expect(ing.sparkplug.isStale('plant1', 'line1')).toBe(true);
    expect(ing.sparkplug.isStale('plant1', 'line1', 'press-1')).toBe(true);
    expect(ing.sparkplug.summary()).toEqual({ nodes: 1, born: 0, stale: 1 });
  });

  it('rebirth requests are rate-limited per node', () => {
    const steps = replay(60_000);
    const requests = steps.reduce((n, s) => n + s.res.commands.length, 0);
    // seq gap at t+3s sends one; the next ones (t+4s, t+5s, t+8s) fall inside the 60 s window.
    expect(requests).toBe(1);
  });

  it('a non-protobuf payload on a Sparkplug topic is dead-lettered, not thrown', () => {
    const ing = new Ingestor(EdgeConfig.parse({}));
    const res = ing.ingest({ topic: 'spBv1.0/g/NDATA/n', payload: Buffer.from('hello {{{'), qos: 1, clientId: 'x', receivedAt: Date.now() });
    expect(res.rejects.map((r) => r.code)).toEqual(['SPARKPLUG_NOT_DECODABLE']);
    expect(res.records[0].topic).toBe('plantwatch.deadletter');
  });
});
