/**
 * Builds the web UI with Vite's build API into `dashboards/dist`. The platform (and the gateway,
 * with `ui.autoBuild`) calls `ensureDashboardBuilt()` at start: it builds only when dist is missing
 * or older than the sources. Several processes may start at once (tests, several gateways), so the
 * build runs under a lock folder and lands with a rename: nobody ever serves a half-written dist.
 */
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const DASHBOARD_ROOT = fileURLToPath(new URL('.', import.meta.url));
export const DASHBOARD_DIST = join(DASHBOARD_ROOT, 'dist');
const STAMP = '.build-stamp';
const LOCK = join(DASHBOARD_ROOT, '.build.lock');
const SOURCES = ['index.html', 'src', 'public', 'build.ts'];

function newestMtime(path: string): number {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const name of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, name)));
  return newest;
}

/** True when dist is missing or any source file is newer than the last build. */
export function dashboardIsStale(outDir = DASHBOARD_DIST): boolean {
  const stamp = join(outDir, STAMP);
  if (!existsSync(stamp) || !existsSync(join(outDir, 'index.html'))) return true;
  const built = statSync(stamp).mtimeMs;
  return SOURCES.some((s) => newestMtime(join(DASHBOARD_ROOT, s)) > built);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function withLock<T>(fn: () => Promise<T>, timeoutMs = 120_000): Promise<T> {
  const started = Date.now();
  for (;;) {
    try {
      mkdirSync(LOCK);
      writeFileSync(join(LOCK, 'pid'), String(process.pid));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // A builder that died leaves its lock behind: take it over.
      let owner = NaN;
      try {
        owner = Number(readFileSync(join(LOCK, 'pid'), 'utf8'));
      } catch {
        /* being written right now */
      }
      if (Number.isInteger(owner) && !pidAlive(owner)) rmSync(LOCK, { recursive: true, force: true });
      else if (Date.now() - started > timeoutMs) throw new Error(`dashboard build lock ${LOCK} held for over ${timeoutMs} ms`);
      else await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
}

export interface BuildResult {
  outDir: string;
  built: boolean;
  ms: number;
}

/** Always builds (under the lock). */
export async function buildDashboard(outDir = DASHBOARD_DIST): Promise<BuildResult> {
  return withLock(() => buildUnlocked(outDir));
}

/** Builds only when stale; cheap when dist is current. */
export async function ensureDashboardBuilt(outDir = DASHBOARD_DIST): Promise<BuildResult> {
  if (!dashboardIsStale(outDir)) return { outDir, built: false, ms: 0 };
  return withLock(async () => (dashboardIsStale(outDir) ? buildUnlocked(outDir) : { outDir, built: false, ms: 0 }));
}

async function buildUnlocked(outDir: string): Promise<BuildResult> {
  const started = Date.now();
  const { build } = await import('vite');
  const tmp = `${outDir}.tmp-${process.pid}`;
  await build({
    root: DASHBOARD_ROOT,
    configFile: false,
    logLevel: 'warn',
    base: '/',
    publicDir: join(DASHBOARD_ROOT, 'public'),
    build: { outDir: tmp, emptyOutDir: true, target: 'es2022', sourcemap: false, chunkSizeWarningLimit: 1024 },
  });
  writeFileSync(join(tmp, STAMP), new Date().toISOString());
  const old = `${outDir}.old-${process.pid}`;
  if (existsSync(outDir)) renameSync(outDir, old);
  renameSync(tmp, outDir);
  rmSync(old, { recursive: true, force: true });
  return { outDir, built: true, ms: Date.now() - started };
}
