/**
 * Stable error and dead-letter codes of the alert service (documented in README.md › Errors; never
 * reused). REST error bodies use the codes in `ALERTS_REST_ERRORS`.
 */
export const ALERTS_ERRORS = {
  /** `snapshot.json` cannot be read: refuse to start rather than forget every alert and queued notification. */
  stateCorrupt: 'ALERTS_STATE_CORRUPT',
  /** A journal write after close (a bug): not retried. */
  journalClosed: 'ALERTS_JOURNAL_CLOSED',
  /** HttpAlertsApi: the alert service is unreachable (retriable). */
  apiUnavailable: 'ALERTS_API_UNAVAILABLE',
  /** HttpAlertsApi: the alert service answered non-2xx (retriable for 5xx and 429). */
  apiError: 'ALERTS_API_ERROR',
} as const;

/** Dead-letter codes for refused Kafka records. */
export const ALERTS_DEAD_LETTER = {
  empty: 'PAYLOAD_EMPTY',
  notJson: 'PAYLOAD_NOT_JSON',
  readingInvalid: 'READING_INVALID',
  scoreInvalid: 'SCORE_INVALID',
  topicUnexpected: 'TOPIC_UNEXPECTED',
} as const;

export const ALERTS_REST_ERRORS = {
  badRequest: 'BAD_REQUEST',
  unauthorized: 'UNAUTHORIZED',
  alertNotFound: 'ALERT_NOT_FOUND',
  ruleInvalid: 'RULE_INVALID',
  ruleExists: 'RULE_EXISTS',
  ruleNotFound: 'RULE_NOT_FOUND',
  bodyTooLarge: 'BODY_TOO_LARGE',
  notFound: 'NOT_FOUND',
} as const;
