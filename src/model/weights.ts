/**
 * All of a model's parameters in one buffer, and its gradients in another of the same layout.
 *
 * The layout puts every tensor of paramSpecs(config) in checkpoint order, each starting on a 64-byte
 * boundary (a multiple of 16 floats from the buffer's aligned start), so any tensor can be handed to a
 * kernel as is and one pass over the buffer covers the whole model: the gradient norm, the finite check,
 * clipping, an all-reduce between processes. Named views (`get(name)`, a Tensor whose `.data` is a
 * Float32Array view) keep the checkpoint names.
 *
 * `Weights` are read-only while a forward pass runs, so many workspaces (and worker threads, when the
 * buffer is a SharedArrayBuffer) can share one. `Grads` are written by backward (accumulated: zero them
 * first) and read by the optimiser.
 */
import { alignedFloat32, kernels, loadNative } from '../backend/index.js';
import { type Shape, Tensor } from '../tensor/tensor.js';
import type { GlamConfig } from './config.js';
import { checkTensorSet, type ExpertRange, type ParamSpec, type Params, paramSpecs } from './params.js';

const ALIGN_FLOATS = 16;

export interface ParamSlot {
  spec: ParamSpec;
  /** First float of the tensor in the buffer. */
  offset: number;
  size: number;
}

/** Where each parameter lives in a flat buffer. */
export class ParamLayout {
  readonly specs: readonly ParamSpec[];
  readonly slots: readonly ParamSlot[];
  /** Floats of the buffer, padding included. */
  readonly size: number;
  private readonly byName: Map<string, ParamSlot>;

  constructor(specs: readonly ParamSpec[]) {
    const slots: ParamSlot[] = [];
    let offset = 0;
    for (const spec of specs) {
      const size = spec.shape.reduce((a, b) => a * b, 1);
      slots.push({ spec, offset, size });
      offset += Math.ceil(size / ALIGN_FLOATS) * ALIGN_FLOATS;
    }
    this.specs = specs;
    this.slots = slots;
    this.size = offset;
    this.byName = new Map(slots.map((s) => [s.spec.name, s]));
    if (this.byName.size !== slots.length) throw new Error('ParamLayout: a parameter name appears twice');
  }

  /** The layout of a config's parameters; with `experts`, of a process holding only those experts. */
  static of(cfg: GlamConfig, experts?: ExpertRange): ParamLayout {
    return new ParamLayout(paramSpecs(cfg, experts));
  }

  slot(name: string): ParamSlot | undefined {
    return this.byName.get(name);
  }

  /** Floats of the parameters themselves (no padding). */
  get paramCount(): number {
    return this.slots.reduce((s, p) => s + p.size, 0);
  }
}

export interface BufferOptions {
  /** Back the buffer with a SharedArrayBuffer, so worker threads can map the same memory. */
  shared?: boolean;
}

/** A zeroed Float32Array of n floats starting on a 64-byte boundary, over a SharedArrayBuffer. */
function alignedShared(n: number): Float32Array {
  const buffer = new SharedArrayBuffer(n * 4 + 64);
  const native = process.env.GLAM_BACKEND === 'reference' ? undefined : loadNative();
  if (native === undefined || !native.ok) return new Float32Array(buffer, 0, n);
  const misalign = native.kernels.addon.addressMod64(buffer);
  return new Float32Array(buffer, misalign % 4 === 0 ? (64 - misalign) % 64 : 0, n);
}

/** Named tensor views on one flat buffer: the common part of Weights and Grads. */
export class ParamBuffer implements Params {
  /** Every parameter, in layout order, padding between tensors (zero unless written). */
  readonly data: Float32Array;
  private readonly views: Map<string, Tensor>;

  constructor(
    readonly layout: ParamLayout,
    opts: BufferOptions = {},
  ) {
    this.data = opts.shared ? alignedShared(layout.size) : alignedFloat32(layout.size);
    this.views = new Map(
      layout.slots.map((s) => [
        s.spec.name,
        new Tensor(this.data.subarray(s.offset, s.offset + s.size), s.spec.shape),
      ]),
    );
  }

  /** The named tensor (a view on `data`); throws on a name the layout does not have. */
  get(name: string): Tensor {
    const t = this.views.get(name);
    if (t === undefined) throw new Error(`no parameter '${name}' in this model`);
    return t;
  }

  has(name: string): boolean {
    return this.views.has(name);
  }

  get size(): number {
    return this.views.size;
  }

  keys(): MapIterator<string> {
    return this.views.keys();
  }

  values(): MapIterator<Tensor> {
    return this.views.values();
  }

  entries(): MapIterator<[string, Tensor]> {
    return this.views.entries();
  }

  [Symbol.iterator](): MapIterator<[string, Tensor]> {
    return this.views.entries();
  }

  forEach(fn: (value: Tensor, key: string, map: ReadonlyMap<string, Tensor>) => void): void {
    for (const [k, v] of this.views) fn(v, k, this);
  }

  /** Copies every tensor of `src` (same names and shapes, nothing extra) into this buffer. */
  copyFrom(src: Params, source = 'parameters'): this {
    checkTensorSet(new Map([...src].map(([n, t]) => [n, t.shape])), this.layout.specs, source);
    if (src instanceof ParamBuffer && src.layout.size === this.layout.size) {
      this.data.set(src.data);
      return this;
    }
    for (const s of this.layout.slots) this.get(s.spec.name).data.set(src.get(s.spec.name)!.data);
    return this;
  }
}

/** A model's parameters (under expert parallelism, with only this process's experts: `opts.experts`). */
export class Weights extends ParamBuffer {
  constructor(
    readonly config: GlamConfig,
    opts: BufferOptions & { experts?: ExpertRange } = {},
  ) {
    super(ParamLayout.of(config, opts.experts), opts);
  }

  /** Weights holding a copy of `params` (checked: exactly the config's names and shapes). */
  static from(config: GlamConfig, params: Params, opts: BufferOptions = {}): Weights {
    return new Weights(config, opts).copyFrom(params);
  }

  /** Names and shapes, for whatever needs only those (an optimiser's state). */
  shapes(): Map<string, Shape> {
    return new Map(this.layout.specs.map((s) => [s.name, s.shape]));
  }
}

/** Gradients in the layout of a model's weights. */
export class Grads extends ParamBuffer {
  constructor(layout: ParamLayout, opts: BufferOptions = {}) {
    super(layout, opts);
  }

  static like(weights: ParamBuffer, opts: BufferOptions = {}): Grads {
    return new Grads(weights.layout, opts);
  }

  zero(): void {
    kernels().fill(this.data, 0);
  }

  /**
   * Σ g² over every gradient in one float64 pass (the padding is zero). Float32 squares cannot overflow
   * float64, so the sum is finite exactly when every gradient is: the finite check and the global norm.
   */
  sumSquares(): number {
    return kernels().sumSquares(this.data);
  }

  /** g ← factor·g. */
  scale(factor: number): void {
    const d = this.data;
    for (let i = 0; i < d.length; i++) d[i] = d[i]! * factor;
  }

  /** Scales the gradients so their global norm is at most maxNorm; returns the norm before. */
  clipByGlobalNorm(maxNorm: number): number {
    if (!(maxNorm > 0)) throw new Error(`clipByGlobalNorm: maxNorm must be > 0, got ${maxNorm}`);
    const norm = Math.sqrt(this.sumSquares());
    if (norm > maxNorm) this.scale(maxNorm / norm);
    return norm;
  }
}
