/**
 * Message schemas as data. Each API describes its request and response once, with the version
 * range of every field (as Apache Kafka's `clients/src/main/resources/common/message/*.json` do),
 * instead of one hand-written codec per version. `decode`/`encode` walk a schema for one version.
 *
 * Field spec: `{ n: name, t: type, v: 'versions', nullable?: 'versions', d?: default }` where
 * versions are `'3+'`, `'0-5'` or `'7'`. A field outside its versions is skipped on the wire and
 * takes its default when decoding.
 */
import { DecodeError, type Reader, type Writer } from './primitives.ts';

export type Scalar = 'int8' | 'int16' | 'int32' | 'int64' | 'bool' | 'string' | 'bytes' | 'records' | 'uuid';
export type FieldType = Scalar | `[]${Scalar}` | readonly FieldSpec[];

export interface FieldSpec {
  readonly n: string;
  readonly t: FieldType;
  readonly v: string;
  readonly nullable?: string;
  readonly d?: unknown;
}

interface Range {
  min: number;
  max: number;
}

interface CompiledField {
  name: string;
  type: Scalar | 'array' | 'struct-array';
  elem?: Scalar;
  fields?: CompiledField[];
  versions: Range;
  nullable: Range | null;
  def: unknown;
}

export interface Schema {
  readonly fields: CompiledField[];
}

function parseRange(s: string): Range {
  const m = /^(\d+)(\+|-(\d+))?$/.exec(s);
  if (!m) throw new Error(`bad version range ${s}`);
  const min = Number(m[1]);
  if (m[2] === '+') return { min, max: Infinity };
  if (m[3] !== undefined) return { min, max: Number(m[3]) };
  return { min, max: min };
}

const within = (r: Range, v: number): boolean => v >= r.min && v <= r.max;

function zero(type: CompiledField['type']): unknown {
  switch (type) {
    case 'int8':
    case 'int16':
    case 'int32':
    case 'int64':
      return 0;
    case 'bool':
      return false;
    case 'string':
      return '';
    case 'bytes':
    case 'records':
      return null;
    case 'uuid':
      return Buffer.alloc(16);
    default:
      return [];
  }
}

function compile(specs: readonly FieldSpec[]): CompiledField[] {
  return specs.map((f) => {
    let type: CompiledField['type'];
    let elem: Scalar | undefined;
    let fields: CompiledField[] | undefined;
    if (Array.isArray(f.t)) {
      type = 'struct-array';
      fields = compile(f.t as readonly FieldSpec[]);
    } else if ((f.t as string).startsWith('[]')) {
      type = 'array';
      elem = (f.t as string).slice(2) as Scalar;
    } else {
      type = f.t as Scalar;
    }
    return {
      name: f.n,
      type,
      elem,
      fields,
      versions: parseRange(f.v),
      nullable: f.nullable ? parseRange(f.nullable) : null,
      def: f.d !== undefined ? f.d : zero(type),
    };
  });
}

export function schema(fields: readonly FieldSpec[]): Schema {
  return { fields: compile(fields) };
}

function readScalar(r: Reader, t: Scalar, flex: boolean): unknown {
  switch (t) {
    case 'int8':
      return r.int8();
    case 'int16':
      return r.int16();
    case 'int32':
      return r.int32();
    case 'int64':
      return r.int64();
    case 'bool':
      return r.bool();
    case 'string':
      return r.string(flex);
    case 'bytes':
    case 'records':
      return r.bytes(flex);
    case 'uuid':
      return r.uuid();
  }
}

function writeScalar(w: Writer, t: Scalar, flex: boolean, v: unknown): void {
  switch (t) {
    case 'int8':
      w.int8(v as number);
      return;
    case 'int16':
      w.int16(v as number);
      return;
    case 'int32':
      w.int32(v as number);
      return;
    case 'int64':
      w.int64(v as number);
      return;
    case 'bool':
      w.bool(v as boolean);
      return;
    case 'string':
      w.string(v as string | null, flex);
      return;
    case 'bytes':
    case 'records':
      w.bytes(v as Buffer | Buffer[] | null, flex);
      return;
    case 'uuid':
      w.uuid(v as Buffer | null);
      return;
  }
}

function decodeFields(fields: CompiledField[], r: Reader, version: number, flex: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of fields) {
    if (!within(f.versions, version)) {
      out[f.name] = f.def;
      continue;
    }
    let value: unknown;
    if (f.type === 'array' || f.type === 'struct-array') {
      const n = r.arrayLength(flex);
      if (n === null) value = null;
      else {
        const arr = new Array(n);
        for (let i = 0; i < n; i++) arr[i] = f.type === 'array' ? readScalar(r, f.elem!, flex) : decodeFields(f.fields!, r, version, flex);
        value = arr;
      }
    } else value = readScalar(r, f.type, flex);
    if (value === null && !(f.nullable && within(f.nullable, version))) throw new DecodeError(`${f.name} is null in v${version}`);
    out[f.name] = value;
  }
  if (flex) r.skipTags();
  return out;
}

function encodeFields(fields: CompiledField[], w: Writer, version: number, flex: boolean, obj: Record<string, unknown>): void {
  for (const f of fields) {
    if (!within(f.versions, version)) continue;
    let value = obj[f.name];
    if (value === undefined) value = f.def;
    // A null where this version has no null (e.g. JoinGroup protocol_name before v7) goes out as
    // the type's empty value rather than as an invalid -1 length.
    if (value === null && !(f.nullable && within(f.nullable, version))) value = zero(f.type) ?? (f.type === 'bytes' || f.type === 'records' ? Buffer.alloc(0) : null);
    if (f.type === 'array' || f.type === 'struct-array') {
      if (value === null) {
        w.arrayLength(null, flex);
        continue;
      }
      const arr = value as unknown[];
      w.arrayLength(arr.length, flex);
      for (const item of arr) {
        if (f.type === 'array') writeScalar(w, f.elem!, flex, item);
        else encodeFields(f.fields!, w, version, flex, item as Record<string, unknown>);
      }
    } else writeScalar(w, f.type, flex, value);
  }
  if (flex) w.emptyTags();
}

export function decode<T>(s: Schema, r: Reader, version: number, flexible: boolean): T {
  return decodeFields(s.fields, r, version, flexible) as T;
}

export function encode(s: Schema, w: Writer, version: number, flexible: boolean, obj: object): void {
  encodeFields(s.fields, w, version, flexible, obj as Record<string, unknown>);
}
