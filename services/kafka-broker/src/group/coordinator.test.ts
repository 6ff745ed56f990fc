/** Group > coordinator: the classic consumer group protocol as a state machine, with fake timers. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { GroupCoordinator, type JoinRequestInfo, type JoinResult } from './coordinator.ts';
import { ErrorCode } from '../protocol/errors.ts';

const meta = Buffer.from('subscription');

function joinReq(memberId: string, over: Partial<JoinRequestInfo> = {}): JoinRequestInfo {
  return {
    groupId: 'g',
    memberId,
    groupInstanceId: null,
    sessionTimeoutMs: 10_000,
    rebalanceTimeoutMs: 20_000,
    protocolType: 'consumer',
    protocols: [{ name: 'RoundRobinAssigner', metadata: meta }],
    clientId: 'c',
    clientHost: '127.0.0.1',
    requireKnownMemberId: true,
    ...over,
  };
}

/** Joins with MEMBER_ID_REQUIRED first, like kafkajs and librdkafka; returns the held join. */
async function joinNew(co: GroupCoordinator, over: Partial<JoinRequestInfo> = {}): Promise<{ id: string; result: Promise<JoinResult> | JoinResult }> {
  const first = co.join(joinReq('', over)) as JoinResult;
  expect(first.errorCode).toBe(ErrorCode.MEMBER_ID_REQUIRED);
  expect(first.memberId).toMatch(/^c-/);
  return { id: first.memberId, result: co.join(joinReq(first.memberId, over)) };
}

describe('Group > coordinator', () => {
  let co: GroupCoordinator;
  const extra: GroupCoordinator[] = [];
  /** A coordinator that waits for more members before the first rebalance, so two joiners share generation 1. */
  const delayed = (): GroupCoordinator => {
    const c = new GroupCoordinator({ minSessionTimeoutMs: 1000, maxSessionTimeoutMs: 60_000, initialRebalanceDelayMs: 100 });
    extra.push(c, co);
    return c;
  };
  beforeEach(() => {
    vi.useFakeTimers();
    co = new GroupCoordinator({ minSessionTimeoutMs: 1000, maxSessionTimeoutMs: 60_000, initialRebalanceDelayMs: 0 });
  });
  afterEach(() => {
    co.close();
    for (const c of extra.splice(0)) c.close();
    vi.useRealTimers();
  });

  it('hands out a member id (MEMBER_ID_REQUIRED), then makes the single member leader of generation 1', async () => {
    const a = await joinNew(co);
    const res = await a.result;
    expect(res).toMatchObject({ errorCode: 0, generationId: 1, leader: a.id, memberId: a.id, protocolName: 'RoundRobinAssigner' });
    expect(res.members.map((m) => m.memberId)).toEqual([a.id]);
    const sync = await co.sync('g', 1, a.id, [{ memberId: a.id, assignment: Buffer.from('all') }]);
    expect(sync).toEqual({ errorCode: 0, assignment: Buffer.from('all') });
    expect(co.describe('g').state).toBe('Stable');
  });

  it('rejects unknown member ids, bad session timeouts and mismatched protocols', async () => {
    expect((co.join(joinReq('nobody')) as JoinResult).errorCode).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    expect((co.join(joinReq('', { sessionTimeoutMs: 10 })) as JoinResult).errorCode).toBe(ErrorCode.INVALID_SESSION_TIMEOUT);
    const a = await joinNew(co);
    await a.result;
    const other = co.join(joinReq('', { protocols: [{ name: 'range', metadata: meta }] })) as JoinResult;
    expect(other.errorCode).toBe(ErrorCode.INCONSISTENT_GROUP_PROTOCOL);
    expect((co.join(joinReq('', { protocolType: 'connect' })) as JoinResult).errorCode).toBe(ErrorCode.INCONSISTENT_GROUP_PROTOCOL);
  });

  it('rebalances when a second member joins: heartbeat says 27, the join is held until the first rejoins', async () => {
    const a = await joinNew(co);
    await a.result;
    await co.sync('g', 1, a.id, [{ memberId: a.id, assignment: Buffer.from('A') }]);
    const b = await joinNew(co);
    let bDone = false;
    void Promise.resolve(b.result).then(() => (bDone = true));
    await vi.advanceTimersByTimeAsync(10);
    expect(bDone).toBe(false); // held: A has not rejoined yet
    expect(co.heartbeat('g', 1, a.id)).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
    const aAgain = co.join(joinReq(a.id));
    const [ra, rb] = await Promise.all([aAgain, b.result]);
    expect(ra.generationId).toBe(2);
    expect(rb.generationId).toBe(2);
    expect(ra.leader).toBe(a.id); // the existing leader stays leader
    expect(ra.members).toHaveLength(2);
    expect(rb.members).toHaveLength(0); // followers get no member list
    // The follower's sync waits for the leader's assignment.
    const followerSync = co.sync('g', 2, b.id, []);
    const leaderSync = co.sync('g', 2, a.id, [
      { memberId: a.id, assignment: Buffer.from('A') },
      { memberId: b.id, assignment: Buffer.from('B') },
    ]);
    expect(await followerSync).toEqual({ errorCode: 0, assignment: Buffer.from('B') });
    expect(await leaderSync).toEqual({ errorCode: 0, assignment: Buffer.from('A') });
    expect(co.heartbeat('g', 2, b.id)).toBe(0);
    expect(co.heartbeat('g', 1, b.id)).toBe(ErrorCode.ILLEGAL_GENERATION);
  });

  it('removes a member that stops heartbeating after its session timeout and rebalances the rest', async () => {
    co = delayed();
    const a = await joinNew(co);
    const b = await joinNew(co);
    const [ra] = await Promise.all([a.result, b.result]);
    const leader = ra.leader;
    const follower = leader === a.id ? b.id : a.id;
    const followerSync = co.sync('g', ra.generationId, follower, []);
    await co.sync('g', ra.generationId, leader, []);
    await followerSync;
    for (let t = 0; t < 12; t++) {
      await vi.advanceTimersByTimeAsync(1000);
      co.heartbeat('g', ra.generationId, leader); // only the leader stays alive
    }
    expect(co.heartbeat('g', ra.generationId, leader)).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
    expect(co.heartbeat('g', ra.generationId, follower)).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    const rejoin = await co.join(joinReq(leader));
    expect(rejoin.generationId).toBe(ra.generationId + 1);
    expect(rejoin.members.map((m) => m.memberId)).toEqual([leader]);
  });

  it('drops members that do not rejoin within the rebalance timeout', async () => {
    const a = await joinNew(co);
    await a.result;
    await co.sync('g', 1, a.id, []);
    const b = await joinNew(co); // A never rejoins, though it keeps heartbeating
    for (let t = 0; t < 21; t++) {
      await vi.advanceTimersByTimeAsync(1000);
      co.heartbeat('g', 1, a.id);
    }
    const rb = await b.result;
    expect(rb).toMatchObject({ errorCode: 0, generationId: 2, leader: b.id });
    expect(co.heartbeat('g', 2, a.id)).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
  });

  it('LeaveGroup triggers a rebalance, and the last member leaving empties the group', async () => {
    co = delayed();
    const a = await joinNew(co);
    const b = await joinNew(co);
    const [ra] = await Promise.all([a.result, b.result]);
    expect(co.leave('g', [b.id]).group).toBe(0);
    expect(co.describe('g').state).toBe('PreparingRebalance');
    const again = await co.join(joinReq(a.id));
    expect(again.generationId).toBe(ra.generationId + 1);
    await co.sync('g', again.generationId, a.id, []);
    expect(co.leave('g', [a.id]).group).toBe(0);
    expect(co.describe('g').state).toBe('Empty');
    expect(co.leave('g', ['ghost']).group).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
  });

  it('validates offset commits against generation and member, and allows standalone commits', async () => {
    expect(co.validateCommit('solo', -1, '')).toBe(0);
    const a = await joinNew(co);
    await a.result;
    expect(co.validateCommit('g', 1, a.id)).toBe(ErrorCode.REBALANCE_IN_PROGRESS); // awaiting SyncGroup
    await co.sync('g', 1, a.id, []);
    expect(co.validateCommit('g', 1, a.id)).toBe(0);
    expect(co.validateCommit('g', 0, a.id)).toBe(ErrorCode.ILLEGAL_GENERATION);
    expect(co.validateCommit('g', 1, 'x')).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    expect(co.validateCommit('g', -1, '')).toBe(ErrorCode.UNKNOWN_MEMBER_ID); // group is in use
  });

  it('picks the protocol all members support that most prefer', async () => {
    co = delayed();
    const prefs = [['range', 'roundrobin'], ['roundrobin', 'range'], ['roundrobin']].map((names) => ({ protocols: names.map((name) => ({ name, metadata: meta })) }));
    // All three get their ids first, so the first rebalance waits for all of them.
    const ids = prefs.map((p) => (co.join(joinReq('', p)) as JoinResult).memberId);
    const results = await Promise.all(ids.map((id, i) => co.join(joinReq(id, prefs[i]))));
    expect(new Set(results.map((r) => r.generationId))).toEqual(new Set([1]));
    expect(new Set(results.map((r) => r.protocolName))).toEqual(new Set(['roundrobin']));
  });

  it('repeats the join answer to a retried join while the group awaits SyncGroup', async () => {
    const a = await joinNew(co);
    const first = await a.result;
    const retry = await co.join(joinReq(a.id));
    expect(retry).toMatchObject({ errorCode: 0, generationId: first.generationId, leader: a.id });
    expect(retry.members.map((m) => m.memberId)).toEqual([a.id]);
    expect(co.describe('g').state).toBe('CompletingRebalance');
  });

  it('answers a v0–v3 join without MEMBER_ID_REQUIRED', async () => {
    const r = await co.join(joinReq('', { requireKnownMemberId: false }));
    expect(r.errorCode).toBe(0);
    expect(r.generationId).toBe(1);
  });
});
