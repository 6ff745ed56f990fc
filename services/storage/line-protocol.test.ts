import { describe, expect, it } from 'vitest';
import type { Reading } from '../../common/messages.ts';
import { ReadingLineWriter } from './line-protocol.ts';
import { ReadingBatch, ReadingDecoder, SeriesInterner } from '../../common/reading-batch.ts';
import { MEASUREMENTS, readingLine, sensorSeriesKey } from './schema.ts';

const head = (r: Reading) => Buffer.from(`${sensorSeriesKey(MEASUREMENTS.readings, r)} value=`);

let state = 7;
const rnd = (n: number) => ((state = (Math.imul(state, 1103515245) + 12345) & 0x7fffffff), state % n);

function randomReading(): Reading {
  const r: Reading = {
    site: 'plant',
    line: `L${rnd(3)}`,
    machine: `m${rnd(50)}`,
    sensor: `s${rnd(10)}`,
    ts: [0, 1, 9, 10, 1_700_000_000_000 + rnd(1e6), 2 ** 53 - 1][rnd(6)],
    value: [0, 5, -5, 0.1, 1e21, 1e-7, -123.456, Math.random() * 1e6, 2 ** 53][rnd(9)],
    receivedAt: 1_700_000_000_000 + rnd(1e6),
  };
  if (rnd(2)) r.unit = ['degC', '', 'm/s²', 'a"b\\c', 'x y,z=1', 'two\nlines'][rnd(6)];
  if (rnd(2)) r.quality = (['good', 'uncertain', 'bad'] as const)[rnd(3)];
  return r;
}

describe('services/storage/line-protocol', () => {
  it('writes exactly the lines readingLine() writes, for readings given as objects', () => {
    const readings = Array.from({ length: 2000 }, randomReading);
    const batch = ReadingBatch.fromReadings(readings, new SeriesInterner());
    const w = new ReadingLineWriter();
    w.reset(16);
    for (let i = 0; i < batch.n; i++) w.reading(batch, i, head(readings[i]));
    expect(w.body().toString('utf8')).toBe(readings.map((r) => readingLine(r) + '\n').join(''));
  });

  it('copies the value text of decoded records; the line means the same point', () => {
    const text = '[{"site":"p","line":"l","machine":"m","sensor":"a","ts":1700000000000,"value":12.50,"unit":"degC","receivedAt":1700000000001},' + '{"site":"p","line":"l","machine":"m","sensor":"b","ts":1700000000000,"value":-0.000123,"quality":"bad","receivedAt":1700000000002}]';
    const batch = new ReadingBatch();
    expect(new ReadingDecoder().decode(Buffer.from(text), batch)).toBe(2);
    const w = new ReadingLineWriter();
    w.reset(64);
    const readings = batch.toReadings();
    for (let i = 0; i < batch.n; i++) w.reading(batch, i, head(readings[i]));
    expect(w.body().toString()).toBe(
      'readings,line=l,machine=m,sensor=a,site=p value=12.50,unit="degC",received_at=1700000000001i 1700000000000\n' +
        'readings,line=l,machine=m,sensor=b,site=p value=-0.000123,quality="bad",received_at=1700000000002i 1700000000000\n',
    );
    expect(readingLine(readings[1])).toBe('readings,line=l,machine=m,sensor=b,site=p value=-0.000123,quality="bad",received_at=1700000000002i 1700000000000');
  });
});
