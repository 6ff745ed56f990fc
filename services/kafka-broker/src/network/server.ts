/**
 * TCP framing for the Kafka protocol: 4-byte size prefix, request header v1/v2, one request at a
 * time per connection (responses leave in request order, as the protocol guide requires).
 * Knows nothing about individual APIs: a `Dispatcher` turns a request into response chunks.
 *
 * A frame whose size is negative, too small for a header or above `maxFrameBytes`, or whose header
 * does not parse, closes that connection with a log line and a metric; others are unaffected.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../../../common/logger.ts';
import { DecodeError, Reader } from '../protocol/primitives.ts';

export interface RequestHeader {
  apiKey: number;
  apiVersion: number;
  correlationId: number;
  clientId: string;
}

export interface ConnectionInfo {
  readonly id: number;
  readonly remoteAddress: string;
  /** Aborted when the connection closes (cancels held requests such as long-poll fetches). */
  readonly closed: AbortSignal;
}

/** Response frame chunks (size prefix included), null for no response (acks=0), or a promise of them. */
export type DispatchResult = Buffer[] | null | Promise<Buffer[] | null>;

export interface Dispatcher {
  /** Whether the request header of this api/version is flexible (header v2: tagged fields after client id). */
  isFlexibleHeader(apiKey: number, apiVersion: number): boolean;
  dispatch(conn: ConnectionInfo, header: RequestHeader, body: Reader): DispatchResult;
}

export interface ServerHooks {
  onConnection?(open: boolean): void;
  onBadFrame?(reason: string): void;
  onBytesIn?(n: number): void;
  onBytesOut?(n: number): void;
}

export interface NetworkOptions {
  host: string;
  port: number;
  maxFrameBytes: number;
  idleMs: number;
  logger: Logger;
  dispatcher: Dispatcher;
  hooks?: ServerHooks;
}

/** Stop reading from a client that does not read its responses once this much is queued. */
const MAX_QUEUED_OUT = 64 * 1024 * 1024;

export class ProtocolError extends Error {
  constructor(
    message: string,
    readonly reason: string,
  ) {
    super(message);
  }
}

class Connection implements ConnectionInfo {
  readonly remoteAddress: string;
  private readonly abort = new AbortController();
  private chunks: Buffer[] = [];
  private buffered = 0;
  private readonly frames: Buffer[] = [];
  private busy = false;
  private dead = false;

  constructor(
    readonly id: number,
    private readonly socket: Socket,
    private readonly opts: NetworkOptions,
  ) {
    this.remoteAddress = socket.remoteAddress ?? '';
    socket.setNoDelay(true);
    socket.setTimeout(opts.idleMs, () => this.kill('idle timeout', false));
    socket.on('data', (chunk) => this.onData(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.dead = true;
      this.abort.abort();
      this.frames.length = 0;
      this.chunks = [];
    });
  }

  get closed(): AbortSignal {
    return this.abort.signal;
  }

  private kill(reason: string, bad: boolean): void {
    if (this.dead) return;
    this.dead = true;
    if (bad) {
      this.opts.logger.warn({ conn: this.id, remote: this.remoteAddress, reason }, 'closing connection: bad frame');
      this.opts.hooks?.onBadFrame?.(reason);
    } else this.opts.logger.debug({ conn: this.id, reason }, 'closing connection');
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.dead) return;
    this.opts.hooks?.onBytesIn?.(chunk.length);
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (this.buffered >= 4) {
      const size = this.peekSize();
      if (size < 8 || size > this.opts.maxFrameBytes) {
        this.kill(size < 8 ? `frame size ${size} too small` : `frame size ${size} exceeds maxFrameBytes ${this.opts.maxFrameBytes}`, true);
        return;
      }
      if (this.buffered < size + 4) break;
      this.frames.push(this.take(size + 4).subarray(4));
    }
    this.pump();
  }

  private peekSize(): number {
    const first = this.chunks[0];
    if (first.length >= 4) return first.readInt32BE(0);
    const head = Buffer.alloc(4);
    let n = 0;
    for (const c of this.chunks) {
      const k = Math.min(4 - n, c.length);
      c.copy(head, n, 0, k);
      n += k;
      if (n === 4) break;
    }
    return head.readInt32BE(0);
  }

  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0];
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const c = this.chunks[0];
      const k = Math.min(n - at, c.length);
      c.copy(out, at, 0, k);
      at += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }

  /** Handles queued frames one at a time; a pending (async) response pauses the queue. */
  private pump(): void {
    while (!this.busy && !this.dead && this.frames.length > 0) {
      const frame = this.frames.shift()!;
      let result: DispatchResult;
      try {
        result = this.handle(frame);
      } catch (err) {
        this.fail(err);
        return;
      }
      if (result instanceof Promise) {
        this.busy = true;
        result.then(
          (chunks) => {
            this.busy = false;
            this.send(chunks);
            this.pump();
          },
          (err) => this.fail(err),
        );
        return;
      }
      this.send(result);
    }
    if (!this.dead && this.socket.writableLength > MAX_QUEUED_OUT && !this.socket.isPaused()) {
      this.socket.pause();
      this.socket.once('drain', () => this.socket.resume());
    }
  }

  private fail(err: unknown): void {
    if (err instanceof ProtocolError) this.kill(err.reason, true);
    else if (err instanceof DecodeError || err instanceof RangeError) this.kill(`undecodable request: ${(err as Error).message}`, true);
    else {
      this.opts.logger.error({ conn: this.id, err }, 'request handler failed; closing connection');
      this.kill('handler error', false);
    }
  }

  private handle(frame: Buffer): DispatchResult {
    const r = new Reader(frame);
    const apiKey = r.int16();
    const apiVersion = r.int16();
    const correlationId = r.int32();
    // client_id stays an int16-length string even in the flexible header v2 (RequestHeader.json).
    const clientId = r.string(false) ?? '';
    if (this.opts.dispatcher.isFlexibleHeader(apiKey, apiVersion)) r.skipTags();
    return this.opts.dispatcher.dispatch(this, { apiKey, apiVersion, correlationId, clientId }, r);
  }

  private send(chunks: Buffer[] | null): void {
    if (!chunks || this.dead) return;
    let n = 0;
    if (chunks.length === 1) {
      this.socket.write(chunks[0]);
      n = chunks[0].length;
    } else {
      this.socket.cork();
      for (const c of chunks) {
        this.socket.write(c);
        n += c.length;
      }
      this.socket.uncork();
    }
    this.opts.hooks?.onBytesOut?.(n);
  }

  /** Sends a final frame and closes (unknown API or version). */
  endWith(chunks: Buffer[], reason: string): void {
    this.send(chunks);
    this.opts.logger.warn({ conn: this.id, remote: this.remoteAddress, reason }, 'closing connection after error response');
    this.opts.hooks?.onBadFrame?.(reason);
    this.dead = true;
    this.socket.end();
  }

  destroy(): void {
    this.kill('broker closing', false);
  }
}

export class KafkaServer {
  private server?: Server;
  private readonly conns = new Set<Connection>();
  private nextId = 1;

  constructor(private readonly opts: NetworkOptions) {}

  async listen(): Promise<{ host: string; port: number }> {
    const server = createServer((socket) => {
      const conn = new Connection(this.nextId++, socket, this.opts);
      this.conns.add(conn);
      this.opts.hooks?.onConnection?.(true);
      socket.on('close', () => {
        this.conns.delete(conn);
        this.opts.hooks?.onConnection?.(false);
      });
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address() as AddressInfo;
    return { host: addr.address, port: addr.port };
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const c of this.conns) c.destroy();
    await closed;
  }
}

/** The connection object passed to dispatchers also supports `endWith` (for unknown APIs). */
export type ConnectionWithEnd = ConnectionInfo & { endWith(chunks: Buffer[], reason: string): void };
