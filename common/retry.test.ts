import { describe, expect, it } from 'vitest';
import { PlatformError } from './errors.ts';
import { retry } from './retry.ts';

const fast = { initialDelayMs: 1, maxDelayMs: 2 };

describe('common > retry', () => {
  it('retries retriable errors until success', async () => {
    let calls = 0;
    const v = await retry(async () => {
      calls++;
      if (calls < 3) throw new PlatformError('X', 'temporary', { retriable: true });
      return 'ok';
    }, fast);
    expect(v).toBe('ok');
    expect(calls).toBe(3);
  });

  it('never retries non-retriable errors or programming errors', async () => {
    let calls = 0;
    await expect(retry(async () => { calls++; throw new PlatformError('X', 'bad request', { retriable: false }); }, fast)).rejects.toThrow('bad request');
    await expect(retry(async () => { calls++; throw new TypeError('bug'); }, { ...fast, isRetriable: () => true })).rejects.toThrow(TypeError);
    expect(calls).toBe(2);
  });

  it('wraps exhaustion with the retry count and the cause', async () => {
    const err = await retry(async () => { throw new PlatformError('X', 'down', { retriable: true }); }, { ...fast, retries: 2 }).catch((e) => e);
    expect(err.code).toBe('RETRIES_EXHAUSTED');
    expect(err.context.retryCount).toBe(2);
    expect(err.cause.message).toBe('down');
  });
});
