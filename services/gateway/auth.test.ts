import { describe, expect, it } from 'vitest';
import { Authenticator, parseCookies } from './auth.ts';
import { AuthConfig } from './config.schema.ts';

describe('services > gateway > auth', () => {
  const cfg = AuthConfig.parse({ tokens: [{ token: 'viewer-secret-1', role: 'viewer', name: 'v' }], sessionSecret: 'shared-secret', sessionTtlMs: 1000 });

  it('maps tokens to roles and denies anything else', () => {
    const a = new Authenticator(cfg);
    expect(a.fromToken('viewer-secret-1')).toEqual({ name: 'v', role: 'viewer', via: 'token' });
    expect(a.fromToken('viewer-secret-2')).toBeNull();
    expect(a.fromToken('')).toBeNull();
    expect(a.fromHeaders({ authorization: 'Bearer viewer-secret-1' })?.role).toBe('viewer');
    expect(a.fromHeaders({ authorization: 'Basic dXNlcjpwYXNz' })).toBeNull();
    expect(a.demoToken).toBeUndefined();
  });

  it('generates a demo operator token only when nothing is configured', () => {
    const a = new Authenticator(AuthConfig.parse({}));
    expect(a.demoToken).toMatch(/^demo-[A-Za-z0-9_-]{16}$/);
    expect(a.fromToken(a.demoToken!)?.role).toBe('operator');
    expect(new Authenticator(AuthConfig.parse({})).demoToken).not.toBe(a.demoToken);
  });

  it('issues sessions any instance with the same secret accepts, until they expire', () => {
    let now = 1_000_000;
    const a = new Authenticator(cfg, () => now);
    const b = new Authenticator(cfg, () => now);
    const other = new Authenticator({ ...cfg, sessionSecret: 'different' }, () => now);
    const s = a.issueSession({ name: 'v', role: 'viewer', via: 'token' });
    expect(b.fromSession(s.value)).toEqual({ name: 'v', role: 'viewer', via: 'session' });
    expect(other.fromSession(s.value)).toBeNull();
    expect(b.fromHeaders({ cookie: `x=1; pw_session=${s.value}` })?.name).toBe('v');
    // A forged role does not verify.
    const [body, sig] = s.value.split('.');
    const forged = Buffer.from(Buffer.from(body, 'base64url').toString().replace('viewer', 'operator')).toString('base64url');
    expect(b.fromSession(`${forged}.${sig}`)).toBeNull();
    now += 1001;
    expect(b.fromSession(s.value)).toBeNull();
  });

  it('parses cookies leniently', () => {
    expect(parseCookies('a=1; b=%E2%9C%93; bad=%E0; c')).toEqual({ a: '1', b: '✓' });
  });
});
