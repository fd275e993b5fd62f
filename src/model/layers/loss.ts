import { kernels, mat } from '../../backend/index.js';
import type { Arena } from '../../tensor/arena.js';

export interface LossSums {
  /** Σ over rows of cross-entropy. */
  ce: number;
  /** Σ over rows of logsumexp(logits)². */
  lse2: number;
}

/**
 * Cross-entropy with the z-loss (logsumexp²) over rows whose targets are all
 * valid; the caller drops padding rows before the output projection.
 */
export class LossLayer {
  private logits: Float32Array = new Float32Array(0);
  private lse: Float32Array = new Float32Array(0);
  private targets: Int32Array = new Int32Array(0);
  private rows = 0;

  constructor(readonly vocab: number) {}

  forward(arena: Arena, logits: Float32Array, targets: Int32Array, rows: number): LossSums {
    const losses = arena.alloc([rows]).data;
    this.lse = arena.alloc([rows]).data;
    this.logits = logits;
    this.targets = targets;
    this.rows = rows;
    if (rows === 0) return { ce: 0, lse2: 0 };
    kernels().crossEntropy(mat(logits, rows, this.vocab), targets, losses, this.lse);
    let ce = 0;
    let lse2 = 0;
    for (let r = 0; r < rows; r++) {
      ce += losses[r]!;
      lse2 += this.lse[r]! * this.lse[r]!;
    }
    return { ce, lse2 };
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
