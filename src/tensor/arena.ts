import { alignedFloat32 } from '../backend/index.js';
import { type Shape, shapeSize, Tensor } from './tensor.js';

const CHUNK_ALIGN = 16; // floats: keep every tensor 64-byte aligned

/**
 * A bump allocator for per-step activations. A training or inference step calls
 * `reset()` and then allocates its temporaries in the same order as last time;
 * once the arena has grown to the step's peak, steps allocate no new storage.
 */
export class Arena {
  private chunks: Float32Array[] = [];
  private chunk = 0;
  private offset = 0;
  private readonly minChunk: number;

  constructor(minChunkFloats = 1 << 20) {
    this.minChunk = minChunkFloats;
  }

  /** Uninitialised tensor (contents are whatever the previous step left). */
  alloc(shape: Shape): Tensor {
    const n = shapeSize(shape);
    const padded = Math.ceil(n / CHUNK_ALIGN) * CHUNK_ALIGN;
    while (this.chunk < this.chunks.length) {
      const c = this.chunks[this.chunk]!;
      if (this.offset + padded <= c.length) {
        const t = new Tensor(c.subarray(this.offset, this.offset + n), shape);
        this.offset += padded;
        return t;
      }
      this.chunk++;
      this.offset = 0;
    }
    const c = alignedFloat32(Math.max(this.minChunk, padded));
    this.chunks.push(c);
    this.chunk = this.chunks.length - 1;
    this.offset = padded;
    return new Tensor(c.subarray(0, n), shape);
  }

  /** Zero-filled tensor. */
  zeros(shape: Shape): Tensor {
    return this.alloc(shape).fill(0);
  }

  /** Release everything allocated since the last reset (storage is kept for reuse). */
  reset(): void {
    this.chunk = 0;
    this.offset = 0;
  }

  /** Floats of storage held. */
  get capacity(): number {
    return this.chunks.reduce((s, c) => s + c.length, 0);
  }
}
