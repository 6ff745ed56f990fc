import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { REJECT_CODES } from './decode.ts';
import { EdgeConfig } from './config.schema.ts';

const readme = readFileSync(new URL('./README.md', import.meta.url), 'utf8');

describe('edge > README', () => {
  it('has the required sections', () => {
    for (const s of ['## Configuration', '## Metrics', '## Errors', '## Example']) expect(readme).toContain(s);
  });

  it('documents every dead-letter code, and no code that does not exist', () => {
    const documented = new Set([...readme.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]));
    expect([...documented].sort()).toEqual([...REJECT_CODES].sort());
  });

  it('documents every top-level config key', () => {
    const keys = Object.keys(EdgeConfig.parse({}));
    for (const k of keys) expect(readme, k).toMatch(new RegExp('`' + k + '[`.[]'));
  });
});
