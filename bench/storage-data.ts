/**
 * The records bench:storage writes (shared by bench/storage.ts and its producer process
 * bench/storage-producer.ts): Kafka-shaped `plantwatch.readings` records as the edge bridge makes
 * them, one machine and 10 sensors per record, 100 machines, 1,000 series.
 */
import type { Reading } from '../common/messages.ts';
import { TOPICS } from '../common/topics.ts';
import type { WriterRecord } from '../services/storage/writer.ts';

export const PER_RECORD = 10;
export const MACHINES = 100;

export function makeRecords(points: number, base: number): { records: WriterRecord[]; readings: Reading[] } {
  const records: WriterRecord[] = [];
  const readings: Reading[] = [];
  for (let i = 0; i < points / PER_RECORD; i++) {
    const machine = `m${i % MACHINES}`;
    const ts = base + Math.floor(i / MACHINES);
    const rs: Reading[] = Array.from({ length: PER_RECORD }, (_, s) => ({ site: 'plant', line: 'L1', machine, sensor: `s${s}`, ts, value: ((i * 31 + s) % 1000) / 10, unit: 'degC', receivedAt: ts + 3 }));
    readings.push(...rs);
    records.push({ topic: TOPICS.readings, partition: i % 6, offset: String(Math.floor(i / 6)), key: `plant/L1/${machine}`, value: Buffer.from(JSON.stringify(rs)) });
  }
  return { records, readings };
}
