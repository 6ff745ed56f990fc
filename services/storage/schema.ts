/**
 * The storage schema shared by both stores: measurement names, series identity and the InfluxDB
 * line protocol for each kind of point. README.md › Schema documents the same table.
 *
 * Point identity (what makes writes idempotent): measurement + tags + event time at ms precision.
 * Readings and sensor scores: site, line, machine, sensor, ts. Machine scores: site, line, machine, ts.
 * Alerts: fingerprint (+ its rule, severity, scope tags) and updatedAt. A replay writes the same
 * point again and overwrites it; two different values for the same sensor and millisecond are the
 * same point, last write wins.
 */
import type { Alert, MachineScore, Reading, SensorScore } from '../../common/messages.ts';

export const MEASUREMENTS = {
  readings: 'readings',
  scores: 'scores',
  machineScores: 'machine_scores',
  alerts: 'alerts',
} as const;

export const ROLLUP_MEASUREMENTS = {
  readings1m: 'readings_1m',
  readings1h: 'readings_1h',
  scores1m: 'scores_1m',
  scores1h: 'scores_1h',
} as const;

export function machineKeyOf(p: { site: string; line: string; machine: string }): string {
  return `${p.site}/${p.line}/${p.machine}`;
}

/** Series key in InfluxDB's own spelling (tags sorted), so keys loaded by SHOW SERIES match. */
export function sensorSeriesKey(measurement: string, p: { site: string; line: string; machine: string; sensor: string }): string {
  return `${measurement},line=${escapeTag(p.line)},machine=${escapeTag(p.machine)},sensor=${escapeTag(p.sensor)},site=${escapeTag(p.site)}`;
}

export function machineSeriesKey(measurement: string, p: { site: string; line: string; machine: string }): string {
  return `${measurement},line=${escapeTag(p.line)},machine=${escapeTag(p.machine)},site=${escapeTag(p.site)}`;
}

export function alertTags(a: Alert): [string, string][] {
  const tags: [string, string][] = [
    ['fingerprint', a.fingerprint],
    ['line', a.line],
    ['machine', a.machine],
    ['rule', a.rule],
  ];
  if (a.sensor) tags.push(['sensor', a.sensor]);
  tags.push(['severity', a.severity], ['site', a.site]);
  return tags;
}

export function alertSeriesKey(a: Alert): string {
  return `${MEASUREMENTS.alerts},${alertTags(a)
    .map(([k, v]) => `${k}=${escapeTag(v)}`)
    .join(',')}`;
}

const TAG_SPECIAL = /[,= \\\n]/;
/** Tag keys/values: commas, equals signs and spaces are escaped; newlines cannot be expressed and become spaces. */
export function escapeTag(v: string): string {
  if (!TAG_SPECIAL.test(v)) return v;
  return v.replace(/\n/g, ' ').replace(/([,= \\])/g, '\\$1');
}

const FIELD_SPECIAL = /["\\\n]/;
export function stringField(v: string): string {
  if (!FIELD_SPECIAL.test(v)) return `"${v}"`;
  return `"${v.replace(/(["\\])/g, '\\$1').replace(/\n/g, '\\n')}"`;
}

/** Floats are written without the `i` suffix so an integral value (5) stays a float field. */
function float(v: number): string {
  return String(v);
}

function int(v: number): string {
  return `${Math.trunc(v)}i`;
}

/** `seriesKey` = sensorSeriesKey('readings', r), when the caller has it already (the guard needs it too). */
export function readingLine(r: Reading, seriesKey = sensorSeriesKey(MEASUREMENTS.readings, r)): string {
  let line = `${seriesKey} value=${float(r.value)}`;
  if (r.unit !== undefined) line += `,unit=${stringField(r.unit)}`;
  if (r.quality !== undefined) line += `,quality="${r.quality}"`;
  return `${line},received_at=${int(r.receivedAt)} ${r.ts}`;
}

export function sensorScoreLine(s: SensorScore, seriesKey = sensorSeriesKey(MEASUREMENTS.scores, s)): string {
  let line =
    `${seriesKey} ` +
    `value=${float(s.value)},predicted=${float(s.predicted)},lower=${float(s.lower)},upper=${float(s.upper)},raw_score=${float(s.rawScore)},likelihood=${float(s.likelihood)}` +
    `,model_version=${stringField(s.modelVersion)},warming_up=${s.warmingUp}`;
  if (s.forecast) {
    line += `,forecast_horizon_ms=${int(s.forecast.horizonMs)},forecast_value=${float(s.forecast.value)},forecast_lower=${float(s.forecast.lower)},forecast_upper=${float(s.forecast.upper)}`;
  }
  if (s.timeToLimitMs !== undefined && s.timeToLimitMs !== null) line += `,time_to_limit_ms=${float(s.timeToLimitMs)}`;
  return `${line} ${s.ts}`;
}

export function machineScoreLine(s: MachineScore): string {
  return (
    `${MEASUREMENTS.machineScores},line=${escapeTag(s.line)},machine=${escapeTag(s.machine)},site=${escapeTag(s.site)} ` +
    `raw_score=${float(s.rawScore)},likelihood=${float(s.likelihood)},contributions=${stringField(JSON.stringify(s.contributions))}` +
    `,model_version=${stringField(s.modelVersion)},warming_up=${s.warmingUp} ${s.ts}`
  );
}

export function alertLine(a: Alert): string {
  const tags = alertTags(a)
    .map(([k, v]) => `${k}=${escapeTag(v)}`)
    .join(',');
  let fields = `status="${a.status}",summary=${stringField(a.summary)},labels=${stringField(JSON.stringify(a.labels))},starts_at=${int(a.startsAt)},updated_at=${int(a.updatedAt)}`;
  if (a.value !== null) fields += `,value=${float(a.value)}`;
  if (a.endsAt !== null) fields += `,ends_at=${int(a.endsAt)}`;
  if (a.acknowledgedBy !== null) fields += `,acknowledged_by=${stringField(a.acknowledgedBy)}`;
  if (a.acknowledgedAt !== null) fields += `,acknowledged_at=${int(a.acknowledgedAt)}`;
  if (a.silencedUntil !== null) fields += `,silenced_until=${int(a.silencedUntil)}`;
  return `${MEASUREMENTS.alerts},${tags} ${fields} ${a.updatedAt}`;
}

/**
 * Per-sensor values (series key, DuckDB series id) looked up by the identifier fields themselves.
 * Building and hashing a fresh ~60-character key for every point cost more than writing the line;
 * four short lookups on the strings JSON.parse produced are cheaper and allocate nothing.
 * Holds only series the cardinality guard admitted, so it is bounded by `maxSeries`.
 */
export class SensorMap<T> {
  private readonly root = new Map<string, Map<string, Map<string, Map<string, T>>>>();

  get(p: { site: string; line: string; machine: string; sensor: string }): T | undefined {
    return this.root.get(p.site)?.get(p.line)?.get(p.machine)?.get(p.sensor);
  }

  set(p: { site: string; line: string; machine: string; sensor: string }, value: T): void {
    let lines = this.root.get(p.site);
    if (!lines) this.root.set(p.site, (lines = new Map()));
    let machines = lines.get(p.line);
    if (!machines) lines.set(p.line, (machines = new Map()));
    let sensors = machines.get(p.machine);
    if (!sensors) machines.set(p.machine, (sensors = new Map()));
    sensors.set(p.sensor, value);
  }

  clear(): void {
    this.root.clear();
  }
}
