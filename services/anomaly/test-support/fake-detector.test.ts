import { describe, expect, it } from 'vitest';
import type { Reading } from '../../../common/messages.ts';
import { ReadingBatch, SeriesInterner } from '../../../common/reading-batch.ts';
import { FakeDetector, reading } from './fake-detector.ts';

describe('services > anomaly > test-support > fake detector', () => {
  it('scoreColumns gives exactly the scores, machine scores and rejections of scoreBatch (also after a restore)', async () => {
    const a = new FakeDetector({ warmup: 2 });
    const b = new FakeDetector({ warmup: 2 });
    const limits = { 's1/l1/m1/temp': { upper: 25 } };
    a.setLimits(limits);
    b.setLimits(limits);
    const interner = new SeriesInterner();
    const round = (i: number): Reading[] => [
      reading({ ts: 1000 + i, value: 20 + (i % 7) }),
      reading({ sensor: 'rpm', ts: 1000 + i, value: 1500 - i }),
      reading({ machine: 'm2', ts: 1000 + i, value: i * 0.5 }),
      ...(i % 3 === 0 ? [reading({ ts: 500, value: 1 })] : []), // late: rejected
    ];
    for (let i = 0; i < 12; i++) {
      if (i === 6) {
        const snap = await a.snapshot();
        await a.restore(snap);
        await b.restore(snap);
      }
      const rs = round(i);
      const batch = ReadingBatch.fromReadings(rs, interner);
      const objects = await a.scoreBatch(rs);
      const cols = await b.scoreColumns(batch);
      expect(cols.sensor.toSensorScores(batch, b.modelVersion)).toEqual(objects.sensor);
      expect(cols.machine).toEqual(objects.machine);
      expect(cols.rejected.map((r) => ({ reading: batch.readingAt(r.point), reason: r.reason }))).toEqual(objects.rejected);
    }
    expect(b.streamCount()).toBe(a.streamCount());
  });
});
