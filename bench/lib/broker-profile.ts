/** Summarises a V8 .cpuprofile: self time per function, top N, plus idle/GC/program shares. */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export function summariseProfile(path: string, top = 10): string {
  const p = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const n = byId.get(id)!;
    const dt = p.timeDeltas[i] ?? 0;
    total += dt;
    const url = n.callFrame.url.replace(/^.*\/(node_modules|services|common)\//, '$1/');
    const key = `${n.callFrame.functionName || '(anonymous)'} ${url ? `${url}:${n.callFrame.lineNumber + 1}` : ''}`.trim();
    self.set(key, (self.get(key) ?? 0) + dt);
  });
  // An in-process inspector session books the event loop's idle time on its own `dispatch` frame.
  const IDLE = new Set(['(idle)', 'dispatch']);
  let idle = 0;
  for (const k of IDLE) idle += self.get(k) ?? 0;
  const busy = total - idle;
  const rows = [...self].filter(([k]) => !IDLE.has(k)).sort((a, b) => b[1] - a[1]).slice(0, top);
  const lines = [`  busy ${(busy / 1e6).toFixed(2)} s of ${(total / 1e6).toFixed(2)} s sampled`];
  for (const [k, us] of rows) lines.push(`  ${((us / busy) * 100).toFixed(1).padStart(5)}%  ${k}`);
  return lines.join('\n');
}

/** Profiles this process (the kafkajs client side) with the inspector until the returned stop() writes the file. */
export async function startClientProfile(): Promise<(path: string) => Promise<void>> {
  const { Session } = await import('node:inspector');
  const { writeFileSync } = await import('node:fs');
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object): Promise<unknown> =>
    new Promise((resolve, reject) => session.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res))));
  await post('Profiler.enable');
  await post('Profiler.start');
  return async (path: string) => {
    const { profile } = (await post('Profiler.stop')) as { profile: unknown };
    writeFileSync(path, JSON.stringify(profile));
    session.disconnect();
  };
}
