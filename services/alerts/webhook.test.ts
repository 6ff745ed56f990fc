import { describe, expect, it } from 'vitest';
import type { AlertRecord } from './engine.ts';
import type { GroupNotification } from './notifier.ts';
import { genericBody, newWebhookSecret, renderBody, sign, signedHeaders, verifySignature } from './webhook.ts';
import { parseRetryAfter } from './outbox.ts';
import { WebhookSecret } from './config.schema.ts';

// The Standard Webhooks specification's published test vector.
const VECTOR = {
  secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
  ts: 1614265330,
  body: '{"test": 2432232314}',
  signature: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
};

function record(status: 'firing' | 'resolved', sensor: string, severity: 'warning' | 'critical' = 'warning'): AlertRecord {
  return {
    alert: {
      fingerprint: `fp-${sensor}`,
      rule: 'anom',
      severity,
      status,
      site: 's1',
      line: 'l1',
      machine: 'm 1',
      sensor,
      labels: { alertname: 'anom', site: 's1', line: 'l1', machine: 'm 1', sensor, severity },
      summary: `likelihood high on ${sensor}`,
      value: 0.97,
      startsAt: Date.UTC(2026, 0, 1),
      endsAt: status === 'resolved' ? Date.UTC(2026, 0, 1, 0, 5) : null,
      acknowledgedBy: null,
      acknowledgedAt: null,
      silencedUntil: null,
      updatedAt: Date.UTC(2026, 0, 1, 0, 5),
    },
    ruleType: 'likelihood',
    threshold: 0.9,
    ackComment: null,
    silencedBy: null,
  };
}

const notification = (alerts: AlertRecord[]): GroupNotification => ({
  groupKey: 'site=s1,line=l1,machine=m 1',
  groupLabels: { site: 's1', line: 'l1', machine: 'm 1' },
  status: alerts.some((a) => a.alert.status === 'firing') ? 'firing' : 'resolved',
  alerts,
  createdAt: Date.UTC(2026, 0, 1, 0, 6),
});

describe('services > alerts > webhook', () => {
  it('signs exactly like the Standard Webhooks test vector', () => {
    expect(sign(VECTOR.secret, VECTOR.id, VECTOR.ts, VECTOR.body)).toBe(VECTOR.signature);
  });

  it('verifies what it signs, and rejects a changed body, another secret, an old timestamp', () => {
    const now = 1_800_000_000;
    const h = signedHeaders(VECTOR.secret, 'msg_1', now, '{"a":1}');
    expect(verifySignature(VECTOR.secret, { ...h }, '{"a":1}', now)).toBeNull();
    expect(verifySignature(VECTOR.secret, { ...h }, '{"a":2}', now)).toMatch(/no matching/);
    expect(verifySignature(newWebhookSecret(), { ...h }, '{"a":1}', now)).toMatch(/no matching/);
    expect(verifySignature(VECTOR.secret, { ...h }, '{"a":1}', now + 301)).toMatch(/tolerance/);
    expect(verifySignature(VECTOR.secret, {}, '{"a":1}', now)).toMatch(/missing/);
    // Several signatures (key rotation): any valid v1 entry is enough.
    expect(verifySignature(VECTOR.secret, { ...h, 'webhook-signature': `v1,AAAA ${h['webhook-signature']}` }, '{"a":1}', now)).toBeNull();
  });

  it('generates secrets the config accepts', () => {
    expect(WebhookSecret.safeParse(newWebhookSecret()).success).toBe(true);
    expect(WebhookSecret.safeParse('not-a-secret').success).toBe(false);
  });

  it('generic body: documented fields, ISO times, dashboard link, truncation count', () => {
    const alerts = [record('firing', 'a'), record('firing', 'b'), record('resolved', 'c')];
    const body = genericBody(notification(alerts), alerts, 'ops', 'http://dash.example/', 2);
    expect(body).toMatchObject({
      version: '1',
      receiver: 'ops',
      status: 'firing',
      groupLabels: { site: 's1', line: 'l1', machine: 'm 1' },
      commonLabels: { alertname: 'anom', site: 's1', line: 'l1', machine: 'm 1', severity: 'warning' },
      truncatedAlerts: 1,
      dashboardUrl: 'http://dash.example/#/machine/s1/l1/m%201',
    });
    expect(body.alerts).toHaveLength(2);
    expect(body.alerts[0]).toMatchObject({
      fingerprint: 'fp-a',
      status: 'firing',
      values: { value: 0.97, threshold: 0.9 },
      startsAt: '2026-01-01T00:00:00.000Z',
      endsAt: null,
      sensor: 'a',
    });
  });

  it('Slack and Teams templates carry the headline, each alert and the dashboard link', () => {
    const alerts = [record('firing', 'a', 'critical'), record('resolved', 'c')];
    const slack = JSON.parse(renderBody({ name: 'slack', type: 'slack' }, notification(alerts), alerts, 'http://dash', 10));
    expect(slack.text).toBe('[FIRING:1, resolved:1] s1/l1/m 1');
    expect(slack.blocks[1].text.text).toContain('likelihood high on a');
    expect(slack.blocks[1].text.text).toContain(':white_check_mark:');
    expect(slack.blocks[2].elements[0].url).toBe('http://dash/#/machine/s1/l1/m%201');
    const teams = JSON.parse(renderBody({ name: 'teams', type: 'teams' }, notification(alerts), alerts, 'http://dash', 10));
    const card = teams.attachments[0].content;
    expect(teams.type).toBe('message');
    expect(card.type).toBe('AdaptiveCard');
    expect(card.body[0].text).toBe('[FIRING:1, resolved:1] s1/l1/m 1');
    expect(card.body).toHaveLength(3);
    expect(card.actions[0].url).toBe('http://dash/#/machine/s1/l1/m%201');
  });

  it('parses Retry-After as seconds or an HTTP date', () => {
    const now = Date.UTC(2026, 0, 1);
    expect(parseRetryAfter('7', now)).toBe(7000);
    expect(parseRetryAfter(new Date(now + 30_000).toUTCString(), now)).toBe(30_000);
    expect(parseRetryAfter('soon', now)).toBe(0);
    expect(parseRetryAfter(null, now)).toBe(0);
  });
});
