import { kernels, mat } from '../../backend/index.js';
import type { Arena } from '../../tensor/arena.js';

/**
 * RMSNorm(x, s) = x / sqrt(mean(x²) + eps) · s over rows of width `cols`.
 * Keeps its input and 1/rms of the last forward for the backward pass.
 */
export class RmsNormLayer {
  private x: Float32Array = new Float32Array(0);
  private invRms: Float32Array = new Float32Array(0);
  private rows = 0;

  constructor(
    readonly cols: number,
    readonly eps: number,
  ) {}

  /** Returns the normalised rows (an arena buffer); `x` must stay untouched until backward. */
  forward(arena: Arena, x: Float32Array, scale: Float32Array, rows: number): Float32Array {
    const y = arena.alloc([rows, this.cols]).data;
    this.invRms = arena.alloc([rows]).data;
    this.x = x;
    this.rows = rows;
    kernels().rmsnorm(mat(x, rows, this.cols), scale, this.eps, mat(y, rows, this.cols), this.invRms);
    return y;
  }

  /** `dy` holds dL/dy on entry and dL/dx on return (in place); dScale accumulates. */
  backward(scale: Float32Array, dy: Float32Array, dScale: Float32Array): Float32Array {
    const shape = (d: Float32Array) => mat(d, this.rows, this.cols);
    kernels().rmsnormBackward(shape(this.x), scale, this.invRms, shape(dy), shape(dy), dScale);
    return dy;
  }
}
