/**
 * Golden cases: testcases/<case>/config.yaml → expected.out (`topic payload` lines in send order,
 * then the labels). They pin the generator's exact output: a change to the physics, the noise or a
 * fault shows up here and must be deliberate (regenerate with UPDATE_GOLDEN=1).
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadSimulatorConfig } from './cli.ts';
import { LabelRecorder } from './labels.ts';
import { PlantModel } from './model.ts';
import { StreamOutput } from './outputs.ts';
import { SimulationRunner } from './runner.ts';
import { Writable } from 'node:stream';

const root = new URL('./testcases/', import.meta.url).pathname;
const cases = readdirSync(root).filter((d) => existsSync(join(root, d, 'config.yaml')));

async function render(dir: string): Promise<string> {
  const cfg = loadSimulatorConfig(join(dir, 'config.yaml'), () => {});
  const startMs = Date.parse(cfg.clock.start);
  const model = new PlantModel(cfg, { startMs });
  let text = '';
  const sink = new Writable({
    write(chunk, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  const output = new StreamOutput(cfg.output.mqtt, sink);
  const labels = new LabelRecorder();
  await new SimulationRunner({ model, output, labels, speed: 0, tickMs: 100, startMs, endMs: startMs + cfg.clock.durationS! * 1000 }).run();
  return text + labels.labels.map((l) => `label ${JSON.stringify(l)}\n`).join('');
}

describe('simulators > testcases (golden)', () => {
  it('has cases', () => expect(cases.length).toBeGreaterThan(0));
  for (const c of cases) {
    it(c, async () => {
      const dir = join(root, c);
      const got = await render(dir);
      const file = join(dir, 'expected.out');
      if (process.env.UPDATE_GOLDEN === '1' || !existsSync(file)) writeFileSync(file, got);
      expect(got).toBe(readFileSync(file, 'utf8'));
    });
  }
});
