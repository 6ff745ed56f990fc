/** A minimal Kafka client over our own codecs, for exercising exact request fields (long-poll, limits). */
import { connect, type Socket } from 'node:net';
import type { ApiDef } from '../src/protocol/index.ts';
import { isFlexible } from '../src/protocol/api.ts';
import { decode, encode } from '../src/protocol/schema.ts';
import { Reader, Writer } from '../src/protocol/primitives.ts';

export class ProtocolClient {
  private corr = 0;
  private buf = Buffer.alloc(0);
  private readonly waiting = new Map<number, (frame: Buffer) => void>();

  private constructor(private readonly socket: Socket) {
    socket.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 4 && this.buf.length >= 4 + this.buf.readInt32BE(0)) {
        const frame = this.buf.subarray(4, 4 + this.buf.readInt32BE(0));
        this.buf = this.buf.subarray(4 + frame.length);
        const corr = frame.readInt32BE(0);
        this.waiting.get(corr)?.(frame);
        this.waiting.delete(corr);
      }
    });
  }

  static connect(bootstrap: string): Promise<ProtocolClient> {
    const [host, port] = bootstrap.split(':');
    return new Promise((resolve, reject) => {
      const s = connect(Number(port), host, () => resolve(new ProtocolClient(s)));
      s.once('error', reject);
    });
  }

  request<T>(api: ApiDef, version: number, body: object): Promise<T> {
    const corr = ++this.corr;
    const flex = isFlexible(api, version);
    const w = new Writer();
    w.int16(api.key).int16(version).int32(corr).string('protocol-test', false);
    if (flex) w.emptyTags();
    encode(api.request, w, version, flex, body);
    return new Promise<T>((resolve) => {
      this.waiting.set(corr, (frame) => {
        const r = new Reader(frame, 4);
        if (flex && api.key !== 18) r.skipTags();
        resolve(decode<T>(api.response, r, version, flex));
      });
      for (const c of w.finish()) this.socket.write(c);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}
