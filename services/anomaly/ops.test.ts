import { afterEach, describe, expect, it } from 'vitest';
import { startOpsServer, type OpsServer } from '../../common/http.ts';
import { PlatformError } from '../../common/errors.ts';
import { AnomalyConfig } from './config.schema.ts';
import { opsRoutes, type OpsControl } from './ops.ts';
import type { RescoreStatus } from './rescore.ts';

function status(over: Partial<RescoreStatus> = {}): RescoreStatus {
  return {
    id: 'j1',
    kind: 'rescore',
    modelVersion: 'v2',
    state: 'running',
    from: 0,
    to: null,
    groupId: 'g',
    outputTopic: 't',
    partitions: [],
    readingsScored: 0,
    startedAt: 0,
    finishedAt: null,
    checkpoint: null,
    promoted: false,
    error: null,
    ...over,
  };
}

describe('services > anomaly > ops endpoints', () => {
  let server: OpsServer | undefined;
  afterEach(async () => {
    await server?.close();
  });

  async function serve(control: Partial<OpsControl>): Promise<string> {
    server = await startOpsServer({ port: 0, host: '127.0.0.1', registries: () => [], routes: [opsRoutes(control as OpsControl)] });
    return server.url;
  }
  const post = (url: string, body: unknown) => fetch(url, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body) });

  it('POST /rescore validates the body, turns ISO times into epoch ms and answers 202 with the job', async () => {
    const calls: unknown[] = [];
    const url = await serve({
      rescore: async (b) => {
        calls.push(b);
        return status({ from: b.from, modelVersion: b.modelVersion ?? 'auto' });
      },
    });
    const ok = await post(`${url}/rescore`, { from: '2026-11-26T10:00:00Z', modelVersion: 'v2' });
    expect(ok.status).toBe(202);
    expect(await ok.json()).toMatchObject({ id: 'j1', from: Date.parse('2026-11-26T10:00:00Z') });
    expect(calls).toEqual([{ from: Date.parse('2026-11-26T10:00:00Z'), modelVersion: 'v2', promote: false }]);

    for (const [body, fragment] of [
      [{}, 'from'],
      [{ from: 'soon' }, 'ISO-8601'],
      [{ from: 1, modelVersion: '../x' }, 'modelVersion'],
      [{ from: 1, extra: true }, 'extra'],
      ['{not json', 'not JSON'],
    ] as const) {
      const res = await post(`${url}/rescore`, body);
      expect(res.status).toBe(400);
      const err = (await res.json()) as { error: string; message: string };
      expect(err.error).toBe('ANOMALY_REQUEST_INVALID');
      expect(err.message).toContain(fragment);
    }
    expect(calls).toHaveLength(1);
  });

  it('maps service errors to HTTP statuses and exposes jobs, retrain, promote and checkpoint', async () => {
    const url = await serve({
      rescore: async () => {
        throw new PlatformError('ANOMALY_RESCORE_CONFLICT', 'exists', { retriable: false });
      },
      retrain: async (b) => status({ kind: 'retrain', from: b.from ?? -1, promoted: b.promote }),
      jobs: () => [status()],
      job: (id) => (id === 'j1' ? status() : undefined),
      cancelJob: async (id) => (id === 'j1' ? status({ state: 'cancelled' }) : undefined),
      promote: async (v) => {
        if (v === 'missing') throw new PlatformError('ANOMALY_MODEL_NOT_FOUND', 'no such model', { retriable: false });
        return { live: v };
      },
      checkpoint: async () => {
        throw new PlatformError('ANOMALY_CHECKPOINT_FAILED', 'disk full', { retriable: true });
      },
      models: async () => ({ live: 'v1', versions: [] }),
    });
    expect((await post(`${url}/rescore`, { from: 5 })).status).toBe(409);
    const retrain = await post(`${url}/retrain`, {});
    expect(retrain.status).toBe(202);
    expect(await retrain.json()).toMatchObject({ kind: 'retrain', from: -1, promoted: true });
    expect(await (await fetch(`${url}/rescore`)).json()).toHaveLength(1);
    expect((await fetch(`${url}/rescore/j1`)).status).toBe(200);
    expect((await fetch(`${url}/rescore/nope`)).status).toBe(404);
    expect(await (await fetch(`${url}/rescore/j1`, { method: 'DELETE' })).json()).toMatchObject({ state: 'cancelled' });
    expect(await (await post(`${url}/promote`, { modelVersion: 'v3' })).json()).toEqual({ live: 'v3' });
    expect((await post(`${url}/promote`, { modelVersion: 'missing' })).status).toBe(404);
    expect((await post(`${url}/checkpoint`, {})).status).toBe(503);
    expect(await (await fetch(`${url}/models`)).json()).toEqual({ live: 'v1', versions: [] });
    expect((await fetch(`${url}/unknown`)).status).toBe(404);
  });
});

describe('services > anomaly > config', () => {
  it('parses {} into a working default config, including the detector section', () => {
    const c = AnomalyConfig.parse({});
    expect(c).toMatchObject({
      groupId: 'plantwatch-anomaly',
      inputTopic: 'plantwatch.readings',
      outputTopic: 'plantwatch.scores',
      deadLetterTopic: 'plantwatch.deadletter',
      httpPort: 9102,
      limits: {},
      rescore: { outputTopic: 'plantwatch.scores.rescore', maxConcurrentJobs: 1 },
    });
    expect(c.batch.maxReadings).toBeGreaterThan(0);
    expect(c.model.checkpointIntervalMs).toBe(300_000);
    expect(c.detector.modelVersion).toBeTypeOf('string');
  });

  it('rejects unknown keys and bad limits with the key named', () => {
    expect(AnomalyConfig.safeParse({ grupId: 'x' }).success).toBe(false);
    expect(AnomalyConfig.safeParse({ batch: { maxReadings: 0 } }).success).toBe(false);
    const badKey = AnomalyConfig.safeParse({ limits: { 'site/line/machine': { upper: 1 } } });
    expect(badKey.success).toBe(false);
    const empty = AnomalyConfig.safeParse({ limits: { 's/l/m/temp': {} } });
    expect(empty.success).toBe(false);
    const inverted = AnomalyConfig.safeParse({ limits: { 's/l/m/temp': { lower: 5, upper: 1 } } });
    expect(inverted.success).toBe(false);
    expect(AnomalyConfig.parse({ limits: { 's/l/m/temp': { upper: 90 } } }).limits).toEqual({ 's/l/m/temp': { upper: 90 } });
  });
});
