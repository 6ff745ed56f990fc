/** Group > offset store: committed offsets survive a reopen; a torn last line is skipped. */
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OffsetStore } from './offsetStore.ts';
import { silentLogger } from '../../../../common/logger.ts';

describe('Group > offset store', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'plantwatch-offsets-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps the latest committed offset per partition across reopen and compacts the file', () => {
    const a = new OffsetStore(dir, 'interval', silentLogger());
    a.open();
    a.commit('g', [{ topic: 't', partition: 0, offset: 5, metadata: '' }]);
    a.commit('g', [{ topic: 't', partition: 0, offset: 9, metadata: 'm' }, { topic: 't', partition: 1, offset: 3, metadata: '' }]);
    a.commit('h', [{ topic: 'u', partition: 0, offset: 1, metadata: '' }]);
    a.close();
    appendFileSync(join(dir, 'group-offsets.log'), '{"g":"g","t":"t","p":0,"o":'); // torn write
    const b = new OffsetStore(dir, 'interval', silentLogger());
    b.open();
    expect(b.get('g', 't', 0)).toEqual({ offset: 9, metadata: 'm' });
    expect(b.get('g', 't', 1)).toEqual({ offset: 3, metadata: '' });
    expect(b.get('g', 't', 2)).toBeUndefined();
    expect(b.groupIds().sort()).toEqual(['g', 'h']);
    expect(readFileSync(join(dir, 'group-offsets.log'), 'utf8').trim().split('\n')).toHaveLength(3);
    b.deleteTopic('t');
    expect(b.get('g', 't', 0)).toBeUndefined();
    b.close();
  });
});
