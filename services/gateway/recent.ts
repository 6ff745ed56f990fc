/**
 * The gateway's in-memory recent history, filled from its own live consumer. It bridges the gap
 * between what the store already holds (the storage writer lags by its batch interval) and what
 * arrives live after a subscription starts, and answers "latest per sensor" even while the store
 * is behind. Bounded per series by age and count, and by the number of machines.
 */
import type { Reading, Score, SensorScore, MachineScore } from '../../common/messages.ts';
import type { LiveReading, Scope } from './protocol.ts';
import { inScope, machineKeyOf } from './protocol.ts';

type ScoreTuple = [number, number, number, number, number, number];

class PointRing<P extends { 0: number }> {
  readonly points: P[] = [];
  /** Inserts in event-time order; an equal ts replaces (device re-sent it). */
  add(p: P, windowMs: number, maxPoints: number): void {
    const pts = this.points;
    const n = pts.length;
    if (n === 0 || p[0] > pts[n - 1][0]) pts.push(p);
    else {
      let lo = 0;
      let hi = n;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (pts[mid][0] < p[0]) lo = mid + 1;
        else hi = mid;
      }
      if (lo < n && pts[lo][0] === p[0]) pts[lo] = p;
      else pts.splice(lo, 0, p);
    }
    const newest = pts[pts.length - 1][0];
    let drop = 0;
    while (drop < pts.length && pts[drop][0] < newest - windowMs) drop++;
    drop = Math.max(drop, pts.length - maxPoints);
    if (drop > 0) pts.splice(0, drop);
  }
  after(ts: number): P[] {
    const pts = this.points;
    let i = pts.length;
    while (i > 0 && pts[i - 1][0] > ts) i--;
    return pts.slice(i);
  }
}

interface SensorEntry {
  ring: PointRing<[number, number]>;
  latest: LiveReading;
}

interface MachineEntry {
  site: string;
  line: string;
  machine: string;
  sensors: Map<string, SensorEntry>;
  scoreRings: Map<string, PointRing<ScoreTuple>>;
  latestScores: Map<string, SensorScore | MachineScore>;
  lastSeen: number;
  touchedAt: number;
}

export function toLiveReading(r: Reading): LiveReading {
  const out: LiveReading = { site: r.site, line: r.line, machine: r.machine, sensor: r.sensor, ts: r.ts, value: r.value };
  if (r.unit !== undefined) out.unit = r.unit;
  if (r.quality !== undefined) out.quality = r.quality;
  return out;
}

export class RecentBuffer {
  private readonly machines = new Map<string, MachineEntry>();

  constructor(
    private readonly windowMs: number,
    private readonly maxPointsPerSeries: number,
    private readonly maxMachines = 20_000,
  ) {}

  private entry(m: { site: string; line: string; machine: string }, now: number): MachineEntry {
    const mk = machineKeyOf(m);
    let e = this.machines.get(mk);
    if (!e) {
      if (this.machines.size >= this.maxMachines) this.evictOldest();
      e = { site: m.site, line: m.line, machine: m.machine, sensors: new Map(), scoreRings: new Map(), latestScores: new Map(), lastSeen: -Infinity, touchedAt: now };
      this.machines.set(mk, e);
    }
    e.touchedAt = now;
    return e;
  }

  private evictOldest(): void {
    let oldest: string | null = null;
    let t = Infinity;
    for (const [k, e] of this.machines) if (e.touchedAt < t) (t = e.touchedAt), (oldest = k);
    if (oldest) this.machines.delete(oldest);
  }

  addReading(r: Reading, now: number): void {
    const e = this.entry(r, now);
    let s = e.sensors.get(r.sensor);
    if (!s) {
      s = { ring: new PointRing(), latest: toLiveReading(r) };
      e.sensors.set(r.sensor, s);
    } else if (r.ts >= s.latest.ts) s.latest = toLiveReading(r);
    s.ring.add([r.ts, r.value], this.windowMs, this.maxPointsPerSeries);
    if (r.ts > e.lastSeen) e.lastSeen = r.ts;
  }

  addScore(sc: Score, now: number): void {
    const e = this.entry(sc, now);
    const key = sc.kind === 'sensor' ? sc.sensor : '*';
    const prev = e.latestScores.get(key);
    if (!prev || sc.ts >= prev.ts) e.latestScores.set(key, sc);
    if (sc.kind === 'sensor') {
      let ring = e.scoreRings.get(key);
      if (!ring) e.scoreRings.set(key, (ring = new PointRing()));
      ring.add([sc.ts, sc.value, sc.predicted, sc.lower, sc.upper, sc.likelihood], this.windowMs, this.maxPointsPerSeries);
    }
  }

  private inScope(scope: Scope): MachineEntry[] {
    if (scope.site !== undefined && scope.line !== undefined && scope.machine !== undefined) {
      const e = this.machines.get(machineKeyOf(scope as Required<Scope>));
      return e ? [e] : [];
    }
    return [...this.machines.values()].filter((e) => inScope(scope, e));
  }

  machinesIn(scope: Scope): { site: string; line: string; machine: string; sensors: string[]; lastSeen: number | null }[] {
    return this.inScope(scope).map((e) => ({
      site: e.site,
      line: e.line,
      machine: e.machine,
      sensors: [...e.sensors.keys()],
      lastSeen: Number.isFinite(e.lastSeen) ? e.lastSeen : null,
    }));
  }

  latestIn(scope: Scope): LiveReading[] {
    return this.inScope(scope).flatMap((e) => [...e.sensors.values()].map((s) => s.latest));
  }

  latestScoresIn(scope: Scope): (SensorScore | MachineScore)[] {
    return this.inScope(scope).flatMap((e) => [...e.latestScores.values()]);
  }

  /** Raw points of one sensor newer than `afterTs`. */
  readingsAfter(m: Required<Scope>, sensor: string, afterTs: number): [number, number][] {
    return this.machines.get(machineKeyOf(m))?.sensors.get(sensor)?.ring.after(afterTs) ?? [];
  }

  scoresAfter(m: Required<Scope>, sensor: string, afterTs: number): ScoreTuple[] {
    return this.machines.get(machineKeyOf(m))?.scoreRings.get(sensor)?.after(afterTs) ?? [];
  }

  sensorsOf(m: Required<Scope>): { readings: string[]; scores: string[] } {
    const e = this.machines.get(machineKeyOf(m));
    return { readings: e ? [...e.sensors.keys()] : [], scores: e ? [...e.scoreRings.keys()] : [] };
  }

  get machineCount(): number {
    return this.machines.size;
  }
}
