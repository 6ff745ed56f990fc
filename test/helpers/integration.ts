/**
 * Gate for tests that need a real external server (InfluxDB, Mosquitto, kcat, Chromium).
 * On a developer machine without the server the suite is skipped with the reason printed; in CI
 * (CI=true) or with PLANTWATCH_REQUIRE_SERVERS=1 a missing server FAILS the run: CI never skips.
 */
import { execFileSync } from 'node:child_process';
import { describe } from 'vitest';

export const serversRequired = process.env.CI === 'true' || process.env.PLANTWATCH_REQUIRE_SERVERS === '1';

/** True if `cmd` is on PATH. */
export function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * `describe` that runs only when every command in `needs` exists. When one is missing: fails in CI,
 * skips (with a console warning naming what to install) elsewhere.
 */
export function describeWith(needs: string[], name: string, fn: () => void): void {
  const missing = needs.filter((c) => !hasCommand(c));
  if (missing.length === 0) {
    describe(name, fn);
    return;
  }
  const msg = `${name}: needs ${missing.join(', ')} on PATH (bash .ci/run installs them)`;
  if (serversRequired) {
    describe(name, () => {
      throw new Error(`${msg}; CI must not skip integration tests`);
    });
    return;
  }
  console.warn(`SKIPPED ${msg}`);
  describe.skip(name, fn);
}
