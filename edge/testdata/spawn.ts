/**
 * Starts a TypeScript runner (`npx tsx <script>`) as a child process and waits for its `READY …`
 * line. Used by the kill test and the benchmark.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface Runner {
  child: ChildProcess;
  /** Words after READY. */
  ready: string[];
  stderr(): string;
  kill(signal: NodeJS.Signals): Promise<void>;
}

export async function spawnRunner(script: string, env: Record<string, string>, timeoutMs = 60_000): Promise<Runner> {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const child = spawn('npx', ['tsx', script], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  // Own process group (detached): npx → tsx → node, and kill(-pid) reaches all three.
  const killGroup = () => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* already gone */
    }
  };
  process.once('exit', killGroup);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-8000);
  });
  const ready = await new Promise<string[]>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${script} not ready after ${timeoutMs} ms; stderr: ${err}`)), timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /READY ([^\n]*)\n/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1].split(' '));
      }
    });
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited (${code ?? sig}) before READY; stderr: ${err}`));
    });
  });
  return {
    child,
    ready,
    stderr: () => err,
    kill: async (signal) => {
      try {
        process.kill(-child.pid!, signal);
      } catch {
        child.kill(signal);
      }
      // Wait for the whole group (npx → tsx → node), not just npx: the node process may still be
      // writing (profile, close) or holding its port.
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline) {
        try {
          process.kill(-child.pid!, 0);
        } catch {
          break;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      process.off('exit', killGroup);
    },
  };
}
