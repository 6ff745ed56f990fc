/**
 * Small pieces every test that owns a server process or picks ports needs: a free loopback port,
 * whether a child is still running, and a SIGTERM-then-SIGKILL stop.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';

/** A port free on 127.0.0.1 right now (the OS picks it; another process could still take it later). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/**
 * `count` distinct ports free on 127.0.0.1 right now. Each listener stays open until all are picked:
 * calling freePort() in a row can hand out the same port twice, since each is released before the next.
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const srv = createServer();
      srv.unref();
      servers.push(srv);
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(0, '127.0.0.1', () => resolve());
      });
    }
    return servers.map((srv) => (srv.address() as { port: number }).port);
  } finally {
    await Promise.all(servers.map((srv) => new Promise<void>((r) => (srv.listening ? srv.close(() => r()) : r()))));
  }
}

export function isAlive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
export async function stopChild(child: ChildProcess | undefined, graceMs: number): Promise<void> {
  if (!child || !isAlive(child)) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/**
 * The node flags an npm script passes (package.json: `tsx [flags] bin/plantwatch.ts <command>`), so
 * tests and benches run node as users do.
 */
export function npmScriptNodeFlags(script: string): string[] {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };
  const line = pkg.scripts[script] ?? '';
  const words = line.split(/\s+/);
  const at = words.indexOf('bin/plantwatch.ts');
  if (words[0] !== 'tsx' || at < 1) throw new Error(`npm script ${script} is not \`tsx [flags] bin/plantwatch.ts …\`: ${line}`);
  return words.slice(1, at);
}
