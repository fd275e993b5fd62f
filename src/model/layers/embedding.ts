import { kernels, mat, transpose } from '../../backend/index.js';
import type { Arena } from '../../tensor/arena.js';

/**
 * The tied embedding E [vocab, dModel]: the input lookup h = E[x] and the output
 * projection logits = (x / sqrt(dModel))·Eᵀ. Both uses add into the one gradient dE.
 */
export class TiedEmbedding {
  private ids: Int32Array = new Int32Array(0);
  private x: Float32Array = new Float32Array(0);
  private rows = 0;

  constructor(
    readonly vocab: number,
    readonly dModel: number,
  ) {}

  /** h[i] = E[ids[i]] into an arena buffer. Ids must already be validated; they are copied for backward. */
  lookup(arena: Arena, table: Float32Array, ids: Int32Array): Float32Array {
    const h = arena.alloc([ids.length, this.dModel]).data;
    if (this.ids.length !== ids.length) this.ids = new Int32Array(ids.length);
    this.ids.set(ids);
    kernels().gatherRows(mat(table, this.vocab, this.dModel), this.ids, mat(h, ids.length, this.dModel));
    return h;
  }

  /** dE[ids[i]] += dh[i]. */
  lookupBackward(arena: Arena, dh: Float32Array, dTable: Float32Array): void {
    const ones = arena.alloc([this.ids.length]).fill(1).data;
    const n = this.ids.length;
    kernels().scatterAddRows(mat(dh, n, this.dModel), this.ids, ones, mat(dTable, this.vocab, this.dModel));
  }

  /** logits[rows, vocab] = (x / sqrt(dModel))·Eᵀ; keeps x for backward. */
  project(arena: Arena, table: Float32Array, x: Float32Array, rows: number): Float32Array {
    const logits = arena.alloc([rows, this.vocab]).data;
    this.x = x;
    this.rows = rows;
    if (rows > 0) {
      const D = this.dModel;
      const E = mat(table, this.vocab, D);
      kernels().sgemm(1 / Math.sqrt(D), mat(x, rows, D), transpose(E), 0, mat(logits, rows, this.vocab));
    }
    return logits;
  }

  /** dE += (1/sqrt(dModel))·dlogitsᵀ·x; returns dx = (1/sqrt(dModel))·dlogits·E (an arena buffer). */
  projectBackward(
    arena: Arena,
    table: Float32Array,
    dlogits: Float32Array,
    dTable: Float32Array,
  ): Float32Array {
    const D = this.dModel;
    const V = this.vocab;
    const rows = this.rows;
    const dx = arena.alloc([rows, D]).data;
    if (rows > 0) {
      const alpha = 1 / Math.sqrt(D);
      const dl = mat(dlogits, rows, V);
      kernels().sgemm(alpha, transpose(dl), mat(this.x, rows, D), 1, mat(dTable, V, D));
      kernels().sgemm(alpha, dl, mat(table, V, D), 0, mat(dx, rows, D));
    }
    return dx;
  }
}
