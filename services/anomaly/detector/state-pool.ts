/**
 * Per-stream numeric state in pooled typed-array chunks: each stream owns one fixed-size slot of
 * doubles and one of float32s, at fixed offsets (see the layout in index.ts). At 100k streams the
 * detector's state used to be ~80 small heap objects per stream (every double field of a class is a
 * boxed HeapNumber, plus arrays and typed arrays of its own), and V8 spent about a third of the main
 * thread marking them; a slot in a shared chunk is no object at all, and a chunk is one ArrayBuffer
 * for `perChunk` streams. Slots of evicted streams are reused (free list).
 */
export class SlotPool {
  readonly f64: Float64Array[] = [];
  readonly f32: Float32Array[] = [];
  private readonly free: number[] = [];
  private next = 0;
  private readonly shift: number;
  private readonly mask: number;

  constructor(
    /** Doubles per slot. */
    readonly f64Size: number,
    /** Float32s per slot. */
    readonly f32Size: number,
    /** Slots per chunk (a power of two). */
    readonly perChunk = 256,
  ) {
    this.shift = Math.log2(perChunk);
    if (!Number.isInteger(this.shift)) throw new Error('perChunk must be a power of two');
    this.mask = perChunk - 1;
  }

  /** A slot, zero-filled. */
  alloc(): number {
    const slot = this.free.length > 0 ? this.free.pop()! : this.next++;
    const c = slot >>> this.shift;
    if (c === this.f64.length) {
      this.f64.push(new Float64Array(this.perChunk * this.f64Size));
      this.f32.push(new Float32Array(this.perChunk * this.f32Size));
    } else {
      const i = slot & this.mask;
      this.f64[c].fill(0, i * this.f64Size, (i + 1) * this.f64Size);
      this.f32[c].fill(0, i * this.f32Size, (i + 1) * this.f32Size);
    }
    return slot;
  }

  release(slot: number): void {
    this.free.push(slot);
  }

  f64Of(slot: number): Float64Array {
    return this.f64[slot >>> this.shift];
  }
  f64Base(slot: number): number {
    return (slot & this.mask) * this.f64Size;
  }
  f32Of(slot: number): Float32Array {
    return this.f32[slot >>> this.shift];
  }
  f32Base(slot: number): number {
    return (slot & this.mask) * this.f32Size;
  }

  /** Slots in use. */
  get used(): number {
    return this.next - this.free.length;
  }

  /** Bytes of every chunk allocated (free slots included: the memory is held). */
  bytes(): number {
    return this.f64.length * this.perChunk * (8 * this.f64Size + 4 * this.f32Size);
  }
}
