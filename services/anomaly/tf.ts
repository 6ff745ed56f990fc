/**
 * The one module in front of TensorFlow.js. Everything else imports `tf` from here, so the backend
 * choice (native tfjs-node when installed, else the single-threaded wasm backend shipped in npm) is
 * made once, logged once, and can be swapped without touching model code.
 */
import { createRequire } from 'node:module';
import * as tfjs from '@tensorflow/tfjs';
import type { Logger } from '../../common/logger.ts';

export type Tf = typeof tfjs;
export const tf: Tf = tfjs;

/** Name of the active backend once `initTf()` resolved: `tensorflow` (tfjs-node) or `wasm`. */
export let backendName = 'uninitialised';

let ready: Promise<string> | undefined;

/**
 * Picks and initialises the backend (idempotent). tfjs-node is an optionalDependency whose install
 * downloads libtensorflow, so it is absent on most machines: load it in a try and fall back to wasm.
 */
export function initTf(logger?: Logger): Promise<string> {
  ready ??= (async () => {
    const require = createRequire(import.meta.url);
    try {
      require('@tensorflow/tfjs-node');
      await tfjs.setBackend('tensorflow');
      await tfjs.ready();
      backendName = 'tensorflow';
    } catch (nodeErr) {
      // Importing the wasm backend registers it at top priority; select it explicitly before any op.
      await import('@tensorflow/tfjs-backend-wasm');
      const ok = await tfjs.setBackend('wasm');
      if (!ok) throw new Error('tfjs: neither tfjs-node nor the wasm backend could be initialised', { cause: nodeErr });
      await tfjs.ready();
      backendName = 'wasm';
    }
    logger?.info({ backend: backendName, tfjs: tfjs.version.tfjs }, 'tfjs backend selected');
    return backendName;
  })();
  return ready;
}
