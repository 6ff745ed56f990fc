/**
 * Shared pieces of the end-to-end tests: a whole platform on free ports in a temp folder, a
 * Socket.IO watcher of one machine, and polling helpers.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io, type Socket } from 'socket.io-client';
import { silentLogger } from '../../common/logger.ts';
import { startPlatform, type PlatformHandle } from '../../platform/index.ts';
import type { PlatformConfigInput } from '../../platform/config.schema.ts';
import type { GatewayHandle } from '../../services/gateway/index.ts';
import type { LivePayload, SubscribeAck } from '../../services/gateway/protocol.ts';

/** Every listener on port 0 so tests run beside each other and beside a running `npm start`. */
export function freePortsConfig(dataDir: string): PlatformConfigInput {
  return {
    dataDir,
    broker: { port: 0, httpPort: 0 },
    edge: { embedded: { port: 0 }, httpPort: 0 },
    anomaly: { httpPort: 0 },
    storage: { httpPort: 0 },
    alerts: { httpPort: 0 },
    gateway: { port: 0 },
    simulator: { enabled: false },
  } as PlatformConfigInput;
}

export async function startTestPlatform(extra: { env?: Record<string, string>; overrides?: PlatformConfigInput } = {}): Promise<PlatformHandle & { dataDir: string; dispose(): Promise<void> }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'pw-e2e-'));
  const base = freePortsConfig(dataDir) as Record<string, unknown>;
  const overrides = { ...base, ...(extra.overrides as Record<string, unknown> | undefined) };
  const handle = await startPlatform({ env: extra.env ?? {}, overrides: overrides as PlatformConfigInput, logger: silentLogger() });
  return Object.assign(handle, {
    dataDir,
    async dispose() {
      await handle.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  });
}

export interface Watcher {
  socket: Socket;
  readings: LivePayload['readings'] & object;
  scores: NonNullable<LivePayload['scores']>;
  close(): void;
}

/** Connects with the gateway's demo token and subscribes to one machine. */
export async function watchMachine(gw: GatewayHandle, scope: { site: string; line: string; machine: string }, token = gw.demoToken): Promise<Watcher> {
  const socket = io(gw.url, { auth: { token }, transports: ['websocket'], reconnection: false });
  const w: Watcher = { socket, readings: [], scores: [], close: () => socket.close() };
  socket.on('live', (p: LivePayload) => {
    w.readings.push(...(p.readings ?? []));
    w.scores.push(...(p.scores ?? []));
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', (err) => reject(err));
  });
  const ack = (await socket.timeout(10_000).emitWithAck('subscribe', { scope })) as SubscribeAck;
  if (!ack.ok) throw new Error(`subscribe refused: ${ack.error.code}`);
  return w;
}

export async function waitUntil<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Readings of `machines` × `sensors`, one per second of event time ending a minute ago. */
export function plannedReadings(machines: string[], sensors: string[], perSensor: number, now = Date.now()) {
  const start = Math.floor((now - 60_000 - perSensor * 1000) / 1000) * 1000;
  const out: { machine: string; sensor: string; ts: number; value: number }[] = [];
  for (let i = 0; i < perSensor; i++) {
    for (const machine of machines) {
      for (const [k, sensor] of sensors.entries()) {
        out.push({ machine, sensor, ts: start + i * 1000, value: 20 + k * 10 + Math.sin(i / 5) + (machine.length % 3) });
      }
    }
  }
  return out;
}
