import { describe, expect, it } from 'vitest';
import type { MachineScore } from '../../common/messages.ts';
import { ReadingBatch, SeriesInterner } from '../../common/reading-batch.ts';
import { SensorScoreColumns, TTL_NONE } from './score-columns.ts';
import { roundModelOutput, ScoreEncoder, writeJsonNumber, writeModelNumber } from './score-encoder.ts';
import { encodeScores } from './records.ts';

/** A small seeded PRNG (mulberry32), so a failure reproduces. */
function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const EDGE = [
  0, -0, 1, -1, 0.1, -0.1, 1e21, 1e-7, 1e-6, 9.999999999999999e20, 123456789012345680000, 1e300, -1e-300, 5e-324, Number.MAX_VALUE, Number.MIN_SAFE_INTEGER,
  Number.MAX_SAFE_INTEGER, 2 ** 53, 2 ** 53 + 2, 2 ** 31, 2 ** 31 - 1, -(2 ** 31), 1e8, 99999999, 100000000, 1699999999999999, 4503599627370495.5, 0.30000000000000004,
  1 / 3, NaN, Infinity, -Infinity, 2147483647.5, 1e15 + 0.3,
];

function randomDouble(rnd: () => number): number {
  const r = rnd();
  if (r < 0.25) return EDGE[Math.floor(rnd() * EDGE.length)];
  if (r < 0.45) return Math.round((rnd() - 0.5) * 10 ** Math.floor(rnd() * 17)); // integers of any size up to 2^53
  if (r < 0.55) return Math.floor(rnd() * 2 ** 53) * 10 ** Math.floor(rnd() * 8); // large integers past 2^53
  if (r < 0.8) return (rnd() - 0.5) * 10 ** (Math.floor(rnd() * 60) - 30);
  // Any bit pattern: subnormals, huge exponents, NaN payloads.
  const dv = new DataView(new ArrayBuffer(8));
  dv.setUint32(0, Math.floor(rnd() * 2 ** 32));
  dv.setUint32(4, Math.floor(rnd() * 2 ** 32));
  return dv.getFloat64(0);
}

const ID_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-';
const randomId = (rnd: () => number) => Array.from({ length: 1 + Math.floor(rnd() * (rnd() < 0.1 ? 64 : 8)) }, () => ID_CHARS[Math.floor(rnd() * ID_CHARS.length)]).join('');
const ODD_STRINGS = ['"', '\\', '\n', '\u0000', '\u001f', 'é', '€', '😀', '\ud800', '</script>', '__proto__', '0', '10', '4294967295', '-1', '01', ' '];
const randomText = (rnd: () => number) =>
  Array.from({ length: Math.floor(rnd() * 6) }, () => (rnd() < 0.5 ? ODD_STRINGS[Math.floor(rnd() * ODD_STRINGS.length)] : ID_CHARS[Math.floor(rnd() * ID_CHARS.length)])).join('');

describe('services > anomaly > score encoder', () => {
  it('writes numbers exactly as JSON.stringify does', () => {
    const rnd = prng(7);
    const buf = Buffer.alloc(64);
    const values = [...EDGE];
    for (let i = 0; i < 20_000; i++) values.push(randomDouble(rnd));
    for (const v of values) {
      const end = writeJsonNumber(buf, 0, v);
      expect(buf.toString('latin1', 0, end), String(v)).toBe(JSON.stringify(v));
    }
  });

  it('writes model outputs as JSON.stringify of their 7-significant-digit rounding', () => {
    const rnd = prng(11);
    const buf = Buffer.alloc(64);
    const values = [...EDGE, 1.2345675, 0.00012345675, 9.9999995, 0.99999995, 999999999999999.9, 1234567.5, 12345678.25, 1e-6 + 1e-20, 0.000999999951];
    for (let i = 0; i < 20_000; i++) values.push(randomDouble(rnd));
    // Typical sensor-unit outputs: a few digits before the point, noise after.
    for (let i = 0; i < 20_000; i++) values.push((rnd() - 0.3) * 10 ** Math.floor(rnd() * 8 - 3));
    // Exact ties at the 7th digit (where one multiplication could round the wrong way).
    for (let i = 0; i < 2_000; i++) values.push(((1_000_000 + Math.floor(rnd() * 9_000_000)) * 10 + 5) * 10 ** (Math.floor(rnd() * 12) - 14));
    for (const v of values) {
      const end = writeModelNumber(buf, 0, v);
      expect(buf.toString('latin1', 0, end), String(v)).toBe(JSON.stringify(roundModelOutput(v)));
      // What a consumer reads back is the value to 7 significant digits (integers exactly).
      if (Number.isFinite(v)) expect(Math.abs(roundModelOutput(v) - v)).toBeLessThanOrEqual(Math.abs(v) * 5.000001e-7);
    }
    expect(roundModelOutput(55.84147098480789)).toBe(55.84147);
    expect(roundModelOutput(1699999999999)).toBe(1699999999999);
  });

  it('gives the bytes of JSON.stringify of the score objects, grouped per machine as encodeScores does', () => {
    const rnd = prng(42);
    // Record values as Buffers, and as strings where they are ASCII.
    const encoders = [new ScoreEncoder(), new ScoreEncoder(true)];
    const interner = new SeriesInterner();
    let texts = 0;
    for (let round = 0; round < 600; round++) {
      const encoder = encoders[round % 2];
      // Few machines and sensors per round, so records repeat machines and split.
      const machines = Array.from({ length: 1 + Math.floor(rnd() * 4) }, () => ({ site: randomId(rnd), line: randomId(rnd), machine: randomId(rnd) }));
      const batch = new ReadingBatch(4);
      const points = Math.floor(rnd() * 40);
      for (let i = 0; i < points; i++) {
        const m = machines[Math.floor(rnd() * machines.length)];
        const ts = rnd() < 0.2 ? Math.floor(rnd() * 100) : Math.floor(rnd() * 2 ** 53);
        const value = randomDouble(rnd);
        batch.pushReading({ ...m, sensor: rnd() < 0.5 ? 's1' : randomId(rnd), ts, value: Number.isFinite(value) ? value : 0, receivedAt: ts }, interner);
      }
      const cols = new SensorScoreColumns(1 + Math.floor(rnd() * 4));
      for (let i = 0; i < points; i++) {
        if (rnd() < 0.1) continue; // a rejected point has no row
        const k = cols.add(i);
        cols.predicted[k] = randomDouble(rnd);
        cols.lower[k] = randomDouble(rnd);
        cols.upper[k] = randomDouble(rnd);
        cols.rawScore[k] = randomDouble(rnd);
        cols.likelihood[k] = randomDouble(rnd);
        cols.warmingUp[k] = rnd() < 0.3 ? 1 : 0;
        if (rnd() < 0.5) {
          cols.forecastHorizonMs[k] = rnd() < 0.8 ? Math.floor(rnd() * 3_600_000) : randomDouble(rnd);
          cols.forecastValue[k] = randomDouble(rnd);
          cols.forecastLower[k] = randomDouble(rnd);
          cols.forecastUpper[k] = randomDouble(rnd);
        }
        const t = rnd();
        if (t < 0.3) cols.timeToLimitMs[k] = TTL_NONE;
        else if (t < 0.6) cols.timeToLimitMs[k] = rnd() < 0.5 ? Math.floor(rnd() * 1e9) : Math.abs(randomDouble(rnd));
      }
      const machineScores: MachineScore[] = [];
      for (let i = Math.floor(rnd() * 5); i > 0; i--) {
        const m = rnd() < 0.8 ? machines[Math.floor(rnd() * machines.length)] : { site: randomId(rnd), line: randomId(rnd), machine: randomId(rnd) };
        const contributions: Record<string, number> = {};
        for (let c = Math.floor(rnd() * 5); c > 0; c--) contributions[rnd() < 0.5 ? randomText(rnd) : randomId(rnd)] = randomDouble(rnd);
        const score: MachineScore = { kind: 'machine', ...m, ts: Math.floor(rnd() * 2 ** 50), rawScore: randomDouble(rnd), likelihood: rnd(), contributions, modelVersion: randomText(rnd), warmingUp: rnd() < 0.5 };
        const odd = rnd();
        if (odd < 0.05) contributions.x = 'not a number' as unknown as number;
        else if (odd < 0.1) {
          const { warmingUp, ...rest } = score;
          machineScores.push({ warmingUp, ...rest }); // keys in another order
        }
        else if (odd < 0.15) machineScores.push({ ...score, extra: 1 } as MachineScore);
        if (odd >= 0.05 && odd < 0.15) continue;
        machineScores.push(score);
      }
      const version = rnd() < 0.5 ? 'pw-det-6' : randomText(rnd);
      const max = 1 + Math.floor(rnd() * 12);
      const headers = rnd() < 0.5 ? { 'plantwatch-model-version': version } : undefined;
      const expected = encodeScores(cols.toSensorScores(batch, version), machineScores, max, headers);
      const actual = encoder.encode(cols, batch, machineScores, version, max, headers);
      expect(actual.map((m) => m.key)).toEqual(expected.map((m) => m.key));
      expect(actual.map((m) => m.headers)).toEqual(expected.map((m) => m.headers));
      for (let r = 0; r < expected.length; r++) {
        const want = Buffer.from(expected[r].value as string, 'utf8');
        const value = actual[r].value;
        const got = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
        if (typeof value === 'string') {
          expect(value).toMatch(/^[\x00-\x7f]*$/);
          texts++;
        }
        if (!want.equals(got)) expect(got.toString('utf8')).toBe(want.toString('utf8'));
        expect(got.equals(want)).toBe(true);
      }
    }
    expect(texts).toBeGreaterThan(100);
  });

  it('a big call (numbers formatted in several chunks) gives the same bytes as JSON.stringify', () => {
    const rnd = prng(9);
    const interner = new SeriesInterner();
    const encoder = new ScoreEncoder();
    for (const points of [3000, 682, 683, 10_000]) {
      const batch = new ReadingBatch(points);
      for (let i = 0; i < points; i++) batch.pushReading({ site: 's', line: 'l', machine: `m${i % 97}`, sensor: `x${i % 7}`, ts: 1_700_000_000_000 + i, value: randomDouble(rnd) || 1, receivedAt: 0 }, interner);
      const cols = new SensorScoreColumns(points);
      for (let i = 0; i < points; i++) {
        const k = cols.add(i);
        cols.predicted[k] = randomDouble(rnd);
        cols.lower[k] = randomDouble(rnd);
        cols.upper[k] = randomDouble(rnd);
        cols.rawScore[k] = randomDouble(rnd);
        cols.likelihood[k] = rnd();
        if (i % 3 === 0) {
          cols.forecastHorizonMs[k] = 600_000;
          cols.forecastValue[k] = randomDouble(rnd);
          cols.forecastLower[k] = randomDouble(rnd);
          cols.forecastUpper[k] = randomDouble(rnd);
        }
        if (i % 5 === 0) cols.timeToLimitMs[k] = i % 10 === 0 ? TTL_NONE : rnd() * 1e7;
      }
      const machineScores: MachineScore[] = Array.from({ length: 97 }, (_, m) => ({
        kind: 'machine', site: 's', line: 'l', machine: `m${m}`, ts: 5, rawScore: rnd(), likelihood: rnd(), contributions: { x0: rnd(), x1: randomDouble(rnd) }, modelVersion: 'v', warmingUp: false,
      }));
      const expected = encodeScores(cols.toSensorScores(batch, 'v'), machineScores, 50);
      const actual = encoder.encode(cols, batch, machineScores, 'v', 50);
      expect(actual.length).toBe(expected.length);
      for (let r = 0; r < expected.length; r++) expect((actual[r].value as Buffer).toString('utf8')).toBe(expected[r].value);
    }
  });

  it('the records of one call stay valid after the encoder is used again', () => {
    const encoder = new ScoreEncoder();
    const interner = new SeriesInterner();
    const batch = ReadingBatch.fromReadings([{ site: 's', line: 'l', machine: 'm', sensor: 'a', ts: 5, value: 1.5, receivedAt: 5 }], interner);
    const cols = new SensorScoreColumns(1);
    cols.add(0);
    const first = encoder.encode(cols, batch, [], 'v1', 10);
    const text = (first[0].value as Buffer).toString();
    cols.predicted[0] = 99;
    encoder.encode(cols, batch, [], 'v2', 10);
    expect((first[0].value as Buffer).toString()).toBe(text);
    expect(JSON.parse(text)[0]).toMatchObject({ kind: 'sensor', machine: 'm', sensor: 'a', ts: 5, value: 1.5, predicted: 0, modelVersion: 'v1' });
  });

  it('reuses the buffer of released records only', () => {
    const encoder = new ScoreEncoder();
    const batch = ReadingBatch.fromReadings([{ site: 's', line: 'l', machine: 'm', sensor: 'a', ts: 5, value: 1.5, receivedAt: 5 }], new SeriesInterner());
    const cols = new SensorScoreColumns(1);
    cols.add(0);
    const bufferOf = (msgs: { value: string | Buffer }[]) => (msgs[0].value as Buffer).buffer;
    const a = encoder.encode(cols, batch, [], 'v', 10);
    const b = encoder.encode(cols, batch, [], 'v', 10);
    const c = encoder.encode(cols, batch, [], 'v', 10);
    expect(new Set([bufferOf(a), bufferOf(b), bufferOf(c)]).size).toBe(3);
    encoder.release(a);
    const text = (b[0].value as Buffer).toString();
    const used = new Set<ArrayBufferLike>();
    for (let i = 0; i < 3; i++) used.add(bufferOf(encoder.encode(cols, batch, [], 'v', 10)));
    expect(used.has(bufferOf(a))).toBe(true);
    expect(used.has(bufferOf(b))).toBe(false);
    expect((b[0].value as Buffer).toString()).toBe(text);
  });
});
