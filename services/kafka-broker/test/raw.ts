/** A raw TCP client for feeding the broker arbitrary bytes. */
import { connect, type Socket } from 'node:net';

export interface RawResult {
  data: Buffer;
  closedByServer: boolean;
}

/** Sends `bytes`, then waits until the server closes the connection or `waitMs` passes. */
export function sendRaw(bootstrap: string, bytes: Buffer, waitMs = 3000, halfClose = false): Promise<RawResult> {
  const [host, port] = bootstrap.split(':');
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket: Socket = connect(Number(port), host, () => {
      socket.write(bytes);
      if (halfClose) socket.end();
    });
    socket.allowHalfOpen = true;
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ data: Buffer.concat(chunks), closedByServer: false });
    }, waitMs);
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', (err) => {
      if ((err as NodeJS.ErrnoException).code === 'ECONNRESET') return;
      clearTimeout(timer);
      reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), closedByServer: true });
    });
    socket.on('end', () => socket.end());
  });
}

/** A request frame: size, api key, version, correlation id, client id, body. */
export function frame(apiKey: number, apiVersion: number, correlationId: number, body: Buffer = Buffer.alloc(0), clientId = 'raw'): Buffer {
  const id = Buffer.from(clientId);
  const header = Buffer.alloc(10 + id.length);
  header.writeInt16BE(apiKey, 0);
  header.writeInt16BE(apiVersion, 2);
  header.writeInt32BE(correlationId, 4);
  header.writeInt16BE(id.length, 8);
  id.copy(header, 10);
  const size = Buffer.alloc(4);
  size.writeInt32BE(header.length + body.length);
  return Buffer.concat([size, header, body]);
}

/** Deterministic pseudo-random bytes (xorshift), so a failure can be replayed. */
export function pseudoRandomBytes(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  let x = seed | 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}
