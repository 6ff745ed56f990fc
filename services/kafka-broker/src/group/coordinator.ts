/**
 * Consumer group coordinator (the classic protocol, KIP-62/KIP-394): one state machine per group,
 *   Empty → PreparingRebalance → CompletingRebalance → Stable
 * with generations, member ids, held JoinGroup responses, the leader's assignment handed out by
 * SyncGroup, and session timeouts. Pure logic over timers: no sockets, no codecs. Responses come
 * back through promises that resolve when the group's state allows (a held join, a follower's sync).
 */
import { randomUUID } from 'node:crypto';
import { ErrorCode } from '../protocol/errors.ts';

export type GroupState = 'Empty' | 'PreparingRebalance' | 'CompletingRebalance' | 'Stable' | 'Dead';

export interface JoinResult {
  errorCode: number;
  generationId: number;
  protocolName: string | null;
  leader: string;
  memberId: string;
  members: { memberId: string; groupInstanceId: string | null; metadata: Buffer }[];
}

export interface SyncResult {
  errorCode: number;
  assignment: Buffer;
}

interface Member {
  id: string;
  clientId: string;
  clientHost: string;
  groupInstanceId: string | null;
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  protocolType: string;
  protocols: { name: string; metadata: Buffer }[];
  assignment: Buffer;
  lastSeen: number;
  joinWaiter?: (r: JoinResult) => void;
  syncWaiter?: (r: SyncResult) => void;
}

export interface Group {
  id: string;
  state: GroupState;
  generation: number;
  protocolType: string | null;
  protocolName: string | null;
  leader: string | null;
  members: Map<string, Member>;
  /** Member ids handed out with MEMBER_ID_REQUIRED, not yet used: id → expiry time. */
  pending: Map<string, number>;
  rebalanceTimer?: NodeJS.Timeout;
  rebalanceDeadline: number;
}

export interface JoinRequestInfo {
  groupId: string;
  memberId: string;
  groupInstanceId: string | null;
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  protocolType: string;
  protocols: { name: string; metadata: Buffer }[];
  clientId: string;
  clientHost: string;
  /** v4+ clients must first be given a member id (MEMBER_ID_REQUIRED). */
  requireKnownMemberId: boolean;
}

export interface CoordinatorOptions {
  minSessionTimeoutMs: number;
  maxSessionTimeoutMs: number;
  initialRebalanceDelayMs: number;
  now?: () => number;
  onRebalance?: (groupId: string, generation: number, members: number) => void;
}

const EMPTY = Buffer.alloc(0);

export class GroupCoordinator {
  readonly groups = new Map<string, Group>();
  private readonly sweepTimer: NodeJS.Timeout;
  private readonly now: () => number;

  constructor(private readonly opts: CoordinatorOptions) {
    this.now = opts.now ?? Date.now;
    this.sweepTimer = setInterval(() => this.expireSessions(), 200);
    this.sweepTimer.unref();
  }

  private group(id: string): Group {
    let g = this.groups.get(id);
    if (!g) {
      g = { id, state: 'Empty', generation: 0, protocolType: null, protocolName: null, leader: null, members: new Map(), pending: new Map(), rebalanceDeadline: 0 };
      this.groups.set(id, g);
    }
    return g;
  }

  join(req: JoinRequestInfo): Promise<JoinResult> | JoinResult {
    const fail = (errorCode: number, memberId = req.memberId): JoinResult => ({ errorCode, generationId: -1, protocolName: null, leader: '', memberId, members: [] });
    if (!req.groupId) return fail(ErrorCode.INVALID_GROUP_ID);
    if (req.sessionTimeoutMs < this.opts.minSessionTimeoutMs || req.sessionTimeoutMs > this.opts.maxSessionTimeoutMs) return fail(ErrorCode.INVALID_SESSION_TIMEOUT);
    if (!req.protocolType || req.protocols.length === 0) return fail(ErrorCode.INCONSISTENT_GROUP_PROTOCOL);
    const g = this.group(req.groupId);
    if (g.members.size > 0) {
      if (g.protocolType !== req.protocolType) return fail(ErrorCode.INCONSISTENT_GROUP_PROTOCOL);
      const names = new Set(req.protocols.map((p) => p.name));
      const others = [...g.members.values()].filter((m) => m.id !== req.memberId);
      // Every other member must share at least one protocol with the joiner.
      const shared = [...names].some((n) => others.every((m) => m.protocols.some((p) => p.name === n)));
      if (others.length > 0 && !shared) return fail(ErrorCode.INCONSISTENT_GROUP_PROTOCOL);
    }
    const now = this.now();
    let memberId = req.memberId;
    if (memberId === '') {
      memberId = `${req.clientId}-${randomUUID()}`;
      if (req.requireKnownMemberId) {
        // KIP-394: hand out the id, expect the client to rejoin with it.
        g.pending.set(memberId, now + req.sessionTimeoutMs);
        return fail(ErrorCode.MEMBER_ID_REQUIRED, memberId);
      }
    } else if (!g.members.has(memberId)) {
      if (!g.pending.has(memberId)) return fail(ErrorCode.UNKNOWN_MEMBER_ID);
    }
    g.pending.delete(memberId);

    let member = g.members.get(memberId);
    const metadataChanged = !member || !sameProtocols(member.protocols, req.protocols);
    if (!member) {
      member = {
        id: memberId,
        clientId: req.clientId,
        clientHost: req.clientHost,
        groupInstanceId: req.groupInstanceId,
        sessionTimeoutMs: req.sessionTimeoutMs,
        rebalanceTimeoutMs: req.rebalanceTimeoutMs > 0 ? req.rebalanceTimeoutMs : req.sessionTimeoutMs,
        protocolType: req.protocolType,
        protocols: req.protocols,
        assignment: EMPTY,
        lastSeen: now,
      };
      g.members.set(memberId, member);
      if (g.members.size === 1) g.protocolType = req.protocolType;
    } else {
      member.protocols = req.protocols;
      member.sessionTimeoutMs = req.sessionTimeoutMs;
      member.rebalanceTimeoutMs = req.rebalanceTimeoutMs > 0 ? req.rebalanceTimeoutMs : req.sessionTimeoutMs;
      member.lastSeen = now;
    }
    // A second join from the same member while one is held: the older request is superseded
    // (REBALANCE_IN_PROGRESS, not UNKNOWN_MEMBER_ID, which would make the client drop its id).
    member.joinWaiter?.(fail(ErrorCode.REBALANCE_IN_PROGRESS, memberId));
    member.joinWaiter = undefined;

    // Stable group, follower rejoining with unchanged metadata: hand back the current generation.
    if (g.state === 'Stable' && !metadataChanged && memberId !== g.leader) {
      return { errorCode: 0, generationId: g.generation, protocolName: g.protocolName, leader: g.leader ?? '', memberId, members: [] };
    }
    // Awaiting SyncGroup, unchanged metadata: a retried join (the client missed our answer). Repeat it.
    if (g.state === 'CompletingRebalance' && !metadataChanged) {
      return { errorCode: 0, generationId: g.generation, protocolName: g.protocolName, leader: g.leader ?? '', memberId, members: memberId === g.leader ? this.memberList(g) : [] };
    }

    const m = member;
    const result = new Promise<JoinResult>((resolve) => {
      m.joinWaiter = resolve;
    });
    if (g.state !== 'PreparingRebalance') this.prepareRebalance(g);
    else this.maybeCompleteJoin(g);
    return result;
  }

  private prepareRebalance(g: Group): void {
    const wasEmpty = g.state === 'Empty';
    // Members waiting for their SyncGroup answer must rejoin.
    for (const m of g.members.values()) {
      if (m.syncWaiter) {
        m.syncWaiter({ errorCode: ErrorCode.REBALANCE_IN_PROGRESS, assignment: EMPTY });
        m.syncWaiter = undefined;
      }
    }
    g.state = 'PreparingRebalance';
    let timeout = 0;
    for (const m of g.members.values()) timeout = Math.max(timeout, m.rebalanceTimeoutMs);
    if (wasEmpty) timeout = Math.min(timeout, this.opts.initialRebalanceDelayMs);
    clearTimeout(g.rebalanceTimer);
    g.rebalanceDeadline = this.now() + timeout;
    g.rebalanceTimer = setTimeout(() => this.completeJoin(g), timeout);
    if (!wasEmpty || this.opts.initialRebalanceDelayMs === 0) this.maybeCompleteJoin(g);
  }

  private maybeCompleteJoin(g: Group): void {
    if (g.state !== 'PreparingRebalance') return;
    if (g.pending.size > 0) return;
    for (const m of g.members.values()) if (!m.joinWaiter) return;
    this.completeJoin(g);
  }

  private completeJoin(g: Group): void {
    if (g.state !== 'PreparingRebalance') return;
    clearTimeout(g.rebalanceTimer);
    g.rebalanceTimer = undefined;
    // Members that did not rejoin in time are out.
    for (const m of [...g.members.values()]) if (!m.joinWaiter) g.members.delete(m.id);
    g.pending.clear();
    g.generation++;
    if (g.members.size === 0) {
      g.state = 'Empty';
      g.leader = null;
      g.protocolName = null;
      g.protocolType = null;
      return;
    }
    g.protocolName = chooseProtocol([...g.members.values()]);
    if (g.protocolName === null) {
      // Checked at join time; only reachable if members changed protocols in between.
      for (const m of g.members.values()) m.joinWaiter?.({ errorCode: ErrorCode.INCONSISTENT_GROUP_PROTOCOL, generationId: -1, protocolName: null, leader: '', memberId: m.id, members: [] });
      g.members.clear();
      g.state = 'Empty';
      return;
    }
    if (!g.leader || !g.members.has(g.leader)) g.leader = g.members.keys().next().value!;
    g.state = 'CompletingRebalance';
    const now = this.now();
    const list = this.memberList(g);
    for (const m of g.members.values()) {
      m.lastSeen = now;
      m.assignment = EMPTY;
      const waiter = m.joinWaiter!;
      m.joinWaiter = undefined;
      waiter({ errorCode: 0, generationId: g.generation, protocolName: g.protocolName, leader: g.leader, memberId: m.id, members: m.id === g.leader ? list : [] });
    }
    this.opts.onRebalance?.(g.id, g.generation, g.members.size);
  }

  private memberList(g: Group): JoinResult['members'] {
    return [...g.members.values()].map((m) => ({
      memberId: m.id,
      groupInstanceId: m.groupInstanceId,
      metadata: m.protocols.find((p) => p.name === g.protocolName)!.metadata,
    }));
  }

  sync(groupId: string, generationId: number, memberId: string, assignments: { memberId: string; assignment: Buffer }[]): Promise<SyncResult> | SyncResult {
    const g = this.groups.get(groupId);
    const fail = (errorCode: number): SyncResult => ({ errorCode, assignment: EMPTY });
    if (!g) return fail(ErrorCode.UNKNOWN_MEMBER_ID);
    const m = g.members.get(memberId);
    if (!m) return fail(ErrorCode.UNKNOWN_MEMBER_ID);
    if (generationId !== g.generation) return fail(ErrorCode.ILLEGAL_GENERATION);
    m.lastSeen = this.now();
    switch (g.state) {
      case 'PreparingRebalance':
        return fail(ErrorCode.REBALANCE_IN_PROGRESS);
      case 'Stable':
        return { errorCode: 0, assignment: m.assignment };
      case 'CompletingRebalance': {
        const result = new Promise<SyncResult>((resolve) => {
          m.syncWaiter = resolve;
        });
        if (memberId === g.leader) {
          const byId = new Map(assignments.map((a) => [a.memberId, a.assignment]));
          for (const member of g.members.values()) member.assignment = byId.get(member.id) ?? EMPTY;
          g.state = 'Stable';
          for (const member of g.members.values()) {
            if (member.syncWaiter) {
              member.syncWaiter({ errorCode: 0, assignment: member.assignment });
              member.syncWaiter = undefined;
            }
          }
        }
        return result;
      }
      default:
        return fail(ErrorCode.UNKNOWN_MEMBER_ID);
    }
  }

  heartbeat(groupId: string, generationId: number, memberId: string): number {
    const g = this.groups.get(groupId);
    if (!g) return ErrorCode.UNKNOWN_MEMBER_ID;
    const m = g.members.get(memberId);
    if (!m) return ErrorCode.UNKNOWN_MEMBER_ID;
    m.lastSeen = this.now();
    if (generationId !== g.generation) return ErrorCode.ILLEGAL_GENERATION;
    if (g.state === 'PreparingRebalance') return ErrorCode.REBALANCE_IN_PROGRESS;
    return ErrorCode.NONE;
  }

  leave(groupId: string, memberIds: string[]): { group: number; members: number[] } {
    const g = this.groups.get(groupId);
    if (!g) return { group: ErrorCode.UNKNOWN_MEMBER_ID, members: memberIds.map(() => ErrorCode.UNKNOWN_MEMBER_ID) };
    const codes = memberIds.map((id) => {
      const m = g.members.get(id);
      if (!m) return ErrorCode.UNKNOWN_MEMBER_ID;
      this.removeMember(g, m);
      return ErrorCode.NONE;
    });
    const group = codes.length === 1 ? codes[0] : ErrorCode.NONE;
    return { group, members: codes };
  }

  private removeMember(g: Group, m: Member): void {
    g.members.delete(m.id);
    m.joinWaiter?.({ errorCode: ErrorCode.UNKNOWN_MEMBER_ID, generationId: -1, protocolName: null, leader: '', memberId: m.id, members: [] });
    m.syncWaiter?.({ errorCode: ErrorCode.UNKNOWN_MEMBER_ID, assignment: EMPTY });
    m.joinWaiter = m.syncWaiter = undefined;
    if (g.leader === m.id) g.leader = null;
    switch (g.state) {
      case 'Stable':
      case 'CompletingRebalance':
        if (g.members.size === 0) {
          g.state = 'Empty';
          g.generation++;
          g.protocolName = null;
          g.protocolType = null;
        } else this.prepareRebalance(g);
        break;
      case 'PreparingRebalance':
        if (g.members.size === 0) this.completeJoin(g);
        else this.maybeCompleteJoin(g);
        break;
      default:
        break;
    }
  }

  /** Checks a commit against the group: NONE, or the error to return for every partition. */
  validateCommit(groupId: string, generationId: number, memberId: string): number {
    const g = this.groups.get(groupId);
    if (generationId < 0 && memberId === '') {
      // Standalone commit (no group membership): allowed unless the group is actively managed.
      return g && g.members.size > 0 ? ErrorCode.UNKNOWN_MEMBER_ID : ErrorCode.NONE;
    }
    if (!g) return ErrorCode.UNKNOWN_MEMBER_ID;
    const m = g.members.get(memberId);
    if (!m) return ErrorCode.UNKNOWN_MEMBER_ID;
    if (generationId !== g.generation) return ErrorCode.ILLEGAL_GENERATION;
    if (g.state === 'CompletingRebalance') return ErrorCode.REBALANCE_IN_PROGRESS;
    m.lastSeen = this.now();
    return ErrorCode.NONE;
  }

  describe(groupId: string): {
    state: GroupState;
    protocolType: string;
    protocolName: string;
    members: { memberId: string; clientId: string; clientHost: string; metadata: Buffer; assignment: Buffer }[];
  } {
    const g = this.groups.get(groupId);
    if (!g) return { state: 'Dead', protocolType: '', protocolName: '', members: [] };
    return {
      state: g.state,
      protocolType: g.protocolType ?? '',
      protocolName: g.protocolName ?? '',
      members: [...g.members.values()].map((m) => ({
        memberId: m.id,
        clientId: m.clientId,
        clientHost: m.clientHost,
        metadata: (g.state === 'Stable' || g.state === 'CompletingRebalance' ? m.protocols.find((p) => p.name === g.protocolName)?.metadata : undefined) ?? EMPTY,
        assignment: g.state === 'Stable' ? m.assignment : EMPTY,
      })),
    };
  }

  /** Removes members whose session timed out (a held join is covered by the rebalance timeout). */
  expireSessions(): void {
    const now = this.now();
    for (const g of this.groups.values()) {
      for (const [id, expiry] of g.pending) if (expiry < now) g.pending.delete(id);
      for (const m of [...g.members.values()]) {
        if (m.joinWaiter) continue;
        if (now - m.lastSeen > m.sessionTimeoutMs) this.removeMember(g, m);
      }
      if (g.state === 'PreparingRebalance') this.maybeCompleteJoin(g);
    }
  }

  close(): void {
    clearInterval(this.sweepTimer);
    for (const g of this.groups.values()) {
      clearTimeout(g.rebalanceTimer);
      for (const m of g.members.values()) {
        m.joinWaiter?.({ errorCode: ErrorCode.NOT_COORDINATOR, generationId: -1, protocolName: null, leader: '', memberId: m.id, members: [] });
        m.syncWaiter?.({ errorCode: ErrorCode.NOT_COORDINATOR, assignment: EMPTY });
      }
    }
    this.groups.clear();
  }
}

function sameProtocols(a: { name: string; metadata: Buffer }[], b: { name: string; metadata: Buffer }[]): boolean {
  return a.length === b.length && a.every((p, i) => p.name === b[i].name && p.metadata.equals(b[i].metadata));
}

/** The protocol every member supports that most members list first (by preference order). */
function chooseProtocol(members: Member[]): string | null {
  const candidates = members[0].protocols.map((p) => p.name).filter((n) => members.every((m) => m.protocols.some((p) => p.name === n)));
  if (candidates.length === 0) return null;
  const votes = new Map<string, number>(candidates.map((c) => [c, 0]));
  for (const m of members) {
    const pick = m.protocols.find((p) => votes.has(p.name))!.name;
    votes.set(pick, votes.get(pick)! + 1);
  }
  let best = candidates[0];
  for (const c of candidates) if (votes.get(c)! > votes.get(best)!) best = c;
  return best;
}
