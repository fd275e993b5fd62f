import { kernels, mat } from '../../backend/index.js';
import type { Arena } from '../../tensor/arena.js';

export interface LossSums {
  /** Σ over target rows of cross-entropy. */
  ce: number;
  /** Σ over target rows of logsumexp(logits)². */
  lse2: number;
  /** Rows whose target is >= 0 (the rest are padding). */
  count: number;
}

/**
 * Cross-entropy with the z-loss (logsumexp²) over the rows whose target is >= 0; a padding row
 * (target < 0) has no loss and no gradient. The sums are a kernel too (lossSums).
 */
export class LossLayer {
  private logits: Float32Array = new Float32Array(0);
  private lse: Float32Array = new Float32Array(0);
  private targets: Int32Array = new Int32Array(0);
  private rows = 0;
  private readonly sums = new Float64Array(3);

  constructor(readonly vocab: number) {}

  forward(arena: Arena, logits: Float32Array, targets: Int32Array, rows: number): LossSums {
    const losses = arena.alloc([rows]).data;
    this.lse = arena.alloc([rows]).data;
    this.logits = logits;
    this.targets = targets;
    this.rows = rows;
    if (rows === 0) return { ce: 0, lse2: 0, count: 0 };
    const K = kernels();
    K.crossEntropy(mat(logits, rows, this.vocab), targets, losses, this.lse);
    K.lossSums(losses, this.lse, targets, this.sums);
    return { ce: this.sums[0]!, lse2: this.sums[1]!, count: this.sums[2]! };
  }

  /**
   * Gradient of ceScale·Σce + zScale·Σlse² wrt the logits, written over the
   * logits buffer of the forward pass (which is returned).
   */
  backward(ceScale: number, zScale: number): Float32Array {
    if (this.rows > 0) {
      const logits = mat(this.logits, this.rows, this.vocab);
      kernels().crossEntropyBackward(logits, this.lse, this.targets, ceScale, zScale, logits);
    }
    return this.logits;
  }
}
