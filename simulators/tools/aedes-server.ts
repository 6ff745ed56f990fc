/**
 * A standalone aedes broker for benchmarks: runs in its own process (like the embedded broker of
 * `npm start` does relative to load generators), counts what it receives, and answers over IPC.
 *   parent → { cmd: 'stats' } ; child → { port } once listening, { stats } on request.
 * Readings are counted by parsing each payload (a JSON array counts its elements), so the figure is
 * what the broker really got, not what a client claims it sent.
 */
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';

const { Aedes } = await import('aedes');
const broker = await Aedes.createBroker();
const stats = { messages: 0, readings: 0, bytes: 0, unparsable: 0, firstAt: 0, lastAt: 0 };
const countReadings = process.argv.includes('--count-readings');
broker.on('publish', (packet: { topic: string; payload: Buffer | string }, client: unknown) => {
  if (!client) return; // $SYS and will messages
  const now = Date.now();
  if (stats.messages === 0) stats.firstAt = now;
  stats.lastAt = now;
  stats.messages++;
  const len = typeof packet.payload === 'string' ? Buffer.byteLength(packet.payload) : packet.payload.length;
  stats.bytes += len;
  if (!countReadings) return;
  try {
    const v = JSON.parse(packet.payload.toString()) as unknown;
    stats.readings += Array.isArray(v) ? v.length : 1;
  } catch {
    stats.unparsable++;
  }
});
const server = createServer(broker.handle);
const port = Number(process.env.PORT ?? 0);
server.listen(port, '127.0.0.1', () => {
  const bound = (server.address() as AddressInfo).port;
  if (process.send) process.send({ port: bound });
  else {
    // Standalone (`PORT=18830 npx tsx simulators/tools/aedes-server.ts --count-readings`): report every 5 s.
    console.log(`aedes listening on mqtt://127.0.0.1:${bound}`);
    let last = { readings: 0, messages: 0, at: Date.now() };
    setInterval(() => {
      const now = Date.now();
      const dt = (now - last.at) / 1000;
      if (stats.messages !== last.messages) {
        console.log(`received ${stats.messages} msgs, ${stats.readings} readings; last 5 s: ${Math.round((stats.messages - last.messages) / dt)} msgs/s, ${Math.round((stats.readings - last.readings) / dt)} readings/s`);
      }
      last = { readings: stats.readings, messages: stats.messages, at: now };
    }, 5000);
  }
});
process.on('message', (m: { cmd: string }) => {
  if (m.cmd === 'stats') process.send?.({ stats });
  if (m.cmd === 'reset') {
    stats.messages = stats.readings = stats.bytes = stats.unparsable = stats.firstAt = stats.lastAt = 0;
    process.send?.({ reset: true });
  }
});
if (process.send) process.on('disconnect', () => process.exit(0));
