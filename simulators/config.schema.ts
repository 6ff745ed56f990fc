/**
 * Simulator configuration: the plant (sites → lines → machines → sensors), faults, output and clock.
 * Strict (unknown keys are errors) and complete: `SimulatorConfig.parse({})` is the demo plant used by
 * `npm start`, publishing JSON over MQTT with a random fault now and then.
 */
import { z } from 'zod';
import { Identifier } from '../common/messages.ts';
import { TlsConfig } from '../common/config/fragments.ts';

export const MACHINE_TYPES = ['pump', 'cnc_spindle', 'compressor', 'conveyor', 'motor'] as const;
export const MachineType = z.enum(MACHINE_TYPES);
export type MachineType = z.infer<typeof MachineType>;

/** Faults that change the physics of a machine (several correlated sensors move together). */
export const PHYSICAL_FAULTS = ['bearing_wear', 'overheating', 'cavitation'] as const;
/** Faults of one sensor's signal. */
export const SIGNAL_FAULTS = ['stuck', 'spike', 'drift'] as const;
/** Faults of the message stream (what a flaky device or network does). */
export const STREAM_FAULTS = ['dropout', 'clock_skew', 'out_of_order', 'duplicate', 'malformed'] as const;
export const FAULT_KINDS = [...PHYSICAL_FAULTS, ...SIGNAL_FAULTS, ...STREAM_FAULTS] as const;
export const FaultKind = z.enum(FAULT_KINDS);
export type FaultKind = z.infer<typeof FaultKind>;

const HHMM = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'expected HH:MM (24 h)');

/** One working shift; `end` before `start` crosses midnight. Days: 0 = Sunday … 6 = Saturday. */
export const Shift = z.strictObject({
  start: HHMM,
  end: HHMM,
  days: z.array(z.number().int().min(0).max(6)).min(1).default([0, 1, 2, 3, 4, 5, 6]),
});

/** Empty list = runs around the clock. */
export const ShiftPattern = z.strictObject({
  /** Site-local time = UTC + this offset. */
  utcOffsetMinutes: z.number().int().min(-840).max(840).default(0),
  shifts: z.array(Shift).default([]),
});
export type ShiftPattern = z.infer<typeof ShiftPattern>;

/** Duty cycle: the machine repeats a cycle of `periodS`, running for `onFraction` of it. Unset → type default. */
export const Duty = z.strictObject({
  periodS: z.number().min(1).max(86_400).optional(),
  onFraction: z.number().min(0).max(1).optional(),
  /** Load level while running, drawn per cycle between min and max (fraction of rated). */
  minLoad: z.number().min(0).max(1.2).optional(),
  maxLoad: z.number().min(0).max(1.2).optional(),
  /** Load between runs (0 = stopped; a compressor idles unloaded at ~0.35). */
  idleLoad: z.number().min(0).max(1).optional(),
  /** Random variation of the on-time per cycle, as a fraction of onFraction. */
  jitter: z.number().min(0).max(1).optional(),
});

export const SensorSpec = z.strictObject({
  /** One of the machine type's sensors (see README), e.g. `vibration`. */
  id: Identifier,
  /** Sampling rate, 0.1 Hz – 1 kHz; unset → the machine's rate. */
  rateHz: z.number().min(0.1).max(1000).optional(),
  /** Multiplies the type's noise standard deviation (0 = noiseless). */
  noise: z.number().min(0).max(100).default(1),
  /** Quantisation step in the sensor's unit; unset → type default; 0 = none. */
  quantum: z.number().min(0).optional(),
  unit: z.string().max(32).optional(),
});

export const MachineSpec = z.strictObject({
  id: Identifier,
  type: MachineType,
  rateHz: z.number().min(0.1).max(1000).default(1),
  /** Subset/overrides of the type's sensors; unset → all of them with defaults. */
  sensors: z.array(SensorSpec).min(1).optional(),
  duty: Duty.prefault({}),
  /** Rated values overriding the type's (e.g. `ratedFlow: 200` for a pump); names in README. */
  params: z.record(z.string(), z.number()).default({}),
  /** Overrides the line's shift pattern. */
  shifts: ShiftPattern.optional(),
});
export type MachineSpec = z.infer<typeof MachineSpec>;

export const LineSpec = z.strictObject({
  id: Identifier,
  machines: z.array(MachineSpec).min(1),
  shifts: ShiftPattern.optional(),
});

export const SiteSpec = z.strictObject({
  id: Identifier,
  lines: z.array(LineSpec).min(1),
  shifts: ShiftPattern.prefault({}),
});

function uniqueIds(items: { id: string }[], where: string, ctx: z.RefinementCtx, path: (string | number)[]): void {
  const seen = new Set<string>();
  items.forEach((it, i) => {
    if (seen.has(it.id)) ctx.addIssue({ code: 'custom', message: `duplicate id "${it.id}" in ${where}`, path: [...path, i, 'id'] });
    seen.add(it.id);
  });
}

export const PlantSpec = z
  .strictObject({
    sites: z.array(SiteSpec).min(1),
  })
  .superRefine((plant, ctx) => {
    uniqueIds(plant.sites, 'sites', ctx, ['sites']);
    plant.sites.forEach((s, si) => {
      uniqueIds(s.lines, `site ${s.id}`, ctx, ['sites', si, 'lines']);
      s.lines.forEach((l, li) => {
        uniqueIds(l.machines, `line ${s.id}/${l.id}`, ctx, ['sites', si, 'lines', li, 'machines']);
        l.machines.forEach((m, mi) => {
          if (m.sensors) uniqueIds(m.sensors, `machine ${m.id}`, ctx, ['sites', si, 'lines', li, 'machines', mi, 'sensors']);
        });
      });
    });
  });
export type PlantSpec = z.infer<typeof PlantSpec>;

/** The demo plant of `npm start`: two lines, five machines, 1 Hz. */
export const DEMO_PLANT: z.input<typeof PlantSpec> = {
  sites: [
    {
      id: 'demo',
      lines: [
        {
          id: 'line-1',
          machines: [
            { id: 'pump-1', type: 'pump' },
            { id: 'pump-2', type: 'pump', params: { ratedFlow: 90, ratedPressure: 5 } },
            { id: 'compressor-1', type: 'compressor' },
          ],
        },
        {
          id: 'line-2',
          machines: [
            { id: 'cnc-1', type: 'cnc_spindle' },
            { id: 'conveyor-1', type: 'conveyor' },
          ],
        },
      ],
    },
  ],
};

/** When a fault starts: seconds after the simulation start, or an absolute ISO-8601 time. */
const FaultTime = z.union([z.number().min(0), z.iso.datetime({ offset: true })]);

export const FaultSpec = z.strictObject({
  kind: FaultKind,
  /** `site/line/machine`, or a machine id that is unique in the plant. */
  machine: z.string().min(1),
  /** For signal and stream faults: one sensor; unset → every sensor of the machine. */
  sensor: Identifier.optional(),
  at: FaultTime.default(0),
  durationS: z.number().positive().default(60),
  /** Scales the effect (1 = the documented typical size). */
  severity: z.number().positive().max(10).default(1),
  /** Share of samples hit, for spike/out_of_order/duplicate/malformed (the first sample is always hit). */
  probability: z.number().min(0).max(1).optional(),
  /** clock_skew: added to the device timestamps. */
  skewMs: z.number().int().optional(),
  /** out_of_order: how late the held-back samples are delivered; unset → 3 sample periods. */
  delayMs: z.number().int().positive().optional(),
});
export type FaultSpec = z.infer<typeof FaultSpec>;
export type FaultSpecInput = z.input<typeof FaultSpec>;

export const RandomFaults = z.strictObject({
  enabled: z.boolean().default(true),
  /** One fault per slot of this length, at a random time in the slot's first half. */
  // Every ~5 minutes for 1–3 minutes: a demo shows a fault soon after start without being all faults.
  meanIntervalS: z.number().min(10).default(300),
  minDurationS: z.number().positive().default(60),
  maxDurationS: z.number().positive().default(180),
  kinds: z.array(FaultKind).min(1).default(['bearing_wear', 'overheating', 'cavitation', 'stuck', 'spike', 'drift', 'dropout']),
});

export const MqttOutput = z.strictObject({
  url: z.string().regex(/^(mqtts?|wss?|tcp|ssl):\/\//, 'expected mqtt://host:port (or mqtts/ws/wss)').default('mqtt://127.0.0.1:1883'),
  username: z.string().optional(),
  password: z.string().optional(),
  /** For mqtts:// or wss://: PEM file paths and whether to verify the server. */
  tls: TlsConfig,
  /** json: one reading per message; batch: JSON arrays per sensor per tick; sparkplug: Sparkplug B DDATA per machine. */
  format: z.enum(['json', 'batch', 'sparkplug']).default('json'),
  qos: z.union([z.literal(0), z.literal(1), z.literal(2)]).default(0),
  /** `machine`: one MQTT client per machine (per line for Sparkplug edge nodes); a number: a pool of that many. */
  connections: z.union([z.literal('machine'), z.number().int().min(1).max(10_000)]).default('machine'),
  topicPrefix: z.string().min(1).default('plant'),
  /** Largest JSON array in batch format. */
  batchMax: z.number().int().min(1).max(100_000).default(1000),
  clientIdPrefix: z.string().default('plantwatch-sim'),
  /** Publishes not yet written to the socket per client before the simulator waits (backpressure). */
  maxInflight: z.number().int().min(1).default(1000),
  includeUnit: z.boolean().default(true),
});

export const KafkaOutput = z.strictObject({
  /** Empty: the platform's Kafka clients (component) or --kafka on the CLI. */
  brokers: z.array(z.string()).default([]),
  /** One record per machine per tick with an array value (else one record per reading). */
  batch: z.boolean().default(true),
  acks: z.union([z.literal(-1), z.literal(0), z.literal(1)]).default(1),
});

export const SimulatorConfig = z.strictObject({
  enabled: z.boolean().default(true),
  /** Same seed → identical data. */
  seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(1),
  plant: PlantSpec.prefault(DEMO_PLANT),
  faults: z
    .strictObject({
      scheduled: z.array(FaultSpec).default([]),
      random: RandomFaults.prefault({}),
    })
    .prefault({}),
  output: z
    .strictObject({
      kind: z.enum(['mqtt', 'kafka', 'stdout', 'none']).default('mqtt'),
      mqtt: MqttOutput.prefault({}),
      kafka: KafkaOutput.prefault({}),
    })
    .prefault({}),
  clock: z
    .strictObject({
      /** Simulation start: `now` or an ISO-8601 time (back-fill / virtual time). */
      start: z.union([z.literal('now'), z.iso.datetime({ offset: true })]).default('now'),
      /** Simulated seconds per wall second; 0 = as fast as possible (back-fill). */
      speed: z.number().min(0).max(1_000_000).default(1),
      /** Wall-clock interval between publishing rounds. */
      tickMs: z.number().int().min(5).max(10_000).default(100),
      /** Stop after this many simulated seconds; unset = run until closed. */
      durationS: z.number().positive().optional(),
    })
    .prefault({}),
  labels: z
    .strictObject({
      /** Ground-truth label file; empty = keep in memory only (the handle's `labels`). */
      file: z.string().default(''),
      format: z.enum(['jsonl', 'csv']).default('jsonl'),
    })
    .prefault({}),
});
export type SimulatorConfig = z.infer<typeof SimulatorConfig>;
export type SimulatorConfigInput = z.input<typeof SimulatorConfig>;
