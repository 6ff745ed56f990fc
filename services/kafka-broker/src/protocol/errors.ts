/**
 * Kafka error codes the broker returns (https://kafka.apache.org/protocol#protocol_error_codes).
 * A data table: code, name, whether the client may retry. Codes are Kafka's and never change.
 */
export const ErrorCode = {
  NONE: 0,
  OFFSET_OUT_OF_RANGE: 1,
  CORRUPT_MESSAGE: 2,
  UNKNOWN_TOPIC_OR_PARTITION: 3,
  COORDINATOR_NOT_AVAILABLE: 15,
  NOT_COORDINATOR: 16,
  INVALID_TOPIC_EXCEPTION: 17,
  RECORD_LIST_TOO_LARGE: 18,
  INVALID_REQUIRED_ACKS: 21,
  ILLEGAL_GENERATION: 22,
  INCONSISTENT_GROUP_PROTOCOL: 23,
  INVALID_GROUP_ID: 24,
  UNKNOWN_MEMBER_ID: 25,
  INVALID_SESSION_TIMEOUT: 26,
  REBALANCE_IN_PROGRESS: 27,
  UNSUPPORTED_VERSION: 35,
  TOPIC_ALREADY_EXISTS: 36,
  INVALID_PARTITIONS: 37,
  INVALID_REPLICATION_FACTOR: 38,
  INVALID_CONFIG: 40,
  INVALID_REQUEST: 42,
  OUT_OF_ORDER_SEQUENCE_NUMBER: 45,
  DUPLICATE_SEQUENCE_NUMBER: 46,
  INVALID_PRODUCER_EPOCH: 47,
  UNKNOWN_SERVER_ERROR: -1,
  KAFKA_STORAGE_ERROR: 56,
  MEMBER_ID_REQUIRED: 79,
  INVALID_RECORD: 87,
} as const;

export type ErrorName = keyof typeof ErrorCode;

export interface KafkaErrorInfo {
  code: number;
  name: ErrorName;
  retriable: boolean;
}

const RETRIABLE = new Set<ErrorName>(['KAFKA_STORAGE_ERROR', 'CORRUPT_MESSAGE', 'UNKNOWN_TOPIC_OR_PARTITION', 'COORDINATOR_NOT_AVAILABLE', 'NOT_COORDINATOR', 'REBALANCE_IN_PROGRESS']);

export const ERRORS: readonly KafkaErrorInfo[] = (Object.keys(ErrorCode) as ErrorName[]).map((name) => ({
  code: ErrorCode[name],
  name,
  retriable: RETRIABLE.has(name),
}));

const byCode = new Map(ERRORS.map((e) => [e.code, e]));
export function errorName(code: number): string {
  return byCode.get(code)?.name ?? `ERROR_${code}`;
}
