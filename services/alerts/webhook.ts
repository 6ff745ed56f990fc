/**
 * Webhook bodies and signatures.
 *
 * Signing follows the Standard Webhooks specification (standardwebhooks.com):
 *   webhook-id:        msg_<random>, the same on every retry of one notification (receivers dedup on it)
 *   webhook-timestamp: Unix seconds of this attempt (receivers reject old ones: replay protection)
 *   webhook-signature: v1,<base64 HMAC-SHA256 over "<id>.<timestamp>.<body>">; space-separated list
 * The secret is `whsec_<base64 key>`; the HMAC key is the base64-decoded part.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AlertRecord } from './engine.ts';
import type { GroupNotification } from './notifier.ts';
import type { ReceiverConfig } from './config.schema.ts';

export const PAYLOAD_VERSION = '1';

export function newWebhookId(): string {
  return `msg_${randomBytes(16).toString('base64url')}`;
}

/** A fresh Standard Webhooks secret (24 random bytes). */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(24).toString('base64')}`;
}

function secretKey(secret: string): Buffer {
  return Buffer.from(secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret, 'base64');
}

export function sign(secret: string, id: string, timestampSec: number, body: string): string {
  const mac = createHmac('sha256', secretKey(secret)).update(`${id}.${timestampSec}.${body}`).digest('base64');
  return `v1,${mac}`;
}

export interface SignedHeaders {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
}

export function signedHeaders(secret: string, id: string, timestampSec: number, body: string): SignedHeaders {
  return { 'webhook-id': id, 'webhook-timestamp': String(timestampSec), 'webhook-signature': sign(secret, id, timestampSec, body) };
}

/**
 * What a receiver does: recompute the signature and compare in constant time, and refuse
 * timestamps more than `toleranceSec` away from now. Returns null when valid, else the reason.
 */
export function verifySignature(
  secret: string,
  headers: Record<string, string | string[] | undefined>,
  body: string,
  nowSec = Math.floor(Date.now() / 1000),
  toleranceSec = 300,
): string | null {
  const id = headers['webhook-id'];
  const ts = headers['webhook-timestamp'];
  const sigs = headers['webhook-signature'];
  if (typeof id !== 'string' || typeof ts !== 'string' || typeof sigs !== 'string') return 'missing webhook-id, webhook-timestamp or webhook-signature';
  const tsNum = Number(ts);
  if (!Number.isInteger(tsNum)) return 'webhook-timestamp is not an integer';
  if (Math.abs(nowSec - tsNum) > toleranceSec) return 'webhook-timestamp outside the tolerance (replay?)';
  const expected = Buffer.from(sign(secret, id, tsNum, body).slice(3), 'base64');
  for (const candidate of sigs.split(' ')) {
    const [version, mac] = candidate.split(',', 2);
    if (version !== 'v1' || !mac) continue;
    const got = Buffer.from(mac, 'base64');
    if (got.length === expected.length && timingSafeEqual(got, expected)) return null;
  }
  return 'no matching v1 signature';
}

// ---- bodies ----------------------------------------------------------------------------------

export interface GenericAlertPayload {
  fingerprint: string;
  status: 'firing' | 'resolved';
  rule: string;
  severity: string;
  site: string;
  line: string;
  machine: string;
  sensor: string | null;
  labels: Record<string, string>;
  summary: string;
  values: { value: number | null; threshold: number | null };
  startsAt: string;
  endsAt: string | null;
  acknowledgedBy: string | null;
  acknowledgedAt: string | null;
  ackComment: string | null;
  dashboardUrl: string;
}

export interface GenericPayload {
  version: string;
  receiver: string;
  groupKey: string;
  status: 'firing' | 'resolved';
  groupLabels: Record<string, string>;
  commonLabels: Record<string, string>;
  alerts: GenericAlertPayload[];
  truncatedAlerts: number;
  dashboardUrl: string;
  createdAt: string;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export function machineDashboardUrl(base: string, a: { site: string; line: string; machine: string }): string {
  const trimmed = base.replace(/\/+$/, '');
  return `${trimmed}/#/machine/${encodeURIComponent(a.site)}/${encodeURIComponent(a.line)}/${encodeURIComponent(a.machine)}`;
}

function alertPayload(rec: AlertRecord, dashboardUrl: string): GenericAlertPayload {
  const a = rec.alert;
  return {
    fingerprint: a.fingerprint,
    status: a.status === 'resolved' ? 'resolved' : 'firing',
    rule: a.rule,
    severity: a.severity,
    site: a.site,
    line: a.line,
    machine: a.machine,
    sensor: a.sensor ?? null,
    labels: a.labels,
    summary: a.summary,
    values: { value: a.value, threshold: rec.threshold },
    startsAt: iso(a.startsAt)!,
    endsAt: iso(a.endsAt),
    acknowledgedBy: a.acknowledgedBy,
    acknowledgedAt: iso(a.acknowledgedAt),
    ackComment: rec.ackComment,
    dashboardUrl: machineDashboardUrl(dashboardUrl, a),
  };
}

function commonLabels(alerts: AlertRecord[]): Record<string, string> {
  if (alerts.length === 0) return {};
  const out: Record<string, string> = { ...alerts[0].alert.labels };
  for (const { alert } of alerts.slice(1)) {
    for (const k of Object.keys(out)) if (alert.labels[k] !== out[k]) delete out[k];
  }
  return out;
}

export function genericBody(n: GroupNotification, alerts: AlertRecord[], receiver: string, dashboardUrl: string, maxAlerts: number): GenericPayload {
  const listed = alerts.slice(0, maxAlerts);
  const first = alerts[0].alert;
  return {
    version: PAYLOAD_VERSION,
    receiver,
    groupKey: n.groupKey,
    status: alerts.some((r) => r.alert.status === 'firing') ? 'firing' : 'resolved',
    groupLabels: n.groupLabels,
    commonLabels: commonLabels(alerts),
    alerts: listed.map((r) => alertPayload(r, dashboardUrl)),
    truncatedAlerts: alerts.length - listed.length,
    dashboardUrl: machineDashboardUrl(dashboardUrl, first),
    createdAt: new Date(n.createdAt).toISOString(),
  };
}

const SEVERITY_EMOJI: Record<string, string> = { critical: ':red_circle:', warning: ':large_orange_circle:', info: ':large_blue_circle:' };

function headline(p: GenericPayload): string {
  const firing = p.alerts.filter((a) => a.status === 'firing').length;
  const resolved = p.alerts.length - firing;
  const where = Object.values(p.groupLabels).filter(Boolean).join('/') || 'plant';
  return p.status === 'firing'
    ? `[FIRING:${firing}${resolved ? `, resolved:${resolved}` : ''}] ${where}`
    : `[RESOLVED:${resolved}] ${where}`;
}

function alertLine(a: GenericAlertPayload): string {
  const state = a.status === 'resolved' ? 'resolved' : a.severity;
  return `${a.status === 'resolved' ? ':white_check_mark:' : (SEVERITY_EMOJI[a.severity] ?? '')} *${a.rule}* (${state}) ${a.summary}`;
}

/** Slack incoming webhook: `text` (notification fallback) plus Block Kit sections. */
export function slackBody(p: GenericPayload): Record<string, unknown> {
  const lines = p.alerts.map(alertLine);
  if (p.truncatedAlerts > 0) lines.push(`…and ${p.truncatedAlerts} more`);
  return {
    text: headline(p),
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: headline(p).slice(0, 150) } },
      // Slack limits a section's text to 3000 characters.
      { type: 'section', text: { type: 'mrkdwn', text: lines.join('\n').slice(0, 2900) } },
      { type: 'actions', elements: [{ type: 'button', text: { type: 'plain_text', text: 'Open dashboard' }, url: p.dashboardUrl }] },
    ],
  };
}

/** Microsoft Teams incoming webhook (Workflows / connector): a message carrying an Adaptive Card. */
export function teamsBody(p: GenericPayload): Record<string, unknown> {
  return {
    type: 'message',
    attachments: [
      {
        contentType: 'application/vnd.microsoft.card.adaptive',
        contentUrl: null,
        content: {
          $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
          type: 'AdaptiveCard',
          version: '1.4',
          body: [
            { type: 'TextBlock', size: 'Large', weight: 'Bolder', text: headline(p), color: p.status === 'firing' ? 'Attention' : 'Good', wrap: true },
            ...p.alerts.map((a) => ({
              type: 'TextBlock',
              wrap: true,
              text: `${a.status === 'resolved' ? '✅' : a.severity === 'critical' ? '🔴' : '🟠'} **${a.rule}** (${a.status === 'resolved' ? 'resolved' : a.severity}): ${a.summary}`,
            })),
            ...(p.truncatedAlerts > 0 ? [{ type: 'TextBlock', text: `…and ${p.truncatedAlerts} more`, isSubtle: true }] : []),
          ],
          actions: [{ type: 'Action.OpenUrl', title: 'Open dashboard', url: p.dashboardUrl }],
        },
      },
    ],
  };
}

export function renderBody(receiver: Pick<ReceiverConfig, 'name' | 'type'>, n: GroupNotification, alerts: AlertRecord[], dashboardUrl: string, maxAlerts: number): string {
  const generic = genericBody(n, alerts, receiver.name, dashboardUrl, maxAlerts);
  if (receiver.type === 'slack') return JSON.stringify(slackBody(generic));
  if (receiver.type === 'teams') return JSON.stringify(teamsBody(generic));
  return JSON.stringify(generic);
}
