/**
 * The gateway's stable error codes (never reused). REST answers `{ error: <code>, message, details? }`
 * with the HTTP status below; socket acks answer `{ ok: false, error: { code, message } }`.
 */
import { PlatformError } from '../../common/errors.ts';

export const GATEWAY_ERRORS = {
  GATEWAY_UNAUTHORIZED: { status: 401, message: 'missing or invalid token/session' },
  GATEWAY_FORBIDDEN: { status: 403, message: 'the role of this token may not do that' },
  GATEWAY_BAD_REQUEST: { status: 400, message: 'query or body failed validation' },
  GATEWAY_NOT_FOUND: { status: 404, message: 'no such route or resource' },
  GATEWAY_LOGIN_FAILED: { status: 401, message: 'unknown token or wrong user/password' },
  GATEWAY_STORE_UNAVAILABLE: { status: 503, message: 'the time-series store failed to answer' },
  GATEWAY_ALERTS_UNAVAILABLE: { status: 503, message: 'the alert service failed to answer' },
  GATEWAY_TOO_MANY_SUBSCRIPTIONS: { status: 429, message: 'too many subscriptions on one socket' },
  GATEWAY_UI_MISSING: { status: 503, message: 'the dashboard UI is not built' },
  GATEWAY_INTERNAL: { status: 500, message: 'unexpected error' },
} as const;

export type GatewayErrorCode = keyof typeof GATEWAY_ERRORS;

export class GatewayError extends PlatformError {
  readonly status: number;
  readonly details?: unknown;
  constructor(code: GatewayErrorCode, message?: string, opts: { cause?: unknown; details?: unknown; retriable?: boolean } = {}) {
    super(code, message ?? GATEWAY_ERRORS[code].message, { retriable: opts.retriable ?? false, cause: opts.cause });
    this.name = 'GatewayError';
    this.status = GATEWAY_ERRORS[code].status;
    this.details = opts.details;
  }
  toJSON(): { error: string; message: string; details?: unknown } {
    return { error: this.code, message: this.message, ...(this.details === undefined ? {} : { details: this.details }) };
  }
}
