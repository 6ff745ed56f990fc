/**
 * A real embedded broker for tests: port 0, a fresh temp data dir, silent logs, and kafkajs
 * clients bound to it through `common/kafka.ts`.
 *
 *   const k = await startTestBroker();
 *   const producer = k.kafka.producer(); ...
 *   await k.close();
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createKafkaClients, type KafkaClients } from '../../common/kafka.ts';
import { KafkaClientConfig } from '../../common/config/fragments.ts';
import { silentLogger, type Logger } from '../../common/logger.ts';
import { startBroker, type BrokerHandle, type StartBrokerOptions } from '../../services/kafka-broker/index.ts';

export interface TestBroker {
  brokers: string[];
  kafka: KafkaClients;
  broker: BrokerHandle;
  dataDir: string;
  close(): Promise<void>;
}

export interface TestBrokerOptions extends StartBrokerOptions {
  /** Keep the data dir after close (restart tests pass the same dataDir again). */
  keepData?: boolean;
  clientId?: string;
  clientLogger?: Logger;
}

export async function startTestBroker(opts: TestBrokerOptions = {}): Promise<TestBroker> {
  const { keepData, clientId, clientLogger, ...brokerOpts } = opts;
  const dataDir = brokerOpts.dataDir ?? mkdtempSync(join(tmpdir(), 'plantwatch-kafka-'));
  const broker = await startBroker({ port: 0, httpPort: null, logger: silentLogger(), groupMinSessionTimeoutMs: 100, ...brokerOpts, dataDir });
  const kafka = createKafkaClients(
    { ...KafkaClientConfig.parse({}), clientId: clientId ?? 'test', brokers: broker.brokers },
    clientLogger ?? silentLogger(),
  );
  let closed = false;
  return {
    brokers: broker.brokers,
    kafka,
    broker,
    dataDir,
    close: async () => {
      if (closed) return;
      closed = true;
      await broker.close();
      if (!keepData && !brokerOpts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
