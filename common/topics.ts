/**
 * Kafka topic names: the one place they are spelled. Outside tools (kcat, Kafka Connect)
 * rely on these names, so they are part of the public contract documented in the README.
 */
export const TOPICS = {
  /** Validated sensor readings, keyed by `<site>/<line>/<machine>`. */
  readings: 'plantwatch.readings',
  /** Anomaly scores and forecasts from the anomaly service. */
  scores: 'plantwatch.scores',
  /** Alert lifecycle events (pending, firing, resolved, acknowledged, silenced). */
  alerts: 'plantwatch.alerts',
  /**
   * Re-scored history (a replay into a new model version). Apart from `scores` so alert rules never
   * fire on replayed data; the dashboards and storage can read it deliberately.
   */
  scoresRescore: 'plantwatch.scores.rescore',
  /** Anything rejected anywhere, with the reason and the raw bytes. */
  deadLetter: 'plantwatch.deadletter',
} as const;

export type TopicName = (typeof TOPICS)[keyof typeof TOPICS];

/** Record key for everything about one machine: keeps a machine's data ordered in one partition. */
export function machineKey(m: { site: string; line: string; machine: string }): string {
  return `${m.site}/${m.line}/${m.machine}`;
}

export function parseMachineKey(key: string): { site: string; line: string; machine: string } | null {
  const parts = key.split('/');
  if (parts.length !== 3 || parts.some((p) => p.length === 0)) return null;
  return { site: parts[0], line: parts[1], machine: parts[2] };
}
