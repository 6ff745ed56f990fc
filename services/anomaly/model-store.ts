/**
 * Versioned model checkpoints on disk, one folder per model version:
 *
 *   <dir>/<version>/model.json     detector snapshot; big numeric arrays replaced by references into
 *                                  weights.bin, described by a tfjs-style `weightsManifest`
 *   <dir>/<version>/weights.bin    the arrays, little-endian, in manifest order (tfjs convention)
 *   <dir>/<version>/metadata.json  what it was trained on (topic, partitions, offset range, event
 *                                  time span), when, score quality, lineage
 *   <dir>/CURRENT                  the version the live service runs
 *
 * Arrays whose values all survive float32 are stored as float32 (tfjs's weight dtype); others as
 * `float64` (our extension) so a restored detector scores exactly as the saved one. A checkpoint is
 * written into a temporary folder and renamed into place, so a crash never leaves half a model.
 */
import { mkdir, readFile, readdir, rename, rm, writeFile, stat } from 'node:fs/promises';
import { join, basename, dirname } from 'node:path';
import { PlatformError } from '../../common/errors.ts';
import type { DetectorSnapshotLike } from './detector-port.ts';
import type { LedgerState, ScoreQuality, TrainingInfo } from './ledger.ts';

export const MODEL_FORMAT = 'plantwatch-anomaly-detector';
export const MODEL_FORMAT_VERSION = 1;
/** Arrays shorter than this stay inline in model.json (not worth a manifest entry). */
const MIN_EXTRACTED_LENGTH = 256;
const VERSION_RE = /^[A-Za-z0-9_.-]{1,128}$/;

export type ModelOrigin = 'fresh' | 'restored' | 'pretrained' | 'rescore' | 'retrain';

export interface ModelMetadata {
  modelVersion: string;
  origin: ModelOrigin;
  /** The version this one started from (restored/pre-trained checkpoints), if any. */
  parent: string | null;
  createdAt: number;
  checkpointedAt: number;
  checkpoints: number;
  streams: number;
  stateBytes: number;
  training: TrainingInfo;
  quality: ScoreQuality;
  /** Ledger counters, so a restored model keeps accumulating the same statistics. */
  ledger: LedgerState;
  /** Free-form details (detector config, tfjs backend, rescore job). */
  details: Record<string, unknown>;
}

interface WeightEntry {
  name: string;
  shape: number[];
  dtype: 'float32' | 'float64' | 'int32';
  /** When the snapshot held a typed array rather than a plain array. */
  typedArray?: 'Float32Array' | 'Float64Array' | 'Int32Array';
}

interface ModelJson {
  format: string;
  formatVersion: number;
  modelVersion: string;
  generatedBy: string;
  snapshot: unknown;
  weightsManifest: { paths: string[]; weights: WeightEntry[] }[];
}

export interface LoadedModel {
  /** The version the checkpoint was saved as. */
  modelVersion: string;
  snapshot: DetectorSnapshotLike;
  metadata: ModelMetadata | null;
  path: string;
}

export function assertVersionName(version: string): void {
  if (!VERSION_RE.test(version)) {
    throw new PlatformError('ANOMALY_MODEL_VERSION_INVALID', `model version "${version}" must be 1-128 of A-Z a-z 0-9 _ . -`, {
      retriable: false,
      context: { version },
    });
  }
}

const REF = '$weights';

/** Splits big numeric arrays out of a JSON-serialisable value. */
export function extractWeights(value: unknown): { json: unknown; entries: WeightEntry[]; buffers: Buffer[] } {
  const entries: WeightEntry[] = [];
  const buffers: Buffer[] = [];
  const add = (name: string, values: ArrayLike<number>, typedArray?: WeightEntry['typedArray']) => {
    let dtype: WeightEntry['dtype'];
    let buf: Buffer;
    if (typedArray === 'Int32Array' || (typedArray === undefined && allInt32(values))) {
      dtype = 'int32';
      buf = Buffer.from(Int32Array.from(values).buffer);
    } else if (typedArray === 'Float32Array' || (typedArray === undefined && allFloat32(values))) {
      dtype = 'float32';
      buf = Buffer.from(Float32Array.from(values).buffer);
    } else {
      dtype = 'float64';
      buf = Buffer.from(Float64Array.from(values).buffer);
    }
    const entry: WeightEntry = { name, shape: [values.length], dtype };
    if (typedArray) entry.typedArray = typedArray;
    entries.push(entry);
    buffers.push(buf);
    return { [REF]: name };
  };
  const walk = (v: unknown, path: string): unknown => {
    if (v instanceof Float32Array) return add(path, v, 'Float32Array');
    if (v instanceof Float64Array) return add(path, v, 'Float64Array');
    if (v instanceof Int32Array) return add(path, v, 'Int32Array');
    if (Array.isArray(v)) {
      if (v.length >= MIN_EXTRACTED_LENGTH && v.every((x) => typeof x === 'number')) return add(path, v as number[]);
      return v.map((x, i) => walk(x, `${path}/${i}`));
    }
    if (v !== null && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[k] = walk(x, `${path}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`);
      return out;
    }
    return v;
  };
  return { json: walk(value, ''), entries, buffers };
}

export function insertWeights(json: unknown, entries: WeightEntry[], data: Buffer): unknown {
  const byName = new Map<string, unknown>();
  let offset = 0;
  for (const e of entries) {
    const n = e.shape.reduce((a, b) => a * b, 1);
    const bytes = e.dtype === 'float64' ? 8 : 4;
    const len = n * bytes;
    if (offset + len > data.length) {
      throw new PlatformError('ANOMALY_MODEL_CORRUPT', `weights.bin is shorter than its manifest (entry ${e.name})`, { retriable: false });
    }
    // Copy: typed array views need aligned offsets.
    const slice = new Uint8Array(data.subarray(offset, offset + len)).buffer;
    const typed = e.dtype === 'float64' ? new Float64Array(slice) : e.dtype === 'float32' ? new Float32Array(slice) : new Int32Array(slice);
    byName.set(e.name, e.typedArray ? typed : Array.from(typed));
    offset += len;
  }
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === 'object') {
      const keys = Object.keys(v);
      if (keys.length === 1 && keys[0] === REF) {
        const name = (v as Record<string, string>)[REF];
        if (!byName.has(name)) throw new PlatformError('ANOMALY_MODEL_CORRUPT', `model.json references unknown weight ${name}`, { retriable: false });
        return byName.get(name);
      }
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[k] = walk(x);
      return out;
    }
    return v;
  };
  return walk(json);
}

function allFloat32(values: ArrayLike<number>): boolean {
  for (let i = 0; i < values.length; i++) if (Math.fround(values[i]) !== values[i] && !Number.isNaN(values[i])) return false;
  return true;
}

function allInt32(values: ArrayLike<number>): boolean {
  for (let i = 0; i < values.length; i++) if ((values[i] | 0) !== values[i] || Object.is(values[i], -0)) return false;
  return true;
}

export class ModelStore {
  constructor(readonly dir: string) {}

  versionDir(version: string): string {
    assertVersionName(version);
    return join(this.dir, version);
  }

  async save(snapshot: DetectorSnapshotLike, metadata: ModelMetadata): Promise<string> {
    const version = metadata.modelVersion;
    const final = this.versionDir(version);
    await mkdir(this.dir, { recursive: true });
    const tmp = join(this.dir, `.${version}.tmp-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`);
    await mkdir(tmp);
    try {
      const { json, entries, buffers } = extractWeights(snapshot);
      const model: ModelJson = {
        format: MODEL_FORMAT,
        formatVersion: MODEL_FORMAT_VERSION,
        modelVersion: version,
        generatedBy: 'plantwatch anomaly service',
        snapshot: json,
        weightsManifest: [{ paths: ['weights.bin'], weights: entries }],
      };
      await writeFile(join(tmp, 'weights.bin'), Buffer.concat(buffers));
      await writeFile(join(tmp, 'model.json'), JSON.stringify(model));
      await writeFile(join(tmp, 'metadata.json'), JSON.stringify(metadata, null, 2));
      // Swap folders: the old one moves aside first, so a crash leaves either old or new, and load()
      // falls back to the aside copy.
      const aside = `${final}.old`;
      await rm(aside, { recursive: true, force: true });
      if (await exists(final)) await rename(final, aside);
      await rename(tmp, final);
      await rm(aside, { recursive: true, force: true });
      return final;
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw new PlatformError('ANOMALY_CHECKPOINT_FAILED', `writing checkpoint ${version} failed: ${(err as Error).message}`, {
        retriable: true,
        cause: err,
        context: { version, dir: this.dir },
      });
    }
  }

  /** Loads a version of this store, or a checkpoint folder / model.json anywhere (pre-trained models). */
  async load(versionOrPath: string): Promise<LoadedModel> {
    let folder: string;
    if (VERSION_RE.test(versionOrPath) && !versionOrPath.endsWith('.json')) {
      folder = join(this.dir, versionOrPath);
      if (!(await exists(folder)) && (await exists(`${folder}.old`))) folder = `${folder}.old`;
    } else {
      folder = basename(versionOrPath) === 'model.json' ? dirname(versionOrPath) : versionOrPath;
    }
    let model: ModelJson;
    try {
      model = JSON.parse(await readFile(join(folder, 'model.json'), 'utf8')) as ModelJson;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new PlatformError(
        code === 'ENOENT' ? 'ANOMALY_MODEL_NOT_FOUND' : 'ANOMALY_MODEL_CORRUPT',
        `cannot read model ${join(folder, 'model.json')}: ${code ?? (err as Error).message}`,
        { retriable: false, cause: err, context: { path: folder } },
      );
    }
    if (model.format !== MODEL_FORMAT || model.formatVersion !== MODEL_FORMAT_VERSION) {
      throw new PlatformError('ANOMALY_MODEL_CORRUPT', `${folder}/model.json is not a ${MODEL_FORMAT} v${MODEL_FORMAT_VERSION} model`, {
        retriable: false,
        context: { path: folder, format: model.format, formatVersion: model.formatVersion },
      });
    }
    const manifest = model.weightsManifest?.[0] ?? { paths: [], weights: [] };
    const data = manifest.weights.length > 0 ? await readFile(join(folder, manifest.paths[0] ?? 'weights.bin')) : Buffer.alloc(0);
    const snapshot = insertWeights(model.snapshot, manifest.weights, data) as DetectorSnapshotLike;
    let metadata: ModelMetadata | null = null;
    try {
      metadata = JSON.parse(await readFile(join(folder, 'metadata.json'), 'utf8')) as ModelMetadata;
    } catch {
      // A pre-trained model may come without metadata; the snapshot is what matters.
    }
    return { modelVersion: model.modelVersion, snapshot, metadata, path: folder };
  }

  async list(): Promise<ModelMetadata[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return [];
    }
    const out: ModelMetadata[] = [];
    for (const name of names) {
      if (name.startsWith('.') || name === 'CURRENT' || name.endsWith('.old')) continue;
      try {
        out.push(JSON.parse(await readFile(join(this.dir, name, 'metadata.json'), 'utf8')) as ModelMetadata);
      } catch {
        // Not a checkpoint folder.
      }
    }
    return out.sort((a, b) => a.checkpointedAt - b.checkpointedAt);
  }

  async current(): Promise<string | null> {
    try {
      const v = (await readFile(join(this.dir, 'CURRENT'), 'utf8')).trim();
      return VERSION_RE.test(v) ? v : null;
    } catch {
      return null;
    }
  }

  async setCurrent(version: string): Promise<void> {
    assertVersionName(version);
    await mkdir(this.dir, { recursive: true });
    const tmp = join(this.dir, `.CURRENT.${process.pid}.${Math.random().toString(36).slice(2, 8)}`);
    await writeFile(tmp, `${version}\n`);
    await rename(tmp, join(this.dir, 'CURRENT'));
  }

  /** Moves a version that cannot be restored aside (hidden from list/prune), so it is kept for inspection. */
  async quarantine(version: string): Promise<string> {
    const target = join(this.dir, `.damaged-${version}-${Date.now()}`);
    await rename(this.versionDir(version), target);
    return target;
  }

  /** Deletes the oldest versions beyond `keep`, never one in `protect`. */
  async prune(keep: number, protect: string[]): Promise<string[]> {
    const all = await this.list();
    const removable = all.filter((m) => !protect.includes(m.modelVersion));
    const excess = removable.slice(0, Math.max(0, removable.length - keep));
    for (const m of excess) await rm(this.versionDir(m.modelVersion), { recursive: true, force: true });
    return excess.map((m) => m.modelVersion);
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}
