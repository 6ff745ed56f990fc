/**
 * A real local HTTP webhook receiver for tests (node:http on an ephemeral port). It records every
 * request and answers with whatever `respond` decides, so tests can play a receiver that is down,
 * throttles, or rejects.
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedRequest {
  headers: IncomingHttpHeaders;
  body: string;
  receivedAt: number;
  /** What this receiver answered. */
  status: number;
}

export interface ReceiverReply {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

export interface WebhookReceiver {
  url: string;
  /** Every request, in arrival order (including the ones answered with an error). */
  requests: ReceivedRequest[];
  /** Requests answered 2xx. */
  accepted(): ReceivedRequest[];
  /** Resolves once `n` requests were answered 2xx; rejects after `timeoutMs`. */
  waitForAccepted(n: number, timeoutMs?: number): Promise<ReceivedRequest[]>;
  respond: (req: { headers: IncomingHttpHeaders; body: string; index: number }) => ReceiverReply;
  close(): Promise<void>;
}

export async function startWebhookReceiver(respond: WebhookReceiver['respond'] = () => ({ status: 204 })): Promise<WebhookReceiver> {
  const requests: ReceivedRequest[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  const receiver = { respond } as WebhookReceiver;
  const accepted = () => requests.filter((r) => r.status >= 200 && r.status < 300);
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const reply = receiver.respond({ headers: req.headers, body, index: requests.length });
      requests.push({ headers: req.headers, body, receivedAt: Date.now(), status: reply.status });
      res.writeHead(reply.status, reply.headers ?? {});
      res.end(reply.body ?? '');
      const n = accepted().length;
      for (const w of waiters.filter((x) => x.n <= n)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  Object.assign(receiver, {
    url: `http://127.0.0.1:${port}/hook`,
    requests,
    accepted,
    waitForAccepted(n: number, timeoutMs = 15_000) {
      if (accepted().length >= n) return Promise.resolve(accepted());
      return new Promise<ReceivedRequest[]>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`receiver got ${accepted().length} accepted requests, waited for ${n}`)), timeoutMs);
        waiters.push({
          n,
          resolve: () => {
            clearTimeout(t);
            resolve(accepted());
          },
        });
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
  return receiver;
}
