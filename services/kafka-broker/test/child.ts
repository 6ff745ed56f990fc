/** Starts `testdata/run-broker.ts` in a child process and waits for its READY line. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const RUNNER = fileURLToPath(new URL('../testdata/run-broker.ts', import.meta.url));

export interface ChildBroker {
  child: ChildProcess;
  bootstrap: string;
  stderr: () => string;
  exited: Promise<number | null>;
}

export function startChildBroker(args: string[]): Promise<ChildBroker> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', RUNNER, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`broker child did not start: ${err}`));
    }, 30_000);
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /READY (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, bootstrap: m[1], stderr: () => err, exited });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (!/READY/.test(out)) reject(new Error(`broker child exited with ${code}: ${err}`));
    });
  });
}
