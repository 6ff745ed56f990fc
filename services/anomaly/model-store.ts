/**
 * Versioned model checkpoints on disk, one folder per model version:
 *
 *   <dir>/<version>/model.json     detector snapshot; its numbers moved to weights.bin (big numeric
 *                                  arrays, and per-stream state stored column by column), described
 *                                  by a tfjs-style `weightsManifest`
 *   <dir>/<version>/weights.bin    the arrays, little-endian, in manifest order (tfjs convention)
 *   <dir>/<version>/metadata.json  what it was trained on (topic, partitions, offset range, event
 *                                  time span), when, score quality, lineage
 *   <dir>/CURRENT                  the version the live service runs
 *
 * Arrays whose values all survive float32 are stored as float32 (tfjs's weight dtype); others as
 * `float64` (our extension) so a restored detector scores exactly as the saved one. A checkpoint is
 * written into a temporary folder and renamed into place, so a crash never leaves half a model.
 */
import { mkdir, open, readFile, readdir, rename, rm, writeFile, stat } from 'node:fs/promises';
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
const TABLE = '$table';
/** Arrays of at least this many objects with the same keys are stored column by column. */
const MIN_TABLE_ROWS = 64;

type TypedKind = NonNullable<WeightEntry['typedArray']>;

function typedKind(v: unknown): TypedKind | null {
  if (v instanceof Float32Array) return 'Float32Array';
  if (v instanceof Float64Array) return 'Float64Array';
  if (v instanceof Int32Array) return 'Int32Array';
  return null;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || ArrayBuffer.isView(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function allNumbers(v: readonly unknown[]): v is number[] {
  for (let i = 0; i < v.length; i++) if (typeof v[i] !== 'number') return false;
  return true;
}

const escapeKey = (k: string) => k.replace(/~/g, '~0').replace(/\//g, '~1');

/**
 * Splits the numbers out of a JSON-serialisable value into binary weights:
 * - numeric arrays (and typed arrays) of MIN_EXTRACTED_LENGTH+ values become one entry each;
 * - arrays of MIN_TABLE_ROWS+ objects with the same keys (per-stream state) become a `$table`:
 *   each numeric field is one entry of shape [rows], each field holding equal-length numeric arrays
 *   one entry of shape [rows, length]; other fields stay JSON.
 * This keeps model.json small (no giant JSON string for 100k streams) and every number exact.
 */
export async function extractWeights(value: unknown): Promise<{ json: unknown; entries: WeightEntry[]; buffers: Buffer[] }> {
  const maybeYield = yielder();
  const entries: WeightEntry[] = [];
  const buffers: Buffer[] = [];
  const add = async (name: string, values: ArrayLike<number>, shape: number[], typedArray?: TypedKind): Promise<string> => {
    const dtype: WeightEntry['dtype'] =
      typedArray === 'Int32Array' ? 'int32' : typedArray === 'Float32Array' ? 'float32' : typedArray === 'Float64Array' ? 'float64' : await narrowestDtype(values, maybeYield);
    const out = dtype === 'int32' ? new Int32Array(values.length) : dtype === 'float32' ? new Float32Array(values.length) : new Float64Array(values.length);
    for (let i = 0; i < values.length; i++) {
      out[i] = values[i];
      if ((i & 65535) === 65535) await maybeYield();
    }
    const entry: WeightEntry = { name, shape, dtype };
    if (typedArray) entry.typedArray = typedArray;
    entries.push(entry);
    buffers.push(Buffer.from(out.buffer, out.byteOffset, out.byteLength));
    return name;
  };

  /** Equal-length numeric rows (plain or typed arrays of one kind): their [rows, length] shape. */
  const rowsShape = async (col: unknown[]): Promise<{ length: number; kind: TypedKind | undefined } | null> => {
    const first = col[0];
    const kind = typedKind(first) ?? undefined;
    if (!kind && !Array.isArray(first)) return null;
    const length = (first as ArrayLike<unknown>).length;
    if (length === 0) return null;
    for (let i = 0; i < col.length; i++) {
      const r = col[i];
      if (kind) {
        if (typedKind(r) !== kind || (r as ArrayLike<number>).length !== length) return null;
      } else if (!Array.isArray(r) || r.length !== length || !allNumbers(r)) return null;
      if ((i & 1023) === 1023) await maybeYield();
    }
    return { length, kind };
  };

  const table = async (rows: unknown[], path: string): Promise<unknown> => {
    if (!isPlainObject(rows[0])) return null;
    const keys = Object.keys(rows[0]);
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i];
      if (!isPlainObject(r)) return null;
      if (Object.keys(r).length !== keys.length) return null;
      for (const k of keys) if (!Object.hasOwn(r, k)) return null;
      if ((i & 1023) === 1023) await maybeYield();
    }
    const columns: Record<string, unknown> = {};
    for (const key of keys) {
      await maybeYield();
      const colPath = `${path}/*/${escapeKey(key)}`;
      const col = rows.map((r) => (r as Record<string, unknown>)[key]);
      // JSON would turn an undefined field into null inside a column array: keep such arrays as they are.
      if (col.includes(undefined)) return null;
      if (allNumbers(col)) {
        columns[key] = { [REF]: await add(colPath, col, [rows.length]) };
        continue;
      }
      const shape = await rowsShape(col);
      if (shape) {
        const flat = new Float64Array(rows.length * shape.length);
        for (let i = 0; i < col.length; i++) {
          flat.set(col[i] as ArrayLike<number>, i * shape.length);
          if ((i & 1023) === 1023) await maybeYield();
        }
        columns[key] = { [REF]: await add(colPath, flat, [rows.length, shape.length], shape.kind), rows: true };
        continue;
      }
      columns[key] = await walk(col, colPath);
    }
    return { [TABLE]: { length: rows.length, keys, columns } };
  };

  const walk = async (v: unknown, path: string): Promise<unknown> => {
    const kind = typedKind(v);
    if (kind) return { [REF]: await add(path, v as ArrayLike<number>, [(v as ArrayLike<number>).length], kind) };
    if (Array.isArray(v)) {
      if (v.length >= MIN_EXTRACTED_LENGTH && allNumbers(v)) return { [REF]: await add(path, v, [v.length]) };
      if (v.length >= MIN_TABLE_ROWS) {
        const t = await table(v, path);
        if (t) return t;
      }
      if (v.every((x) => x === null || typeof x !== 'object')) return v;
      const out: unknown[] = new Array(v.length);
      for (let i = 0; i < v.length; i++) {
        out[i] = await walk(v[i], `${path}/${i}`);
        if ((i & 255) === 255) await maybeYield();
      }
      return out;
    }
    if (v !== null && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[k] = await walk(x, `${path}/${escapeKey(k)}`);
      return out;
    }
    return v;
  };
  return { json: await walk(value, ''), entries, buffers };
}

/**
 * Returns a function that gives the event loop a turn when the caller has held it for a while, so
 * converting a 100k-stream snapshot does not starve Kafka heartbeats, fetches and produces.
 */
function yielder(sliceMs = 20): () => Promise<void> {
  let since = performance.now();
  return async () => {
    if (performance.now() - since < sliceMs) return;
    await new Promise((r) => setImmediate(r));
    since = performance.now();
  };
}

const DTYPE_BYTES: Record<WeightEntry['dtype'], number> = { float32: 4, float64: 8, int32: 4 };

export async function insertWeights(json: unknown, entries: WeightEntry[], data: Buffer): Promise<unknown> {
  const maybeYield = yielder();
  const byName = new Map<string, { entry: WeightEntry; values: Float32Array | Float64Array | Int32Array }>();
  let offset = 0;
  for (const e of entries) {
    const len = e.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[e.dtype];
    if (offset + len > data.length) {
      throw new PlatformError('ANOMALY_MODEL_CORRUPT', `weights.bin is shorter than its manifest (entry ${e.name})`, { retriable: false });
    }
    // Copy: typed array views need aligned offsets.
    const slice = new Uint8Array(data.subarray(offset, offset + len)).buffer;
    const values = e.dtype === 'float64' ? new Float64Array(slice) : e.dtype === 'float32' ? new Float32Array(slice) : new Int32Array(slice);
    byName.set(e.name, { entry: e, values });
    offset += len;
    await maybeYield();
  }
  const weight = (name: unknown) => {
    const w = byName.get(String(name));
    if (!w) throw new PlatformError('ANOMALY_MODEL_CORRUPT', `model.json references unknown weight ${String(name)}`, { retriable: false });
    return w;
  };
  const asKind = (values: ArrayLike<number>, kind: TypedKind): Float32Array | Float64Array | Int32Array =>
    kind === 'Float32Array' ? Float32Array.from(values) : kind === 'Float64Array' ? Float64Array.from(values) : Int32Array.from(values);
  const walk = async (v: unknown): Promise<unknown> => {
    if (Array.isArray(v)) {
      if (v.every((x) => x === null || typeof x !== 'object')) return v;
      const out: unknown[] = new Array(v.length);
      for (let i = 0; i < v.length; i++) {
        out[i] = await walk(v[i]);
        if ((i & 255) === 255) await maybeYield();
      }
      return out;
    }
    if (v === null || typeof v !== 'object') return v;
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length === 1 && keys[0] === REF) {
      const { entry, values } = weight(o[REF]);
      return entry.typedArray ? asKind(values, entry.typedArray) : Array.from(values);
    }
    if (keys.length === 2 && REF in o && o.rows === true) {
      const { entry, values } = weight(o[REF]);
      const [n, len] = entry.shape;
      const rows: unknown[] = new Array(n);
      for (let i = 0; i < n; i++) {
        const row = values.subarray(i * len, (i + 1) * len);
        rows[i] = entry.typedArray ? asKind(row, entry.typedArray) : Array.from(row);
        if ((i & 1023) === 1023) await maybeYield();
      }
      return rows;
    }
    if (keys.length === 1 && keys[0] === TABLE) {
      const t = o[TABLE] as { length: number; keys: string[]; columns: Record<string, unknown> };
      const cols: unknown[][] = [];
      for (const k of t.keys) {
        const col = (await walk(t.columns[k])) as unknown[];
        if (!Array.isArray(col) || col.length !== t.length) {
          throw new PlatformError('ANOMALY_MODEL_CORRUPT', `table column ${k} has ${Array.isArray(col) ? col.length : 'no'} rows, expected ${t.length}`, { retriable: false });
        }
        cols.push(col);
      }
      const rows: Record<string, unknown>[] = new Array(t.length);
      for (let i = 0; i < t.length; i++) {
        const row: Record<string, unknown> = {};
        for (let c = 0; c < t.keys.length; c++) row[t.keys[c]] = cols[c][i];
        rows[i] = row;
        if ((i & 1023) === 1023) await maybeYield();
      }
      return rows;
    }
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(o)) out[k] = await walk(x);
    return out;
  };
  return walk(json);
}

/** int32 if every value is one, else float32 if every value survives float32, else float64. */
async function narrowestDtype(values: ArrayLike<number>, maybeYield: () => Promise<void>): Promise<WeightEntry['dtype']> {
  let int = true;
  let f32 = true;
  for (let i = 0; i < values.length && (int || f32); i++) {
    const x = values[i];
    if (int && ((x | 0) !== x || Object.is(x, -0))) int = false;
    if (f32 && Math.fround(x) !== x && !Number.isNaN(x)) f32 = false;
    if ((i & 65535) === 65535) await maybeYield();
  }
  return int ? 'int32' : f32 ? 'float32' : 'float64';
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
      const { json, entries, buffers } = await extractWeights(snapshot);
      const model: ModelJson = {
        format: MODEL_FORMAT,
        formatVersion: MODEL_FORMAT_VERSION,
        modelVersion: version,
        generatedBy: 'plantwatch anomaly service',
        snapshot: json,
        weightsManifest: [{ paths: ['weights.bin'], weights: entries }],
      };
      // Written piece by piece: no second copy of all weights in memory, and the event loop gets
      // a turn between pieces (consumer heartbeats, scoring go on during a big checkpoint).
      const fh = await open(join(tmp, 'weights.bin'), 'w');
      try {
        for (const b of buffers) await fh.write(b);
      } finally {
        await fh.close();
      }
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
    const snapshot = (await insertWeights(model.snapshot, manifest.weights, data)) as DetectorSnapshotLike;
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
