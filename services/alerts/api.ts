/**
 * What the gateway (dashboards, REST) needs from the alert service. In `npm start` the alert
 * service's handle implements it in-process; a gateway deployed apart uses the HTTP client
 * implementation against the alert service's REST API. Both must behave the same.
 */
import type { Alert } from '../../common/messages.ts';

export interface AlertFilter {
  site?: string;
  line?: string;
  machine?: string;
  /** Default: pending and firing. */
  status?: ('pending' | 'firing' | 'resolved')[];
  limit?: number;
}

export interface AlertsApi {
  list(filter?: AlertFilter): Promise<Alert[]>;
  /** Acknowledge by fingerprint; returns the updated alert, or null if unknown. */
  acknowledge(fingerprint: string, by: string, comment?: string): Promise<Alert | null>;
  /** Silence notifications for the fingerprint until the given time. */
  silence(fingerprint: string, untilMs: number, by: string): Promise<Alert | null>;
}
