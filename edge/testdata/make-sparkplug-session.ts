/**
 * Writes sparkplug-session.json: a Sparkplug B session as an edge node would send it, with an
 * alias-only DATA, a seq gap, a DATA before BIRTH, an unknown alias, deaths and a rebirth.
 * Run: npx tsx edge/testdata/make-sparkplug-session.ts
 */
import { writeFileSync } from 'node:fs';
import { encodeSparkplug } from '../sparkplug.ts';

const T0 = Date.UTC(2026, 0, 15, 8, 0, 0);
const g = 'plant1';
const n = 'line1';
type Step = { note: string; topic: string; at: number; payload: Parameters<typeof encodeSparkplug>[0] };
const steps: Step[] = [];
const add = (note: string, type: string, device: string | null, at: number, payload: Step['payload']) =>
  steps.push({ note, topic: `spBv1.0/${g}/${type}/${n}${device ? `/${device}` : ''}`, at: T0 + at, payload });

add('node birth, bdSeq 0', 'NBIRTH', null, 0, {
  timestamp: T0, seq: 0,
  metrics: [
    { name: 'bdSeq', type: 'UInt64', value: 0 },
    { name: 'Node Control/Rebirth', type: 'Boolean', value: false },
    { name: 'Supply Voltage', alias: 1, type: 'Double', value: 24.1, timestamp: T0 },
  ],
});
add('device birth press-1 with aliases', 'DBIRTH', 'press-1', 10, {
  timestamp: T0 + 10, seq: 1,
  metrics: [
    { name: 'Temperature', alias: 10, type: 'Double', value: 71.2, timestamp: T0 + 10 },
    { name: 'Vibration/RMS', alias: 11, type: 'Float', value: 0.25, timestamp: T0 + 10 },
    { name: 'Running', alias: 12, type: 'Boolean', value: true, timestamp: T0 + 10 },
    { name: 'Serial', alias: 13, type: 'String', value: 'SN-42', timestamp: T0 + 10 },
  ],
});
add('device data by alias only', 'DDATA', 'press-1', 1000, {
  timestamp: T0 + 1000, seq: 2,
  metrics: [
    { alias: 10, type: 'Double', value: 71.5, timestamp: T0 + 1000 },
    { alias: 11, type: 'Float', value: 0.5, timestamp: T0 + 1000 },
  ],
});
add('node data by alias', 'NDATA', null, 2000, { timestamp: T0 + 2000, seq: 3, metrics: [{ alias: 1, type: 'Double', value: 23.9, timestamp: T0 + 2000 }] });
add('seq gap: 4 is missing', 'DDATA', 'press-1', 3000, { timestamp: T0 + 3000, seq: 5, metrics: [{ alias: 10, type: 'Double', value: 72.0, timestamp: T0 + 3000 }] });
add('DATA before BIRTH from press-2', 'DDATA', 'press-2', 4000, { timestamp: T0 + 4000, seq: 6, metrics: [{ alias: 10, type: 'Double', value: 50, timestamp: T0 + 4000 }] });
add('unknown alias 99 next to a known one', 'DDATA', 'press-1', 5000, {
  timestamp: T0 + 5000, seq: 7,
  metrics: [
    { alias: 99, type: 'Double', value: 1, timestamp: T0 + 5000 },
    { alias: 10, type: 'Double', value: 72.4, timestamp: T0 + 5000 },
  ],
});
add('device death', 'DDEATH', 'press-1', 6000, { timestamp: T0 + 6000, seq: 8, metrics: [] });
add('node death, bdSeq 0', 'NDEATH', null, 7000, { timestamp: T0 + 7000, metrics: [{ name: 'bdSeq', type: 'UInt64', value: 0 }] });
add('data after death', 'NDATA', null, 8000, { timestamp: T0 + 8000, seq: 9, metrics: [{ alias: 1, type: 'Double', value: 23.5, timestamp: T0 + 8000 }] });
add('rebirth: node birth bdSeq 1', 'NBIRTH', null, 9000, {
  timestamp: T0 + 9000, seq: 0,
  metrics: [
    { name: 'bdSeq', type: 'UInt64', value: 1 },
    { name: 'Supply Voltage', alias: 1, type: 'Double', value: 24.0, timestamp: T0 + 9000 },
  ],
});
add('rebirth: device birth press-1', 'DBIRTH', 'press-1', 9010, {
  timestamp: T0 + 9010, seq: 1,
  metrics: [{ name: 'Temperature', alias: 10, type: 'Double', value: 70.1, timestamp: T0 + 9010 }],
});
add('data after rebirth', 'DDATA', 'press-1', 10000, { timestamp: T0 + 10000, seq: 2, metrics: [{ alias: 10, type: 'Double', value: 70.3, timestamp: T0 + 10000 }] });

const out = steps.map((s) => ({ note: s.note, topic: s.topic, receivedAt: s.at, payloadBase64: encodeSparkplug(s.payload).toString('base64') }));
writeFileSync(new URL('./sparkplug-session.json', import.meta.url), JSON.stringify(out, null, 2) + '\n');
console.log(`wrote ${out.length} messages`);
