/** FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit/Fetch, DescribeGroups, ListGroups. */
import { ErrorCode } from '../protocol/errors.ts';
import type { FindCoordinatorRequest, FindCoordinatorResponse } from '../protocol/findCoordinator/index.ts';
import type { JoinGroupRequest, JoinGroupResponse } from '../protocol/joinGroup/index.ts';
import type { SyncGroupRequest, SyncGroupResponse } from '../protocol/syncGroup/index.ts';
import type { HeartbeatRequest, HeartbeatResponse } from '../protocol/heartbeat/index.ts';
import type { LeaveGroupRequest, LeaveGroupResponse } from '../protocol/leaveGroup/index.ts';
import type { OffsetCommitRequest, OffsetCommitResponse } from '../protocol/offsetCommit/index.ts';
import type { OffsetFetchRequest, OffsetFetchResponse } from '../protocol/offsetFetch/index.ts';
import type { DescribeGroupsRequest, DescribeGroupsResponse } from '../protocol/describeGroups/index.ts';
import type { ListGroupsResponse } from '../protocol/listGroups/index.ts';
import type { JoinResult } from '../group/coordinator.ts';
import type { BrokerCore, RequestContext } from './context.ts';

export function handleFindCoordinator(b: BrokerCore, _req: FindCoordinatorRequest, _ctx: RequestContext): FindCoordinatorResponse {
  // Single node: this broker coordinates every group (and would every transaction).
  return { throttleTimeMs: 0, errorCode: 0, errorMessage: null, nodeId: b.nodeId, host: b.advertised.host, port: b.advertised.port };
}

export function handleJoinGroup(b: BrokerCore, req: JoinGroupRequest, ctx: RequestContext): JoinGroupResponse | Promise<JoinGroupResponse> {
  const result = b.groups.join({
    groupId: req.groupId,
    memberId: req.memberId,
    groupInstanceId: req.groupInstanceId,
    sessionTimeoutMs: req.sessionTimeoutMs,
    rebalanceTimeoutMs: req.rebalanceTimeoutMs,
    protocolType: req.protocolType,
    protocols: req.protocols.map((p) => ({ name: p.name, metadata: Buffer.from(p.metadata) })),
    clientId: ctx.clientId,
    clientHost: ctx.clientHost,
    requireKnownMemberId: ctx.version >= 4,
  });
  const toResponse = (r: JoinResult): JoinGroupResponse => {
    if (r.errorCode !== 0 && r.errorCode !== ErrorCode.MEMBER_ID_REQUIRED) b.countError('JoinGroup', r.errorCode);
    return { throttleTimeMs: 0, ...r };
  };
  return result instanceof Promise ? result.then(toResponse) : toResponse(result);
}

export function handleSyncGroup(b: BrokerCore, req: SyncGroupRequest, _ctx: RequestContext): SyncGroupResponse | Promise<SyncGroupResponse> {
  const result = b.groups.sync(
    req.groupId,
    req.generationId,
    req.memberId,
    req.assignments.map((a) => ({ memberId: a.memberId, assignment: Buffer.from(a.assignment) })),
  );
  const toResponse = (r: { errorCode: number; assignment: Buffer }): SyncGroupResponse => {
    if (r.errorCode !== 0) b.countError('SyncGroup', r.errorCode);
    return { throttleTimeMs: 0, errorCode: r.errorCode, assignment: r.assignment };
  };
  return result instanceof Promise ? result.then(toResponse) : toResponse(result);
}

export function handleHeartbeat(b: BrokerCore, req: HeartbeatRequest, _ctx: RequestContext): HeartbeatResponse {
  const errorCode = b.groups.heartbeat(req.groupId, req.generationId, req.memberId);
  if (errorCode !== 0 && errorCode !== ErrorCode.REBALANCE_IN_PROGRESS) b.countError('Heartbeat', errorCode);
  return { throttleTimeMs: 0, errorCode };
}

export function handleLeaveGroup(b: BrokerCore, req: LeaveGroupRequest, ctx: RequestContext): LeaveGroupResponse {
  const ids = ctx.version >= 3 ? req.members.map((m) => m.memberId) : [req.memberId];
  const r = b.groups.leave(req.groupId, ids);
  return {
    throttleTimeMs: 0,
    errorCode: ctx.version >= 3 ? 0 : r.group,
    members: ctx.version >= 3 ? req.members.map((m, i) => ({ memberId: m.memberId, groupInstanceId: m.groupInstanceId, errorCode: r.members[i] })) : [],
  };
}

export function handleOffsetCommit(b: BrokerCore, req: OffsetCommitRequest, _ctx: RequestContext): OffsetCommitResponse {
  const check = req.groupId ? b.groups.validateCommit(req.groupId, req.generationId, req.memberId) : ErrorCode.INVALID_GROUP_ID;
  if (check === 0) {
    const entries = [];
    // Kafka stores a null metadata as "" (OffsetAndMetadata.NoMetadata).
    for (const t of req.topics) for (const p of t.partitions) entries.push({ topic: t.name, partition: p.partitionIndex, offset: p.committedOffset, metadata: p.committedMetadata ?? '' });
    b.offsets.commit(req.groupId, entries);
  } else b.countError('OffsetCommit', check);
  return {
    throttleTimeMs: 0,
    topics: req.topics.map((t) => ({ name: t.name, partitions: t.partitions.map((p) => ({ partitionIndex: p.partitionIndex, errorCode: check })) })),
  };
}

export function handleOffsetFetch(b: BrokerCore, req: OffsetFetchRequest, _ctx: RequestContext): OffsetFetchResponse {
  let wanted: { name: string; partitionIndexes: number[] }[];
  if (req.topics === null) {
    const all = b.offsets.all(req.groupId);
    wanted = all ? [...all].map(([name, parts]) => ({ name, partitionIndexes: [...parts.keys()] })) : [];
  } else wanted = req.topics;
  return {
    throttleTimeMs: 0,
    errorCode: 0,
    topics: wanted.map((t) => ({
      name: t.name,
      partitions: t.partitionIndexes.map((p) => {
        const c = b.offsets.get(req.groupId, t.name, p);
        return { partitionIndex: p, committedOffset: c?.offset ?? -1, committedLeaderEpoch: -1, metadata: c?.metadata ?? '', errorCode: 0 };
      }),
    })),
  };
}

export function handleDescribeGroups(b: BrokerCore, req: DescribeGroupsRequest, _ctx: RequestContext): DescribeGroupsResponse {
  return {
    throttleTimeMs: 0,
    groups: req.groups.map((groupId) => {
      const d = b.groups.describe(groupId);
      // A group known only from committed offsets is Empty, not Dead (Kafka keeps it until offsets expire).
      const state = d.state === 'Dead' && b.offsets.all(groupId) ? 'Empty' : d.state;
      return {
        errorCode: 0,
        groupId,
        groupState: state,
        protocolType: d.protocolType,
        protocolData: d.protocolName,
        members: d.members.map((m) => ({ memberId: m.memberId, clientId: m.clientId, clientHost: m.clientHost, memberMetadata: m.metadata, memberAssignment: m.assignment })),
      };
    }),
  };
}

export function handleListGroups(b: BrokerCore, _req: unknown, _ctx: RequestContext): ListGroupsResponse {
  const ids = new Set<string>([...b.groups.groups.keys(), ...b.offsets.groupIds()]);
  return {
    throttleTimeMs: 0,
    errorCode: 0,
    groups: [...ids].sort().map((groupId) => ({ groupId, protocolType: b.groups.groups.get(groupId)?.protocolType ?? 'consumer' })),
  };
}
