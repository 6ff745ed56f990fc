/**
 * Throughput of the embedded Kafka-protocol broker (issue 2): produce and consume, 100-byte and
 * 1 KiB records, with kcat (librdkafka) and with kafkajs, in one run.
 *
 *   npm run bench:broker [-- --quick] [-- --profile]
 *
 * The broker runs in its own process (services/kafka-broker/testdata/run-broker.ts); clients run
 * in this process (kafkajs) or as kcat processes. Beside each figure: a baseline measured in the
 * same run on the same bytes — a bare Node TCP server that receives them and appends them to a file
 * (produce ceiling), and one that reads them from a file and sends them (consume ceiling) — and the
 * CPU seconds spent by the broker vs the client, which shows which side limits the run.
 * `--profile` also writes V8 CPU profiles of the broker process and of the kafkajs client under
 * bench/results/ and prints the top functions of each.
 */
import { mkdtempSync, rmSync, writeFileSync, openSync, writeSync, closeSync, readSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { createServer, connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createKafkaClients } from '../common/kafka.ts';
import { KafkaClientConfig } from '../common/config/fragments.ts';
import { silentLogger } from '../common/logger.ts';
import { cpuSeconds, hasCommand, runTimed } from './lib/broker-proc.ts';

import { summariseProfile, startClientProfile } from './lib/broker-profile.ts';

const args = new Set(process.argv.slice(2));
const quick = args.has('--quick');
const profile = args.has('--profile');
const RUNNER = fileURLToPath(new URL('../services/kafka-broker/testdata/run-broker.ts', import.meta.url));
const resultsDir = fileURLToPath(new URL('./results/', import.meta.url));

interface Row {
  client: string;
  op: 'produce' | 'consume';
  size: number;
  records: number;
  seconds: number;
  brokerCpu: number;
  clientCpu: number;
  baselineMBs: number;
}

const work = mkdtempSync(join(tmpdir(), 'plantwatch-bench-broker-'));

async function startBroker(dataDir: string, label: string): Promise<{ bootstrap: string; pid: number; stop: () => Promise<void> }> {
  // The runner profiles itself from READY to SIGTERM, so start-up (tsx loading) stays out of the profile.
  const profileArgs = profile ? ['--cpu-profile', join(resultsDir, `broker-profile-${label}.cpuprofile`)] : [];
  const child = spawn(process.execPath, ['--import', 'tsx', RUNNER, '--port', '0', '--data-dir', dataDir, '--log-level', 'error', ...profileArgs], { stdio: ['ignore', 'pipe', 'inherit'] });
  const bootstrap = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /READY (\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`broker exited ${code}`)));
  });
  return {
    bootstrap,
    pid: child.pid!,
    stop: () =>
      new Promise((resolve) => {
        child.removeAllListeners('exit');
        child.on('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

function payload(size: number, i: number): string {
  // Printable, newline-free (kcat reads one record per line), varied so nothing compresses away.
  const seed = `r${i}-`;
  let s = seed;
  while (s.length < size) s += String.fromCharCode(33 + ((s.length * 7 + i) % 90));
  return s.slice(0, size);
}

function writeRecordsFile(size: number, count: number): string {
  const path = join(work, `records-${size}-${count}.txt`);
  const fd = openSync(path, 'w');
  const chunk: string[] = [];
  for (let i = 0; i < count; i++) {
    chunk.push(payload(size, i));
    if (chunk.length === 10_000) {
      writeSync(fd, chunk.join('\n') + '\n');
      chunk.length = 0;
    }
  }
  if (chunk.length) writeSync(fd, chunk.join('\n') + '\n');
  closeSync(fd);
  return path;
}

/** Baselines: bare TCP+file ceilings for the same number of bytes. */
async function tcpToFileMBs(bytes: number): Promise<number> {
  const file = join(work, 'baseline.bin');
  const fd = openSync(file, 'w');
  let got = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const server = createServer((s) => {
    s.on('data', (d: Buffer) => {
      if (got >= bytes) return;
      writeSync(fd, d);
      got += d.length;
      if (got >= bytes) done();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const sendBuf = Buffer.alloc(1 << 20, 97);
  const started = performance.now();
  const sock = connect(port, '127.0.0.1');
  await new Promise<void>((r) => sock.once('connect', () => r()));
  for (let sent = 0; sent < bytes; sent += sendBuf.length) if (!sock.write(sendBuf)) await new Promise((r) => sock.once('drain', r));
  await finished;
  const secs = (performance.now() - started) / 1000;
  sock.destroy();
  server.close();
  closeSync(fd);
  return bytes / secs / 1e6;
}

async function fileToTcpMBs(bytes: number): Promise<number> {
  const file = join(work, 'baseline.bin');
  const fd = openSync(file, 'r');
  const server = createServer(async (s) => {
    const buf = Buffer.allocUnsafe(1 << 20);
    let pos = 0;
    while (pos < bytes) {
      const n = readSync(fd, buf, 0, buf.length, pos % Math.max(1, statSync(file).size));
      pos += n;
      if (!s.write(Buffer.from(buf.subarray(0, n)))) await new Promise((r) => s.once('drain', r));
    }
    s.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const started = performance.now();
  await new Promise<void>((resolve) => {
    const sock = connect(port, '127.0.0.1');
    sock.on('data', () => {});
    sock.on('end', () => resolve());
  });
  const secs = (performance.now() - started) / 1000;
  server.close();
  closeSync(fd);
  return bytes / secs / 1e6;
}

async function kcatRun(size: number, count: number): Promise<Row[]> {
  const file = writeRecordsFile(size, count);
  const dataDir = join(work, `kcat-${size}`);
  const broker = await startBroker(dataDir, `kcat-${size}`);
  const topic = `bench-kcat-${size}`;
  const bytes = size * count;
  try {
    const cpu0 = cpuSeconds(broker.pid);
    const p = await runTimed('kcat', ['-P', '-b', broker.bootstrap, '-t', topic, '-X', 'acks=1', '-X', 'linger.ms=5', '-X', 'batch.size=1000000', '-X', 'queue.buffering.max.kbytes=1048576'], file);
    if (p.code !== 0) throw new Error(`kcat -P failed: ${p.stderr}`);
    const cpu1 = cpuSeconds(broker.pid);
    const c = await runTimed('kcat', ['-C', '-b', broker.bootstrap, '-t', topic, '-o', 'beginning', '-e', '-q', '-X', 'fetch.max.bytes=52428800']);
    if (c.code !== 0) throw new Error(`kcat -C failed: ${c.stderr}`);
    const cpu2 = cpuSeconds(broker.pid);
    const [bp, bc] = [await tcpToFileMBs(bytes), await fileToTcpMBs(bytes)];
    return [
      { client: 'kcat', op: 'produce', size, records: count, seconds: p.seconds, brokerCpu: cpu1 - cpu0, clientCpu: p.cpu, baselineMBs: bp },
      { client: 'kcat', op: 'consume', size, records: count, seconds: c.seconds, brokerCpu: cpu2 - cpu1, clientCpu: c.cpu, baselineMBs: bc },
    ];
  } finally {
    await broker.stop();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(file, { force: true });
  }
}

async function kafkajsRun(size: number, count: number): Promise<Row[]> {
  const dataDir = join(work, `kjs-${size}`);
  const broker = await startBroker(dataDir, `kafkajs-${size}`);
  const topic = `bench-kjs-${size}`;
  const bytes = size * count;
  const kafka = createKafkaClients({ ...KafkaClientConfig.parse({}), clientId: 'bench', brokers: [broker.bootstrap] }, silentLogger());
  try {
    const values = Array.from({ length: 1000 }, (_, i) => Buffer.from(payload(size, i)));
    const producer = kafka.producer();
    await producer.connect();
    const batch = 1000;
    const inFlight = 4;
    const stopProfile = profile ? await startClientProfile() : null;
    const cpu0 = cpuSeconds(broker.pid);
    const self0 = process.cpuUsage();
    const t0 = performance.now();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < count) {
        const start = next;
        next += batch;
        const n = Math.min(batch, count - start);
        await producer.send({ topic, acks: 1, messages: Array.from({ length: n }, (_, i) => ({ value: values[(start + i) % values.length] })) });
      }
    };
    await Promise.all(Array.from({ length: inFlight }, worker));
    const produceSecs = (performance.now() - t0) / 1000;
    const self1 = process.cpuUsage(self0);
    const cpu1 = cpuSeconds(broker.pid);
    await producer.disconnect();

    const consumer = kafka.consumer({ groupId: `bench-${size}`, maxBytes: 50 * 1024 * 1024, maxBytesPerPartition: 10 * 1024 * 1024 });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    let got = 0;
    let resolveDone!: () => void;
    const done = new Promise<void>((r) => (resolveDone = r));
    const self2 = process.cpuUsage();
    const t1 = performance.now();
    await consumer.run({
      autoCommit: true,
      eachBatch: async ({ batch: b }) => {
        got += b.messages.length;
        if (got >= count) resolveDone();
      },
    });
    await done;
    const consumeSecs = (performance.now() - t1) / 1000;
    const self3 = process.cpuUsage(self2);
    const cpu2 = cpuSeconds(broker.pid);
    if (stopProfile) await stopProfile(join(resultsDir, `client-profile-kafkajs-${size}.cpuprofile`));
    await consumer.disconnect();
    const [bp, bc] = [await tcpToFileMBs(bytes), await fileToTcpMBs(bytes)];
    return [
      { client: 'kafkajs', op: 'produce', size, records: count, seconds: produceSecs, brokerCpu: cpu1 - cpu0, clientCpu: (self1.user + self1.system) / 1e6, baselineMBs: bp },
      { client: 'kafkajs', op: 'consume', size, records: count, seconds: consumeSecs, brokerCpu: cpu2 - cpu1, clientCpu: (self3.user + self3.system) / 1e6, baselineMBs: bc },
    ];
  } finally {
    await broker.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function fmt(n: number, digits = 1): string {
  return n >= 100 ? n.toFixed(0) : n.toFixed(digits);
}

async function main(): Promise<void> {
  const scale = quick ? 0.1 : 1;
  const plan: [string, number, number][] = [
    ['kcat', 100, Math.round(1_000_000 * scale)],
    ['kcat', 1024, Math.round(200_000 * scale)],
    ['kafkajs', 100, Math.round(200_000 * scale)],
    ['kafkajs', 1024, Math.round(100_000 * scale)],
  ];
  const haveKcat = hasCommand('kcat');
  if (!haveKcat) console.log('kcat not on PATH (apt-get install kcat): kcat rows skipped');
  const rows: Row[] = [];
  if (profile) {
    mkdirSync(resultsDir, { recursive: true });
    for (const f of readdirSync(resultsDir).filter((x) => /^(broker|client)-profile/.test(x))) rmSync(join(resultsDir, f));
  }
  for (const [client, size, count] of plan) {
    if (client === 'kcat' && !haveKcat) continue;
    process.stderr.write(`running ${client} ${size} B x ${count}...\n`);
    rows.push(...(client === 'kcat' ? await kcatRun(size, count) : await kafkajsRun(size, count)));
  }
  const header = ['client', 'op', 'record', 'records', 'MB/s', 'msgs/s', 'baseline MB/s', 'vs baseline', 'broker CPU s', 'client CPU s', 'busier side', 'MB per broker CPU-s'];
  const table = rows.map((r) => {
    const mbs = (r.size * r.records) / r.seconds / 1e6;
    return [
      r.client,
      r.op,
      r.size === 1024 ? '1 KiB' : `${r.size} B`,
      String(r.records),
      fmt(mbs),
      fmt(r.records / r.seconds, 0),
      fmt(r.baselineMBs),
      `${(mbs / r.baselineMBs).toFixed(2)}x`,
      r.brokerCpu.toFixed(2),
      r.clientCpu.toFixed(2),
      r.brokerCpu > r.clientCpu ? 'broker' : 'client',
      // What the broker would sustain if it had a core to itself: independent of machine load.
      r.brokerCpu > 0 ? fmt((r.size * r.records) / r.brokerCpu / 1e6) : 'n/a',
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i].length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padStart(widths[i])).join('  ');
  console.log(line(header));
  for (const row of table) console.log(line(row));
  console.log('\nMB = 10^6 bytes of record values. "MB per broker CPU-s" = bytes moved per CPU second the broker process used (a load-independent ceiling). Baselines: a bare Node TCP server appending the same byte count to a file (produce) / reading it from a file and sending it (consume), same run. CPU seconds from /proc (kcat) or process.cpuUsage (kafkajs).');
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(join(resultsDir, 'broker.csv'), [header.join(','), ...table.map((r) => r.join(','))].join('\n') + '\n');
  if (profile) {
    for (const f of readdirSync(resultsDir).filter((x) => /^(broker|client)-profile/.test(x)).sort()) {
      console.log(`\n${f.startsWith('broker') ? 'broker' : 'client (kafkajs, produce+consume)'} CPU profile ${join(resultsDir, f)}:\n${summariseProfile(join(resultsDir, f))}`);
    }
  }
}

try {
  await main();
} finally {
  rmSync(work, { recursive: true, force: true });
}
