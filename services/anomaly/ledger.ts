/**
 * What a model version has learned from: the Kafka offset range per partition, the event-time span,
 * how many readings, and score-quality statistics. Saved beside each checkpoint so an operator can
 * tell which data a model saw and whether its scores looked sane.
 */
import type { MachineScore, SensorScore } from '../../common/messages.ts';
import type { ReadingBatch } from '../../common/reading-batch.ts';
import type { SensorScoreColumns } from './score-columns.ts';

export interface PartitionRange {
  firstOffset: string;
  lastOffset: string;
}

export interface TrainingInfo {
  topic: string;
  partitions: Record<string, PartitionRange>;
  /** Event time (reading `ts`) span, epoch ms; null before the first reading. */
  firstEventTs: number | null;
  lastEventTs: number | null;
  readings: number;
}

export interface ScoreQuality {
  sensorScores: number;
  machineScores: number;
  /** Share of sensor scores produced while the stream was still warming up. */
  warmingUpShare: number;
  /** Mean likelihood of warmed-up sensor scores. */
  meanLikelihood: number;
  /** Share of warmed-up sensor scores with likelihood ≥ 0.99 (what would be flagged). */
  highLikelihoodShare: number;
  /** Share of warmed-up readings inside the predicted band: calibration of the band (ideal ≈ band's nominal coverage). */
  bandCoverage: number;
  meanRawScore: number;
  rejected: number;
  failed: number;
}

export interface LedgerState {
  training: TrainingInfo;
  counts: {
    sensor: number;
    machine: number;
    warming: number;
    warm: number;
    likelihoodSum: number;
    high: number;
    inBand: number;
    rawSum: number;
    rejected: number;
    failed: number;
  };
}

export class TrainingLedger {
  private state: LedgerState;

  constructor(topic: string, from?: LedgerState) {
    this.state = from
      ? structuredClone(from)
      : {
          training: { topic, partitions: {}, firstEventTs: null, lastEventTs: null, readings: 0 },
          counts: { sensor: 0, machine: 0, warming: 0, warm: 0, likelihoodSum: 0, high: 0, inBand: 0, rawSum: 0, rejected: 0, failed: 0 },
        };
  }

  /** Offsets of a partition batch that reached the detector (`first`/`last` inclusive). */
  recordOffsets(partition: number, first: string, last: string): void {
    const p = this.state.training.partitions[partition];
    if (!p) {
      this.state.training.partitions[partition] = { firstOffset: first, lastOffset: last };
      return;
    }
    if (BigInt(first) < BigInt(p.firstOffset)) p.firstOffset = first;
    if (BigInt(last) > BigInt(p.lastOffset)) p.lastOffset = last;
  }

  /** Scores as objects (tests, tools); the same counts as `recordColumns`. */
  recordScores(sensor: SensorScore[], machine: MachineScore[], rejected: number, failed: number): void {
    this.count(sensor.length, machine.length, rejected, failed);
    for (const s of sensor) this.sensor(s.ts, s.value, s.lower, s.upper, s.rawScore, s.likelihood, s.warmingUp);
  }

  /** A scored batch in columns (the service's hot path): rows of `sensor` index points of `input`. */
  recordColumns(sensor: SensorScoreColumns, input: ReadingBatch, machines: number, rejected: number, failed: number): void {
    this.count(sensor.n, machines, rejected, failed);
    const points = sensor.point;
    for (let k = 0; k < sensor.n; k++) {
      const i = points[k];
      this.sensor(input.ts[i], input.value[i], sensor.lower[k], sensor.upper[k], sensor.rawScore[k], sensor.likelihood[k], sensor.warmingUp[k] === 1);
    }
  }

  private count(sensor: number, machine: number, rejected: number, failed: number): void {
    const c = this.state.counts;
    this.state.training.readings += sensor + rejected + failed;
    c.sensor += sensor;
    c.machine += machine;
    c.rejected += rejected;
    c.failed += failed;
  }

  private sensor(ts: number, value: number, lower: number, upper: number, rawScore: number, likelihood: number, warmingUp: boolean): void {
    const t = this.state.training;
    const c = this.state.counts;
    if (t.firstEventTs === null || ts < t.firstEventTs) t.firstEventTs = ts;
    if (t.lastEventTs === null || ts > t.lastEventTs) t.lastEventTs = ts;
    if (warmingUp) {
      c.warming++;
      return;
    }
    c.warm++;
    c.likelihoodSum += likelihood;
    c.rawSum += rawScore;
    if (likelihood >= 0.99) c.high++;
    if (value >= lower && value <= upper) c.inBand++;
  }

  training(): TrainingInfo {
    return structuredClone(this.state.training);
  }

  quality(): ScoreQuality {
    const c = this.state.counts;
    const share = (a: number, b: number) => (b === 0 ? 0 : a / b);
    return {
      sensorScores: c.sensor,
      machineScores: c.machine,
      warmingUpShare: share(c.warming, c.sensor),
      meanLikelihood: share(c.likelihoodSum, c.warm),
      highLikelihoodShare: share(c.high, c.warm),
      bandCoverage: share(c.inBand, c.warm),
      meanRawScore: share(c.rawSum, c.warm),
      rejected: c.rejected,
      failed: c.failed,
    };
  }

  toJSON(): LedgerState {
    return structuredClone(this.state);
  }
}
