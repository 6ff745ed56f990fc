/**
 * The cardinality guard: a new series beyond the per-machine or the overall limit is refused
 * (counted, logged once per series) instead of being written. InfluxDB 1.x keeps every series in
 * its index; a misconfigured device inventing sensor names would otherwise take the database down.
 *
 * A "series" is one measurement + tag set (a sensor's readings and its scores are two series).
 * Known series are loaded from the database on init, so the limit survives restarts. Several writer
 * processes each enforce the limit on what they have seen: the bound is per writer.
 */
import type { Logger } from '../../common/logger.ts';
import { prom, type Registry } from '../../common/metrics.ts';

export interface CardinalityLimits {
  maxSeriesPerMachine: number;
  maxSeries: number;
}

/** Refusals remembered for log de-duplication; beyond this they are counted but not remembered. */
const MAX_REMEMBERED_REFUSALS = 10_000;

export class CardinalityGuard {
  private readonly known = new Set<string>();
  private readonly perMachine = new Map<string, number>();
  private readonly refused = new Set<string>();
  private readonly refusedCounter: prom.Counter<'measurement' | 'limit'> | undefined;
  private readonly seriesGauge: prom.Gauge | undefined;

  constructor(
    private readonly limits: CardinalityLimits,
    private readonly logger: Logger,
    metrics?: Registry,
  ) {
    if (metrics) {
      this.refusedCounter = getOrCreate(metrics, 'plantwatch_storage_series_refused_total', () =>
        new prom.Counter({ name: 'plantwatch_storage_series_refused_total', help: 'Points refused by the cardinality guard (new series beyond a limit)', labelNames: ['measurement', 'limit'] as const, registers: [metrics] }),
      );
      this.seriesGauge = getOrCreate(metrics, 'plantwatch_storage_series', () =>
        new prom.Gauge({ name: 'plantwatch_storage_series', help: 'Series known to the cardinality guard', registers: [metrics] }),
      );
    }
  }

  get size(): number {
    return this.known.size;
  }

  /** Registers an existing series without checking limits (loaded from the database). */
  preload(seriesKey: string, machineKey: string): void {
    if (this.known.has(seriesKey)) return;
    this.known.add(seriesKey);
    this.perMachine.set(machineKey, (this.perMachine.get(machineKey) ?? 0) + 1);
    this.seriesGauge?.set(this.known.size);
  }

  /** True when the series is known or may be created; false (and counted) when refused. */
  admit(measurement: string, seriesKey: string, machine: { site: string; line: string; machine: string }): boolean {
    if (this.known.has(seriesKey)) return true;
    const machineKey = `${machine.site}/${machine.line}/${machine.machine}`;
    const machineCount = this.perMachine.get(machineKey) ?? 0;
    let limit: 'machine' | 'total' | undefined;
    if (machineCount >= this.limits.maxSeriesPerMachine) limit = 'machine';
    else if (this.known.size >= this.limits.maxSeries) limit = 'total';
    if (limit) {
      this.refusedCounter?.inc({ measurement, limit });
      if (!this.refused.has(seriesKey)) {
        if (this.refused.size < MAX_REMEMBERED_REFUSALS) this.refused.add(seriesKey);
        this.logger.warn(
          { code: 'STORAGE_CARDINALITY_LIMIT', series: seriesKey, machine: machineKey, limit, machineSeries: machineCount, totalSeries: this.known.size, limits: this.limits },
          `new series refused: ${limit === 'machine' ? `machine ${machineKey} already has ${machineCount} series (limit ${this.limits.maxSeriesPerMachine})` : `${this.known.size} series in total (limit ${this.limits.maxSeries})`}`,
        );
      }
      return false;
    }
    this.preload(seriesKey, machineKey);
    return true;
  }

  /** Forgets everything (e.g. the database was dropped and is set up again). */
  clear(): void {
    this.known.clear();
    this.perMachine.clear();
    this.refused.clear();
    this.seriesGauge?.set(0);
  }
}

/** prom-client throws on duplicate names in one registry; two stores may share the writer's registry. */
export function getOrCreate<T extends prom.Metric>(registry: Registry, name: string, create: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? create();
}
