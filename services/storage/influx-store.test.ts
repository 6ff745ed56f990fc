/**
 * How the InfluxDB store sorts write errors (Telegraf's table), against a scripted HTTP server that
 * answers like InfluxDB 1.x: 400 → only the refused points come back rejected (bisection), 413 →
 * split, 429 → retriable with Retry-After, 5xx/connection refused → retriable, 401 → retriable
 * STORAGE_UNAUTHORIZED, 404 "database not found" → set up again on the next write.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../common/logger.ts';
import type { Reading } from '../../common/messages.ts';
import { DEFAULT_STORE_OPTIONS } from './backend.ts';
import { StorageUnavailableError } from './errors.ts';
import { InfluxStore } from './influx-store.ts';

type WriteAnswer = { status: number; body?: string; headers?: Record<string, string> };

interface FakeInflux {
  url: string;
  writes: string[][];
  queries: string[];
  answer: (lines: string[]) => WriteAnswer;
  forbidQueries?: boolean;
  close(): Promise<void>;
}

async function fakeInflux(): Promise<FakeInflux> {
  const fake = { writes: [] as string[][], queries: [] as string[], answer: (_: string[]): WriteAnswer => ({ status: 204 }) } as FakeInflux;
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/query') {
        fake.queries.push(url.searchParams.get('q') ?? new URLSearchParams(body).get('q') ?? '');
        if (fake.forbidQueries) {
          res.writeHead(403, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: 'error authorizing query: user not authorized to execute statement, requires admin privilege' }));
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ results: [{ statement_id: 0 }] }));
        return;
      }
      const lines = body.split('\n');
      fake.writes.push(lines);
      const a = fake.answer(lines);
      res.writeHead(a.status, { 'content-type': 'application/json', ...(a.headers ?? {}) });
      res.end(a.body ?? '');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/plant`;
  fake.close = () => new Promise((r) => (server.closeAllConnections(), server.close(() => r())));
  return fake;
}

const reading = (sensor: string, ts = Date.now() - 1000): Reading => ({ site: 'p', line: 'l', machine: 'm', sensor, ts, value: 1, receivedAt: ts });

describe('services/storage/influx-store write errors', () => {
  let fake: FakeInflux | undefined;
  afterEach(async () => {
    await fake?.close();
    fake = undefined;
  });
  const open = async () => {
    fake = await fakeInflux();
    const store = new InfluxStore(fake.url, { ...DEFAULT_STORE_OPTIONS, logger: silentLogger(), embeddedPath: '', requestTimeoutMs: 2000 });
    await store.init();
    return { store, fake };
  };

  it('sets up database, retention policies and continuous queries', async () => {
    const { fake } = await open();
    expect(fake.queries[0]).toBe('CREATE DATABASE "plant"');
    expect(fake.queries.some((q) => /CREATE RETENTION POLICY "plantwatch_raw" ON "plant" DURATION 30d REPLICATION 1 DEFAULT/.test(q))).toBe(true);
    expect(fake.queries.filter((q) => q.startsWith('CREATE CONTINUOUS QUERY'))).toHaveLength(4);
  });

  it('a user without admin rights (403 on setup statements) can still write', async () => {
    fake = await fakeInflux();
    const server = fake;
    // Override /query answers: every setup statement is forbidden.
    const forbidden = new InfluxStore(server.url, { ...DEFAULT_STORE_OPTIONS, logger: silentLogger(), embeddedPath: '', requestTimeoutMs: 2000 });
    server.forbidQueries = true;
    await forbidden.init();
    expect(await forbidden.writeReadings([reading('a')])).toEqual({ written: 1, rejected: [] });
    expect(server.writes).toHaveLength(1);
  });

  it('400: bisects the batch and returns only the refused points as rejected', async () => {
    const { store, fake } = await open();
    fake.answer = (lines) => (lines.some((l) => l.includes('sensor=bad')) ? { status: 400, body: '{"error":"partial write: field type conflict dropped=1"}' } : { status: 204 });
    const rs = ['a', 'b', 'bad', 'c', 'd', 'e', 'f', 'g'].map((s) => reading(s));
    const res = await store.writeReadings(rs);
    expect(res.written).toBe(7);
    expect(res.rejected).toEqual([{ code: 'STORAGE_WRITE_REJECTED', reason: expect.stringMatching(/InfluxDB 400: .*field type conflict/), item: rs[2] }]);
    // 8 → 4+4 → 2+2 → 1+1: a handful of requests, not one per point.
    expect(fake.writes.length).toBeLessThanOrEqual(8);
  });

  it('413: splits a batch that is too large', async () => {
    const { store, fake } = await open();
    fake.answer = (lines) => (lines.length > 2 ? { status: 413, body: '{"error":"Request Entity Too Large"}' } : { status: 204 });
    const res = await store.writeReadings(['a', 'b', 'c', 'd', 'e'].map((s) => reading(s)));
    expect(res).toEqual({ written: 5, rejected: [] });
    expect(fake.writes.filter((w) => w.length <= 2).flat()).toHaveLength(5);
  });

  it('429: retriable, with the Retry-After the server asked for', async () => {
    const { store, fake } = await open();
    fake.answer = () => ({ status: 429, headers: { 'retry-after': '3' }, body: '{"error":"too many requests"}' });
    const err = await store.writeReadings([reading('a')]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageUnavailableError);
    expect(err).toMatchObject({ code: 'STORAGE_UNAVAILABLE', retriable: true, retryAfterMs: 3000 });
  });

  it('5xx and connection refused: retriable', async () => {
    const { store, fake } = await open();
    fake.answer = () => ({ status: 503, body: '{"error":"overloaded"}' });
    await expect(store.writeReadings([reading('a')])).rejects.toMatchObject({ code: 'STORAGE_UNAVAILABLE', retriable: true });
    fake.answer = () => ({ status: 500, body: '{"error":"timeout"}' });
    await expect(store.writeReadings([reading('a')])).rejects.toMatchObject({ code: 'STORAGE_UNAVAILABLE', retriable: true });
    await fake.close();
    await expect(store.writeReadings([reading('a')])).rejects.toMatchObject({ code: 'STORAGE_UNAVAILABLE', retriable: true });
  });

  it('401: retriable as STORAGE_UNAUTHORIZED (data waits for fixed credentials)', async () => {
    const { store, fake } = await open();
    fake.answer = () => ({ status: 401, body: '{"error":"authorization failed"}' });
    await expect(store.writeReadings([reading('a')])).rejects.toMatchObject({ code: 'STORAGE_UNAUTHORIZED', retriable: true });
  });

  it('404 database not found: sets the database up again, then writes', async () => {
    const { store, fake } = await open();
    let dropped = true;
    fake.answer = () => (dropped ? { status: 404, body: '{"error":"database not found: \\"plant\\""}' } : { status: 204 });
    await expect(store.writeReadings([reading('a')])).rejects.toMatchObject({ code: 'STORAGE_UNAVAILABLE', retriable: true });
    dropped = false;
    const before = fake.queries.length;
    expect(await store.writeReadings([reading('a')])).toEqual({ written: 1, rejected: [] });
    expect(fake.queries.slice(before)[0]).toBe('CREATE DATABASE "plant"');
  });
});
