/**
 * Broker policy as named async hooks (STYLE.md §10), deny by default:
 *   preConnect → authenticate → authorizePublish / authorizeSubscribe → mapToKafka.
 * The aedes wrapper (mqtt-broker.ts) adapts these to aedes' callbacks; nothing here imports aedes.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { EdgeConfig, EdgeUser } from './config.schema.ts';
import { filterCovers, filterMatches } from './mapping.ts';
import type { InboundMessage } from './pipeline.ts';

/** Who a connected device is, after authenticate. */
export interface Principal {
  clientId: string;
  username: string | null;
  publish: string[];
  subscribe: string[];
}

export type AuthResult = { ok: true; principal: Principal } | { ok: false; reason: 'bad_credentials' | 'not_authorized' };

export interface BrokerHooks {
  /** Before CONNECT is processed (e.g. rate limits). Return false to drop the connection. */
  preConnect(info: { clientId: string; remoteAddress?: string }): Promise<boolean>;
  authenticate(info: { clientId: string; username?: string; password?: Buffer }): Promise<AuthResult>;
  authorizePublish(p: Principal, topic: string): Promise<boolean>;
  authorizeSubscribe(p: Principal, filter: string): Promise<boolean>;
  /**
   * Relay one message. Resolves when it may be acknowledged to the device (durable in Kafka or the
   * spool); rejects to refuse it (the connection is closed and the device resends, [MQTT-3.3.5-2]).
   */
  mapToKafka(msg: InboundMessage): Promise<void>;
}

const UNSAFE_FOR_ACL = /[/+#\u0000]/;
/** Publish decisions remembered per connected client. */
const ACL_CACHE_PER_CLIENT = 256;

/** Replaces `{username}`/`{clientId}`; a value with ACL metacharacters makes the filter unusable. */
function expandFilter(filter: string, clientId: string, username: string | null): string | null {
  let out = filter;
  if (out.includes('{clientId}')) {
    if (UNSAFE_FOR_ACL.test(clientId) || clientId === '') return null;
    out = out.replaceAll('{clientId}', clientId);
  }
  if (out.includes('{username}')) {
    if (username === null || UNSAFE_FOR_ACL.test(username) || username === '') return null;
    out = out.replaceAll('{username}', username);
  }
  return out;
}

function expandAll(filters: string[], clientId: string, username: string | null): string[] {
  return filters.map((f) => expandFilter(f, clientId, username)).filter((f): f is string => f !== null);
}

function sha256(b: Buffer | string): Buffer {
  return createHash('sha256').update(b).digest();
}

function passwordMatches(user: EdgeUser, password: Buffer | undefined): boolean {
  if (!password) return false;
  const want = user.passwordSha256 ? Buffer.from(user.passwordSha256, 'hex') : sha256(user.password ?? '');
  // Compare digests so timing does not reveal the length or prefix of the secret.
  return timingSafeEqual(sha256(password), want);
}

/** ACL hooks from `embedded.auth`; `mapToKafka` is supplied by the bridge. */
export function configHooks(auth: EdgeConfig['embedded']['auth'], mapToKafka: BrokerHooks['mapToKafka']): BrokerHooks {
  const users = new Map(auth.users.map((u) => [u.username, u]));
  const decisions = new WeakMap<Principal, Map<string, boolean>>();
  return {
    async preConnect() {
      return true;
    },
    async authenticate({ clientId, username, password }) {
      if (username === undefined || username === '') {
        if (!auth.anonymous.enabled) return { ok: false, reason: 'not_authorized' };
        return { ok: true, principal: { clientId, username: null, publish: expandAll(auth.anonymous.publish, clientId, null), subscribe: expandAll(auth.anonymous.subscribe, clientId, null) } };
      }
      const user = users.get(username);
      if (!user || !passwordMatches(user, password)) return { ok: false, reason: 'bad_credentials' };
      if (user.clientIdPattern && !new RegExp(`^(?:${user.clientIdPattern})$`).test(clientId)) return { ok: false, reason: 'not_authorized' };
      return { ok: true, principal: { clientId, username, publish: expandAll(user.publish, clientId, username), subscribe: expandAll(user.subscribe, clientId, username) } };
    },
    async authorizePublish(p, topic) {
      // [MQTT-4.7.2-1] `$` topics are the broker's; devices never publish there.
      if (topic.startsWith('$')) return false;
      // Devices publish to a few topics over and over: remember the decision per principal (bounded).
      let cache = decisions.get(p);
      if (!cache) decisions.set(p, (cache = new Map()));
      let allowed = cache.get(topic);
      if (allowed === undefined) {
        allowed = p.publish.some((f) => filterMatches(f, topic));
        if (cache.size >= ACL_CACHE_PER_CLIENT) cache.clear();
        cache.set(topic, allowed);
      }
      return allowed;
    },
    async authorizeSubscribe(p, filter) {
      return p.subscribe.some((f) => filterCovers(f, filter));
    },
    mapToKafka,
  };
}
