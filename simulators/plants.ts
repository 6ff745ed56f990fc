/**
 * Ready-made plants: the synthetic load plant used by load mode and benchmarks (N machines of every
 * type spread over lines of ten), besides the demo plant in config.schema.ts.
 */
import { MACHINE_TYPES, type PlantSpec } from './config.schema.ts';
import type { z } from 'zod';

export interface LoadPlantOptions {
  machines: number;
  /** Sampling rate of every sensor. */
  rateHz: number;
  machinesPerLine?: number;
  site?: string;
  /** Machine types to cycle through; default all. */
  types?: readonly (typeof MACHINE_TYPES)[number][];
}

export function loadPlant(o: LoadPlantOptions): z.input<typeof PlantSpec> {
  const perLine = o.machinesPerLine ?? 10;
  const types = o.types ?? MACHINE_TYPES;
  const lines: { id: string; machines: { id: string; type: (typeof MACHINE_TYPES)[number]; rateHz: number }[] }[] = [];
  for (let i = 0; i < o.machines; i++) {
    const li = Math.floor(i / perLine);
    if (!lines[li]) lines[li] = { id: `line-${li + 1}`, machines: [] };
    const type = types[i % types.length];
    lines[li].machines.push({ id: `${type.replace('_spindle', '')}-${i + 1}`, type, rateHz: o.rateHz });
  }
  return { sites: [{ id: o.site ?? 'load', lines }] };
}
