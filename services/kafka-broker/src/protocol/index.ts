/** The API table: every API the broker implements, by key. ApiVersions advertises exactly these. */
import type { ApiDef } from './api.ts';
import { Produce } from './produce/index.ts';
import { Fetch } from './fetch/index.ts';
import { ListOffsets } from './listOffsets/index.ts';
import { Metadata } from './metadata/index.ts';
import { OffsetCommit } from './offsetCommit/index.ts';
import { OffsetFetch } from './offsetFetch/index.ts';
import { FindCoordinator } from './findCoordinator/index.ts';
import { JoinGroup } from './joinGroup/index.ts';
import { Heartbeat } from './heartbeat/index.ts';
import { LeaveGroup } from './leaveGroup/index.ts';
import { SyncGroup } from './syncGroup/index.ts';
import { DescribeGroups } from './describeGroups/index.ts';
import { ListGroups } from './listGroups/index.ts';
import { ApiVersions } from './apiVersions/index.ts';
import { CreateTopics } from './createTopics/index.ts';
import { DeleteTopics } from './deleteTopics/index.ts';
import { InitProducerId } from './initProducerId/index.ts';

export { Produce, Fetch, ListOffsets, Metadata, OffsetCommit, OffsetFetch, FindCoordinator, JoinGroup, Heartbeat, LeaveGroup, SyncGroup, DescribeGroups, ListGroups, ApiVersions, CreateTopics, DeleteTopics, InitProducerId };
export type { ApiDef } from './api.ts';

export const APIS: readonly ApiDef[] = [Produce, Fetch, ListOffsets, Metadata, OffsetCommit, OffsetFetch, FindCoordinator, JoinGroup, Heartbeat, LeaveGroup, SyncGroup, DescribeGroups, ListGroups, ApiVersions, CreateTopics, DeleteTopics, InitProducerId];

export const API_BY_KEY: ReadonlyMap<number, ApiDef> = new Map(APIS.map((a) => [a.key, a]));
