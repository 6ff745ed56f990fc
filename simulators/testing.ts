/**
 * Test and benchmark helpers of the simulator: an aedes broker on an ephemeral port and an Output
 * that captures what the plant emits.
 */
import { createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { MachineBatch, Emission } from './model.ts';
import { newStats, type Output } from './outputs.ts';

export interface TestBroker {
  url: string;
  port: number;
  /** The aedes instance (typed loosely: aedes ships its own d.ts for ESM). */
  broker: { on(event: string, fn: (...args: never[]) => void): void; close(cb?: () => void): void };
  close(): Promise<void>;
}

/** aedes is ESM-only with no default export: `Aedes.createBroker()`. Binds 127.0.0.1 on port 0 unless given. */
export async function startAedes(port = 0): Promise<TestBroker> {
  const { Aedes } = await import('aedes');
  const broker = await Aedes.createBroker();
  // noDelay: without it Nagle + delayed ACK hold small forwarded packets ~40 ms.
  const server: Server = createServer({ noDelay: true }, broker.handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const p = (server.address() as AddressInfo).port;
  return {
    url: `mqtt://127.0.0.1:${p}`,
    port: p,
    broker: broker as unknown as TestBroker['broker'],
    close: () =>
      new Promise<void>((resolve) => {
        broker.close(() => server.close(() => resolve()));
        // Clients that are still connected would keep server.close() waiting.
        (server as Server & { closeAllConnections?: () => void }).closeAllConnections?.();
      }),
  };
}

/** Keeps every emission, per machine key, in send order. */
export class CaptureOutput implements Output {
  readonly stats = newStats();
  readonly emissions: (Emission & { machineKey: string })[] = [];
  async connect(): Promise<void> {}
  send(batches: MachineBatch[]): void {
    for (const b of batches) {
      for (const e of b.emissions) {
        this.emissions.push({ ...e, machineKey: b.machine.key });
        this.stats.messages++;
        if (e.malformed === undefined) this.stats.readings++;
      }
    }
  }
  async ready(): Promise<void> {}
  async flush(): Promise<void> {}
  async close(): Promise<void> {}
  of(path: string): (Emission & { machineKey: string })[] {
    return this.emissions.filter((e) => e.sensor.path === path);
  }
}
