import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadSimulatorConfig } from './cli.ts';
import { MACHINE_TYPE_DEFS } from './machines.ts';
import { PlantModel } from './model.ts';
import { FAULT_KINDS, MACHINE_TYPES } from './config.schema.ts';

const readme = readFileSync(new URL('./README.md', import.meta.url), 'utf8');

describe('simulators > docs', () => {
  it('the example config is valid and builds its plant', () => {
    const cfg = loadSimulatorConfig(new URL('./examples/bottling-plant.yaml', import.meta.url).pathname, () => {});
    const model = new PlantModel(cfg, { startMs: Date.parse('2026-01-05T00:00:00Z') });
    expect(model.machines.map((m) => m.key)).toEqual(['hamburg/filling/feed-pump', 'hamburg/filling/air', 'hamburg/packing/belt-1', 'hamburg/packing/labeller']);
    expect(model.faultsBetween(model.startMs, model.startMs + 3_600_000).filter((f) => f.source === 'scheduled')).toHaveLength(3);
  });

  it('the README documents every machine type with its sensors, and every fault kind', () => {
    for (const t of MACHINE_TYPES) {
      const row = readme.split('\n').find((l) => l.startsWith(`| \`${t}\` |`));
      expect(row, t).toBeDefined();
      for (const s of MACHINE_TYPE_DEFS[t].sensors) expect(row, `${t}.${s.id}`).toContain(`\`${s.id}\` (${s.unit})`);
    }
    for (const k of FAULT_KINDS) expect(readme, k).toMatch(new RegExp(`\\| \`${k}\`( \\(pumps only\\))? \\|`));
  });
});
