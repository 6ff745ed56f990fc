/**
 * npm run bench:simulator — can the simulator push 100k readings/s into an aedes broker running in
 * its own process (as the embedded broker does under `npm start`)?
 *
 * Rows, all against the same broker process (simulators/tools/aedes-server.ts), counted AT THE BROKER
 * (it parses every payload and counts array elements), QoS 0:
 *   1. baseline raw, 1 reading/msg: mqtt.js publish loop of pre-encoded ~118-byte JSON messages, one
 *      connection (the ENVIRONMENT-NOTES baseline).
 *   2. baseline raw, batched: mqtt.js publish loop of the simulator's own batched messages, encoded
 *      beforehand, over the same per-machine connections: the transport's ceiling for this traffic.
 *   3. simulator load mode, batched JSON, target 100k readings/s: generation + encoding + publishing
 *      live, one connection per machine, paced to the target (the CLI's --load).
 *   4. simulator load mode, batched JSON, target 400k readings/s: how far it goes unpaced.
 *   5. simulator load mode, one reading per message, target 100k: why batching matters.
 * Readings/s and messages/s are both shown; the ratio column compares readings/s with row 1.
 * "broker r/s" runs from the start of a run to the last reading received; "steady" (simulator rows)
 * is the broker's intake between 1 s after the start and the end of the paced run. CPU
 * columns: CPU time of the sending process and of the broker per reading, which is steadier than
 * rates when other processes compete for the two cores.
 *
 * Options: --quick (shorter runs), --duration <s> (simulator rows, default 20), --tick-ms <ms> (default 500).
 * Figures on this shared 2-core machine are noisy: re-run when the machine is calm.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import mqtt, { type MqttClient } from 'mqtt';
import { silentLogger } from '../common/logger.ts';
import { SimulatorConfig } from '../simulators/config.schema.ts';
import { encodeBatch, type OutMessage } from '../simulators/encode.ts';
import { LabelRecorder } from '../simulators/labels.ts';
import { PlantModel } from '../simulators/model.ts';
import { MqttOutput, setNoDelay } from '../simulators/outputs.ts';
import { loadPlant } from '../simulators/plants.ts';
import { SimulationRunner } from '../simulators/runner.ts';

const quick = process.argv.includes('--quick');
const durIdx = process.argv.indexOf('--duration');
const DURATION_S = durIdx > 0 ? Number(process.argv[durIdx + 1]) : quick ? 5 : 20;
const MACHINES = 200;
const RATE_HZ = 100; // 200 machines × ~4.8 sensors × 100 Hz ≈ 96k readings/s in real time
const tickIdx = process.argv.indexOf('--tick-ms');
// Wall ms per publishing round: with 100 Hz sensors, 500 ms → ~50 readings per message per sensor.
const TICK_MS = tickIdx > 0 ? Number(process.argv[tickIdx + 1]) : 500;

/** user+system CPU seconds of another process, from /proc (Linux; 0 elsewhere). */
function procCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // USER_HZ
  } catch {
    return 0;
  }
}
const selfCpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** CPU used by this process and the broker process between start() and the returned stop(). */
function cpuMeter(brokerPid: number): () => { sender: number; broker: number } {
  const s0 = selfCpuSeconds();
  const b0 = procCpuSeconds(brokerPid);
  return () => ({ sender: selfCpuSeconds() - s0, broker: procCpuSeconds(brokerPid) - b0 });
}

interface BrokerStats {
  messages: number;
  readings: number;
  bytes: number;
  unparsable: number;
  firstAt: number;
  lastAt: number;
}

class BrokerProcess {
  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
  ) {}
  static async start(): Promise<BrokerProcess> {
    const child = fork(new URL('../simulators/tools/aedes-server.ts', import.meta.url).pathname, ['--count-readings'], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const port = await new Promise<number>((resolve, reject) => {
      child.once('message', (m: { port: number }) => resolve(m.port));
      child.once('exit', (code) => reject(new Error(`aedes server exited with ${code}`)));
    });
    return new BrokerProcess(child, `mqtt://127.0.0.1:${port}`);
  }
  private ask<T>(cmd: string, key: string): Promise<T> {
    return new Promise((resolve) => {
      const on = (m: Record<string, unknown>) => {
        if (key in m) {
          this.child.off('message', on);
          resolve(m[key] as T);
        }
      };
      this.child.on('message', on);
      this.child.send({ cmd });
    });
  }
  stats(): Promise<BrokerStats> {
    return this.ask<BrokerStats>('stats', 'stats');
  }
  async reset(): Promise<void> {
    await this.ask('reset', 'reset');
  }
  /** Waits until the broker has counted `readings` (or nothing arrives for 2 s). */
  async settle(readings: number): Promise<BrokerStats> {
    let s = await this.stats();
    let lastChange = Date.now();
    let last = s.readings;
    while (s.readings < readings && Date.now() - lastChange < 2000) {
      await new Promise((r) => setTimeout(r, 50));
      s = await this.stats();
      if (s.readings !== last) {
        last = s.readings;
        lastChange = Date.now();
      }
    }
    return s;
  }
  stop(): void {
    this.child.kill('SIGTERM');
  }
}

interface Row {
  name: string;
  connections: number;
  readingsPerMsg: number;
  sentReadings: number;
  brokerReadings: number;
  brokerMessages: number;
  /** Readings per second at the broker (start of the run to the last message it received). */
  brokerRate: number;
  brokerMsgRate: number;
  /** Readings per second handed to the sockets by the sender. */
  sentRate: number;
  target?: number;
  errors: number;
  /** CPU seconds used by the sending process (simulator or raw loop) and by the broker. */
  senderCpu: number;
  brokerCpu: number;
  /** Simulator rows: wall ms from the last round until everything was flushed and disconnected. */
  flushMs?: number;
  /** Simulator rows: readings/s arriving at the broker in steady state (1 s after start → end of run). */
  steadyRate?: number;
}

async function connectMany(url: string, n: number, tag: string): Promise<MqttClient[]> {
  const clients: MqttClient[] = [];
  for (let i = 0; i < n; i += 50) {
    const wave = await Promise.all(
      Array.from({ length: Math.min(50, n - i) }, (_, j) => mqtt.connectAsync(url, { clientId: `bench-${tag}-${i + j}`, queueQoSZero: false, reconnectPeriod: 0 })),
    );
    for (const c of wave) setNoDelay(c);
    clients.push(...wave);
  }
  return clients;
}

/** Publishes messages round-robin per client, honouring socket backpressure like the simulator does. */
async function rawPublish(clients: MqttClient[], perClient: OutMessage[][]): Promise<{ wallMs: number; readings: number; startedAt: number }> {
  const startedAt = Date.now();
  const t0 = performance.now();
  let readings = 0;
  await Promise.all(
    clients.map(async (c, i) => {
      const msgs = perClient[i];
      let pending = 0;
      let wake: (() => void) | undefined;
      for (const m of msgs) {
        pending++;
        readings += m.readings;
        c.publish(m.topic, m.payload as string, { qos: 0 }, () => {
          pending--;
          if (pending < 1000 && wake) {
            const w = wake;
            wake = undefined;
            w();
          }
        });
        if (pending >= 1000) await new Promise<void>((r) => (wake = r));
      }
      while (pending > 0) await new Promise((r) => setTimeout(r, 1));
    }),
  );
  return { wallMs: performance.now() - t0, readings, startedAt };
}

function loadConfig(): SimulatorConfig {
  return SimulatorConfig.parse({
    seed: 42,
    faults: { random: { enabled: false } },
    plant: loadPlant({ machines: MACHINES, rateHz: RATE_HZ }),
    output: { mqtt: { format: 'batch', qos: 0, connections: 'machine', batchMax: 1000 } },
  });
}

async function baselineSingle(broker: BrokerProcess): Promise<Row> {
  const n = quick ? 100_000 : 200_000;
  await broker.reset();
  const [client] = await connectMany(broker.url, 1, 'single');
  // ~118 bytes like the ENVIRONMENT-NOTES baseline: topic + {"ts","value","unit"}.
  const msgs: OutMessage[] = [];
  const t = Date.now();
  for (let i = 0; i < n; i++) msgs.push({ topic: `plant/load/line-1/pump-${i % 200}/vibration`, payload: `{"ts":${t + i},"value":${(1 + (i % 97) / 100).toFixed(2)},"unit":"mm/s","quality":"good"}`, readings: 1 });
  const cpu = cpuMeter(broker.child.pid!);
  const sent = await rawPublish([client], [msgs]);
  const s = await broker.settle(n);
  const used = cpu();
  await client.endAsync();
  return row('baseline: raw mqtt.js, 1 reading/msg, pre-encoded', 1, sent.readings, sent.wallMs, s, used, sent.startedAt);
}

async function baselineBatched(broker: BrokerProcess): Promise<Row> {
  const cfg = loadConfig();
  const model = new PlantModel(cfg, { startMs: Date.parse('2026-01-05T06:00:00Z') });
  // The simulator's own messages for DURATION_S of plant time, encoded before the clock starts.
  const perMachine: OutMessage[][] = model.machines.map(() => []);
  const t0 = model.startMs;
  for (let t = t0; t < t0 + DURATION_S * 1000; t += TICK_MS) {
    model.generate(t, t + TICK_MS).forEach((b, i) => encodeBatch(b.emissions, { topicPrefix: 'plant', includeUnit: true, batchMax: 1000 }, perMachine[i]));
  }
  await broker.reset();
  const clients = await connectMany(broker.url, model.machines.length, 'batched');
  const cpu = cpuMeter(broker.child.pid!);
  const sent = await rawPublish(clients, perMachine);
  const s = await broker.settle(sent.readings);
  const used = cpu();
  await Promise.all(clients.map((c) => c.endAsync()));
  return row('baseline: raw mqtt.js, simulator batches pre-encoded', clients.length, sent.readings, sent.wallMs, s, used, sent.startedAt);
}

async function simulatorLoad(broker: BrokerProcess, target: number, format: 'batch' | 'json', label: string): Promise<Row> {
  const base = loadConfig();
  const cfg = SimulatorConfig.parse({ ...base, output: { mqtt: { ...base.output.mqtt, format } } });
  const startMs = Date.now();
  const model = new PlantModel(cfg, { startMs });
  await broker.reset();
  const output = new MqttOutput({ ...cfg.output.mqtt, url: broker.url }, model.machines, silentLogger());
  await output.connect();
  // Load mode as in the CLI: speed = target / the plant's real-time rate; duration in wall seconds.
  const speed = target / model.naturalRate;
  const runner = new SimulationRunner({
    model,
    output,
    labels: new LabelRecorder(),
    speed,
    tickMs: TICK_MS,
    startMs,
    endMs: startMs + DURATION_S * 1000 * speed,
  });
  const cpu = cpuMeter(broker.child.pid!);
  // The run ends when DURATION_S of paced plant time has been generated; if the simulator cannot keep
  // the pace it takes longer, and the rates below show it. Safety stop at 3× the duration.
  const startedAt = Date.now();
  const t0 = performance.now();
  const stopAt = setTimeout(() => void runner.stop(), DURATION_S * 3000);
  // Steady-state rate at the broker: counts sampled every 500 ms, from 1 s after the start to the
  // last sample before the run ended (no ramp-up, no final flush).
  const samples: { at: number; readings: number }[] = [];
  let running = true;
  const sampler = (async () => {
    while (running) {
      await new Promise((r) => setTimeout(r, 500));
      const st = await broker.stats();
      samples.push({ at: Date.now(), readings: st.readings });
    }
  })();
  await runner.run();
  const genMs = performance.now() - t0;
  const endedAt = Date.now();
  running = false;
  await sampler;
  clearTimeout(stopAt);
  await output.close();
  const wallMs = performance.now() - t0;
  const s = await broker.settle(output.stats.readings);
  const r = row(label, model.machines.length, output.stats.readings, genMs, s, cpu(), startedAt);
  r.flushMs = wallMs - genMs;
  const steady = samples.filter((x) => x.at >= startedAt + 1000 && x.at <= endedAt);
  if (steady.length >= 2) {
    const a = steady[0];
    const b = steady[steady.length - 1];
    r.steadyRate = ((b.readings - a.readings) / (b.at - a.at)) * 1000;
  }
  r.target = target;
  r.errors = output.stats.errors;
  return r;
}

/**
 * Rates over the whole run: sent = readings ÷ wall time of the sending loop (simulator: until its
 * last round); broker = readings counted at the broker ÷ (its last arrival − the start of the run).
 */
function row(name: string, connections: number, sentReadings: number, wallMs: number, s: BrokerStats, cpu: { sender: number; broker: number }, startedAt: number): Row {
  const brokerMs = Math.max(1, s.lastAt - startedAt);
  return {
    name,
    connections,
    readingsPerMsg: s.messages > 0 ? s.readings / s.messages : 0,
    sentReadings,
    brokerReadings: s.readings,
    brokerMessages: s.messages,
    brokerRate: (s.readings / brokerMs) * 1000,
    brokerMsgRate: (s.messages / brokerMs) * 1000,
    sentRate: (sentReadings / wallMs) * 1000,
    errors: s.unparsable,
    senderCpu: cpu.sender,
    brokerCpu: cpu.broker,
  };
}

function print(rows: Row[]): void {
  const base = rows[0].brokerRate;
  const n = (x: number) => Math.round(x).toLocaleString('en-US');
  const header = ['run', 'conns', 'readings/msg', 'target r/s', 'sent r/s', 'broker r/s', 'broker r/s steady', 'broker msgs/s', 'received/sent', 'vs baseline 1', 'sender CPU-µs/reading', 'broker CPU-µs/reading'];
  const lines = rows.map((r) => [
    r.name,
    String(r.connections),
    r.readingsPerMsg.toFixed(1),
    r.target ? n(r.target) : '-',
    n(r.sentRate),
    n(r.brokerRate),
    r.steadyRate === undefined ? '-' : n(r.steadyRate),
    n(r.brokerMsgRate),
    `${n(r.brokerReadings)}/${n(r.sentReadings)}`,
    `${(r.brokerRate / base).toFixed(2)}×`,
    ((r.senderCpu / Math.max(1, r.sentReadings)) * 1e6).toFixed(2),
    ((r.brokerCpu / Math.max(1, r.brokerReadings)) * 1e6).toFixed(2),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
  console.log(fmt(header));
  console.log(`|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
  for (const l of lines) console.log(fmt(l));
  const csv = [
    'run,connections,readings_per_msg,target,sent_readings_per_s,broker_readings_per_s,broker_steady_readings_per_s,broker_msgs_per_s,broker_readings,sent_readings,ratio_vs_baseline1,sender_cpu_s,broker_cpu_s',
    ...rows.map((r) =>
      [JSON.stringify(r.name), r.connections, r.readingsPerMsg.toFixed(2), r.target ?? '', Math.round(r.sentRate), Math.round(r.brokerRate), r.steadyRate === undefined ? '' : Math.round(r.steadyRate), Math.round(r.brokerMsgRate), r.brokerReadings, r.sentReadings, (r.brokerRate / base).toFixed(3), r.senderCpu.toFixed(3), r.brokerCpu.toFixed(3)].join(','),
    ),
  ].join('\n');
  const file = new URL('./results/simulator.csv', import.meta.url).pathname;
  mkdirSync(new URL('./results/', import.meta.url).pathname, { recursive: true });
  writeFileSync(file, `${csv}\n`);
  console.log(`\ncsv (also in bench/results/simulator.csv):\n${csv}`);
}

const broker = await BrokerProcess.start();
try {
  console.log(`bench:simulator — aedes in its own process (pid ${broker.child.pid}) at ${broker.url}; load plant ${MACHINES} machines at ${RATE_HZ} Hz; rounds of ${TICK_MS} ms; simulator runs ${DURATION_S} s; QoS 0`);
  const rows: Row[] = [];
  rows.push(await baselineSingle(broker));
  rows.push(await baselineBatched(broker));
  rows.push(await simulatorLoad(broker, 100_000, 'batch', 'simulator load mode, batched JSON, target 100k'));
  rows.push(await simulatorLoad(broker, 400_000, 'batch', 'simulator load mode, batched JSON, target 400k'));
  rows.push(await simulatorLoad(broker, 100_000, 'json', 'simulator load mode, 1 reading/msg, target 100k'));
  console.log('');
  print(rows);
  const main = rows[2];
  const steady = main.steadyRate ?? 0;
  const ok = main.brokerReadings >= main.sentReadings && steady >= 100_000 * 0.97;
  const n = (x: number) => Math.round(x).toLocaleString('en-US');
  console.log(
    `\nresult: simulator load mode delivered ${n(steady)} readings/s to the broker in steady state, ${n(main.brokerRate)} readings/s over the whole run incl. start-up ` +
      `(target 100,000; ${main.brokerReadings === main.sentReadings ? 'all' : `${main.brokerReadings} of ${main.sentReadings}`} ${n(main.brokerReadings)} readings counted at the broker; ` +
      `raw 1-reading/msg baseline ${n(rows[0].brokerRate)}/s) — ${ok ? 'PASS' : 'BELOW TARGET'}`,
  );
  console.log('note: shared 2-core machine, other processes compete for CPU; figures are noisy.');
  process.exitCode = ok ? 0 : 1;
} finally {
  broker.stop();
}
