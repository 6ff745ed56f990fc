/**
 * Test doubles for the edge bridge: an in-memory Kafka sink that can be made to fail or stall,
 * and a context factory. Used by edge unit tests and the benchmark's fake-Kafka rows.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ComponentContext } from '../common/component.ts';
import type { KafkaClients } from '../common/kafka.ts';
import { silentLogger } from '../common/logger.ts';
import { createRegistry } from '../common/metrics.ts';
import type { KafkaSink } from './forwarder.ts';
import type { OutRecord } from './pipeline.ts';

export class MemorySink implements KafkaSink {
  readonly records: OutRecord[] = [];
  /** While set, sends fail (Kafka down). */
  down = false;
  /** While set, sends wait until released (Kafka slow / ack held). */
  private gate: Promise<void> | null = null;
  private openGate: (() => void) | null = null;
  sends = 0;
  private waiters: { n: number; resolve: () => void }[] = [];

  async send(records: OutRecord[]): Promise<void> {
    this.sends++;
    if (this.gate) await this.gate;
    if (this.down) throw new Error('kafka down (fake)');
    this.records.push(...records);
    for (const w of this.waiters.filter((w) => this.records.length >= w.n)) w.resolve();
    this.waiters = this.waiters.filter((w) => this.records.length < w.n);
  }

  hold(): void {
    this.gate ??= new Promise((r) => (this.openGate = r));
  }

  release(): void {
    this.openGate?.();
    this.gate = null;
    this.openGate = null;
  }

  topic(name: string): OutRecord[] {
    return this.records.filter((r) => r.topic === name);
  }

  waitFor(n: number, timeoutMs = 10_000): Promise<void> {
    if (this.records.length >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`MemorySink: ${this.records.length}/${n} records after ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({ n, resolve: () => (clearTimeout(t), resolve()) });
    });
  }
}

/** A context whose Kafka clients must not be used (tests inject a sink). */
export function testContext(dataDir = mkdtempSync(join(tmpdir(), 'pw-edge-'))): ComponentContext {
  const unusable = () => {
    throw new Error('test context: no Kafka');
  };
  const kafka: KafkaClients = { brokers: [], producer: unusable, consumer: unusable, admin: unusable };
  return { logger: silentLogger(), metrics: createRegistry('edge'), kafka, dataDir };
}
