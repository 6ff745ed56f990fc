/**
 * Captures codec fixtures from real client traffic: runs kafkajs and kcat flows through a
 * recording TCP proxy in front of the broker and writes the first request and response body of
 * each (API, version, client) to `src/protocol/<api>/fixtures/v<N>_{request,response}_<client>.bin`.
 *
 *   node --import tsx services/kafka-broker/testdata/capture-fixtures.ts
 *
 * Bodies exclude the frame size and the request/response header.
 */
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startBroker } from '../index.ts';
import { silentLogger } from '../../../common/logger.ts';
import { createKafkaClients } from '../../../common/kafka.ts';
import { KafkaClientConfig } from '../../../common/config/fragments.ts';
import { API_BY_KEY } from '../src/protocol/index.ts';
import { Reader } from '../src/protocol/primitives.ts';

const protocolDir = fileURLToPath(new URL('../src/protocol/', import.meta.url));
const dirOf: Record<string, string> = {
  Produce: 'produce', Fetch: 'fetch', ListOffsets: 'listOffsets', Metadata: 'metadata', OffsetCommit: 'offsetCommit', OffsetFetch: 'offsetFetch',
  FindCoordinator: 'findCoordinator', JoinGroup: 'joinGroup', Heartbeat: 'heartbeat', LeaveGroup: 'leaveGroup', SyncGroup: 'syncGroup',
  DescribeGroups: 'describeGroups', ListGroups: 'listGroups', ApiVersions: 'apiVersions', CreateTopics: 'createTopics', DeleteTopics: 'deleteTopics', InitProducerId: 'initProducerId',
};

let client = 'kafkajs';
const written = new Set<string>();

function frames(onFrame: (f: Buffer) => void): (d: Buffer) => void {
  let buf = Buffer.alloc(0);
  return (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) {
      const size = buf.readInt32BE(0);
      onFrame(buf.subarray(4, 4 + size));
      buf = buf.subarray(4 + size);
    }
  };
}

function save(api: string, version: number, kind: 'request' | 'response', body: Buffer): void {
  const name = `v${version}_${kind}_${client}.bin`;
  const key = `${api}/${name}`;
  if (written.has(key)) return;
  written.add(key);
  const dir = join(protocolDir, dirOf[api], 'fixtures');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, name), body);
}

async function main(): Promise<void> {
  const proxy = createServer();
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  const proxyPort = (proxy.address() as AddressInfo).port;
  const dataDir = mkdtempSync(join(tmpdir(), 'plantwatch-capture-'));
  const broker = await startBroker({ port: 0, dataDir, httpPort: null, advertisedPort: proxyPort, logger: silentLogger() });
  proxy.on('connection', (c: Socket) => {
    const upstream = connect(broker.boundPort, '127.0.0.1');
    const inflight = new Map<number, { api: string; version: number }>();
    c.on('data', frames((f) => {
      const r = new Reader(f);
      const key = r.int16();
      const version = r.int16();
      const corr = r.int32();
      r.string(false);
      const api = API_BY_KEY.get(key);
      if (!api) return;
      const flex = version >= api.flexFrom;
      if (flex) r.skipTags();
      inflight.set(corr, { api: api.name, version });
      save(api.name, version, 'request', f.subarray(r.pos));
    }));
    upstream.on('data', frames((f) => {
      const corr = f.readInt32BE(0);
      const req = inflight.get(corr);
      if (!req) return;
      const api = API_BY_KEY.get([...API_BY_KEY.values()].find((a) => a.name === req.api)!.key)!;
      const headerLen = req.version >= api.flexFrom && api.name !== 'ApiVersions' ? 5 : 4;
      save(req.api, req.version, 'response', f.subarray(headerLen));
    }));
    c.pipe(upstream);
    upstream.pipe(c);
    c.on('error', () => upstream.destroy());
    upstream.on('error', () => c.destroy());
  });
  const bootstrap = `127.0.0.1:${proxyPort}`;

  // kafkajs: admin, idempotent producer, consumer group, offsets, describe/list/delete.
  client = 'kafkajs';
  const kafka = createKafkaClients({ ...KafkaClientConfig.parse({}), clientId: 'fixture', brokers: [bootstrap] }, silentLogger());
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'fx', numPartitions: 1 }] });
  const producer = kafka.producer({ idempotent: true });
  await producer.connect();
  await producer.send({ topic: 'fx', acks: -1, messages: [{ key: 'k1', value: 'v1', timestamp: '1700000000000' }, { key: 'k2', value: 'v2', timestamp: '1700000000001' }] });
  await producer.disconnect();
  const consumer = kafka.consumer({ groupId: 'fx-group', maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic: 'fx', fromBeginning: true });
  let got = 0;
  await consumer.run({ eachMessage: async () => void got++ });
  while (got < 2) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 3500)); // one heartbeat
  await consumer.disconnect();
  await admin.fetchTopicOffsets('fx');
  await admin.fetchOffsets({ groupId: 'fx-group', topics: ['fx'] });
  await admin.describeGroups(['fx-group']);
  await admin.listGroups();
  await admin.createTopics({ topics: [{ topic: 'fx-delete' }] });
  await admin.deleteTopics({ topics: ['fx-delete'] });
  await admin.disconnect();

  // kcat: produce, consume, metadata, balanced group.
  client = 'kcat';
  const kcat = (args: string[], input = ''): Promise<void> =>
    new Promise((resolve, reject) => {
      const p = spawn('kcat', args, { stdio: ['pipe', 'ignore', 'ignore'] });
      p.on('exit', () => resolve());
      p.on('error', reject);
      p.stdin.end(input);
    });
  await kcat(['-P', '-b', bootstrap, '-t', 'fx-kcat', '-K:', '-X', 'enable.idempotence=true'], 'a:1\nb:2\n');
  await kcat(['-L', '-b', bootstrap]);
  await kcat(['-C', '-b', bootstrap, '-t', 'fx-kcat', '-e']);
  await kcat(['-b', bootstrap, '-G', 'fx-kcat-group', '-X', 'auto.offset.reset=earliest', '-e', 'fx-kcat']);

  await broker.close();
  proxy.close();
  rmSync(dataDir, { recursive: true, force: true });
  console.log([...written].sort().join('\n'));
  if (!existsSync(protocolDir)) throw new Error('no protocol dir');
}

await main();
process.exit(0);
