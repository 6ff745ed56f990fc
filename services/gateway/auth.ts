/**
 * Authentication and roles for REST and sockets. A principal comes from a configured bearer token
 * (`Authorization: Bearer …`, Socket.IO `auth.token`) or from a session cookie issued by
 * `POST /api/login` (token or user/password). Sessions are stateless HMAC-signed cookies, so any
 * gateway instance with the same `sessionSecret` accepts them. Deny by default.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { GatewayConfig, Role } from './config.schema.ts';

export interface Principal {
  name: string;
  role: Role;
  via: 'token' | 'session';
}

export const SESSION_COOKIE = 'pw_session';

function safeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}

export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!header) return out;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i < 0) continue;
    const k = part.slice(0, i).trim();
    if (!k || k in out) continue;
    try {
      out[k] = decodeURIComponent(part.slice(i + 1).trim());
    } catch {
      // a malformed cookie is ignored, not fatal
    }
  }
  return out;
}

export class Authenticator {
  readonly demoToken: string | undefined;
  private readonly tokens: { token: string; role: Role; name: string }[];
  private readonly secret: Buffer;

  /**
   * `persisted` keeps the generated demo token and session key across restarts (the platform passes
   * files under its data dir), so a wall screen stays signed in when `npm start` is restarted.
   */
  constructor(
    private readonly cfg: GatewayConfig['auth'],
    now: () => number = Date.now,
    persisted: { demoToken?: string; sessionSecret?: string } = {},
  ) {
    this.now = now;
    this.tokens = [...cfg.tokens];
    if (this.tokens.length === 0 && cfg.users.length === 0) {
      // No credentials configured: one random operator token for the demo, printed with the URL.
      this.demoToken = persisted.demoToken ?? generateDemoToken();
      this.tokens.push({ token: this.demoToken, role: 'operator', name: 'demo' });
    }
    this.secret = Buffer.from(cfg.sessionSecret || persisted.sessionSecret || randomBytes(32).toString('base64url'));
  }
  private readonly now: () => number;

  fromToken(token: string | undefined | null): Principal | null {
    if (!token) return null;
    for (const t of this.tokens) if (safeEqual(t.token, token)) return { name: t.name, role: t.role, via: 'token' };
    return null;
  }

  fromPassword(username: string, password: string): Principal | null {
    for (const u of this.cfg.users) {
      // compare both so timing does not reveal which one was wrong
      const ok = safeEqual(u.username, username) && safeEqual(u.password, password);
      if (ok) return { name: u.username, role: u.role, via: 'session' };
    }
    return null;
  }

  private sign(payload: string): string {
    return createHmac('sha256', this.secret).update(payload).digest('base64url');
  }

  /** `<base64url(json)>.<hmac>` */
  issueSession(p: Principal): { value: string; maxAgeS: number } {
    const body = Buffer.from(JSON.stringify({ n: p.name, r: p.role, e: this.now() + this.cfg.sessionTtlMs })).toString('base64url');
    return { value: `${body}.${this.sign(body)}`, maxAgeS: Math.floor(this.cfg.sessionTtlMs / 1000) };
  }

  fromSession(value: string | undefined): Principal | null {
    if (!value) return null;
    const dot = value.indexOf('.');
    if (dot <= 0) return null;
    const body = value.slice(0, dot);
    if (!safeEqual(this.sign(body), value.slice(dot + 1))) return null;
    try {
      const { n, r, e } = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as { n: string; r: Role; e: number };
      if (typeof e !== 'number' || e < this.now() || (r !== 'viewer' && r !== 'operator')) return null;
      return { name: String(n), role: r, via: 'session' };
    } catch {
      return null;
    }
  }

  /** Bearer header first, then the session cookie. */
  fromHeaders(headers: IncomingHttpHeaders): Principal | null {
    const auth = headers.authorization;
    if (auth) {
      const m = /^Bearer\s+(\S+)$/i.exec(auth);
      return m ? this.fromToken(m[1]) : null;
    }
    return this.fromSession(parseCookies(headers.cookie)[SESSION_COOKIE]);
  }

  cookieHeader(value: string, maxAgeS: number): string {
    // SameSite=Strict: a cross-site page cannot ride the session to POST an acknowledge.
    return `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}${this.cfg.secureCookie ? '; Secure' : ''}`;
  }

  clearCookieHeader(): string {
    return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`;
  }
}

export function generateDemoToken(): string {
  return `demo-${randomBytes(12).toString('base64url')}`;
}

export function generateSessionSecret(): string {
  return randomBytes(32).toString('base64url');
}

export function canAcknowledge(p: Principal): boolean {
  return p.role === 'operator';
}
