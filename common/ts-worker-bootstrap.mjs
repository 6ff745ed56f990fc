// Plain JavaScript on purpose: Node 20 does not apply `--import tsx` (nor the parent's loader hooks) to a
// Worker's entry file, so this file registers tsx inside the worker, then loads the TypeScript entry.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
