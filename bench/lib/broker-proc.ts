/** Process helpers for bench/broker.ts: CPU time of a process from /proc, child runners. */
import { readFileSync, statSync } from 'node:fs';
import { spawn } from 'node:child_process';

const TICKS_PER_SECOND = 100; // Linux USER_HZ

/** user+system CPU seconds of a live process (0 if it is gone). */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

/**
 * Runs a command with stdin from a file (or nothing) and stdout discarded; returns wall seconds and
 * the CPU seconds it used (sampled from /proc every 20 ms, last sample before exit).
 */
export function runTimed(cmd: string, args: string[], stdinFile?: string): Promise<{ seconds: number; cpu: number; stderr: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn('sh', ['-c', `exec "$0" "$@" ${stdinFile ? `< '${stdinFile}'` : '< /dev/null'} > /dev/null`, cmd, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let cpu = 0;
    let stderr = '';
    const sampler = setInterval(() => {
      const c = cpuSeconds(child.pid!);
      if (c > 0) cpu = c;
    }, 20);
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code) => {
      clearInterval(sampler);
      resolve({ seconds: (performance.now() - started) / 1000, cpu, stderr, code });
    });
  });
}

/** True if `cmd` is on PATH. */
export function hasCommand(cmd: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => {
    try {
      return statSync(`${dir}/${cmd}`).isFile();
    } catch {
      return false;
    }
  });
}
