import { kernels, mat, transpose } from '../../backend/index.js';
import type { Arena } from '../../tensor/arena.js';
import { linearForward, linearInputGrad, linearWeightGrad } from './linear.js';

/**
 * T5 relative-position bucket for a query-key distance n = i - j >= 0
 * (unidirectional): exact buckets below buckets/2, then logarithmic up to
 * maxDistance, everything farther in the last bucket.
 */
export function relativeBucket(n: number, buckets: number, maxDistance: number): number {
  if (!Number.isInteger(n) || n < 0) {
    throw new Error(`relativeBucket: distance must be an integer >= 0, got ${n}`);
  }
  const maxExact = Math.floor(buckets / 2);
  if (n < maxExact) return n;
  const large =
    maxExact + Math.floor((Math.log(n / maxExact) / Math.log(maxDistance / maxExact)) * (buckets - maxExact));
  return Math.min(buckets - 1, large);
}

/**
 * Row blocks [r0, r1) of the T x T causal products. Rows of block [r0, r1) attend only to keys
 * j < r1, and keys of that block are attended only by queries i >= r0, so each product runs per
 * block over the part of the triangle it needs (the skipped terms are exact zeros).
 */
function causalBlocks(T: number): [number, number][] {
  const blocks: [number, number][] = [];
  for (let r0 = 0; r0 < T; r0 += CAUSAL_BLOCK_ROWS) blocks.push([r0, Math.min(T, r0 + CAUSAL_BLOCK_ROWS)]);
  return blocks;
}

/**
 * Rows per causal block. Smaller blocks skip more of the masked triangle but pay more per-call and
 * packing overhead; at T = 128, dHead = 32 two blocks were fastest (about 12% off the six products).
 */
const CAUSAL_BLOCK_ROWS = 64;

export interface AttentionDims {
  dModel: number;
  heads: number;
  dHead: number;
  relBuckets: number;
  relMaxDistance: number;
}

export interface AttentionWeights {
  wq: Float32Array;
  wk: Float32Array;
  wv: Float32Array;
  wo: Float32Array;
  /** [relBuckets, heads]. */
  relBias: Float32Array;
}

/**
 * Causal multi-head self-attention with a learned T5 relative-position bias:
 * score[h,i,j] = q_i·k_j / sqrt(dHead) + relBias[bucket(i-j), h].
 * Rows are tokens b·T + t; q/k/v are [rows, heads·dHead] with head h in columns h·dHead...
 */
export class AttentionLayer {
  private a: Float32Array = new Float32Array(0);
  private q: Float32Array = new Float32Array(0);
  private k: Float32Array = new Float32Array(0);
  private v: Float32Array = new Float32Array(0);
  /** Attention probabilities [batch, heads, T, T], zero above the diagonal. */
  private probs: Float32Array = new Float32Array(0);
  private o: Float32Array = new Float32Array(0);
  private batch = 0;
  private seqLen = 0;
  private bucketsOf: Int32Array = new Int32Array(0);
  private bucketsLen = -1;

  constructor(readonly dims: AttentionDims) {}

  /** bucket(i - j) for i, j < T (j > i unused), cached per sequence length. */
  private bucketTable(T: number): Int32Array {
    if (this.bucketsLen !== T) {
      const { relBuckets, relMaxDistance } = this.dims;
      const table = new Int32Array(T * T);
      for (let i = 0; i < T; i++) {
        for (let j = 0; j <= i; j++) table[i * T + j] = relativeBucket(i - j, relBuckets, relMaxDistance);
      }
      this.bucketsOf = table;
      this.bucketsLen = T;
    }
    return this.bucketsOf;
  }

  /** out += Attention(a) (adds into the residual stream). `scratch` holds what backward does not need. */
  forward(
    arena: Arena,
    scratch: Arena,
    a: Float32Array,
    w: AttentionWeights,
    batch: number,
    seqLen: number,
    out: Float32Array,
  ): void {
    const { dModel: D, heads: H, dHead: Dh } = this.dims;
    const T = seqLen;
    const N = batch * T;
    const HD = H * Dh;
    const K = kernels();
    this.a = a;
    this.batch = batch;
    this.seqLen = T;
    this.q = arena.alloc([N, HD]).data;
    this.k = arena.alloc([N, HD]).data;
    this.v = arena.alloc([N, HD]).data;
    this.probs = arena.alloc([batch, H, T, T]).data;
    this.o = arena.alloc([N, HD]).data;
    linearForward(a, w.wq, N, D, HD, this.q);
    linearForward(a, w.wk, N, D, HD, this.k);
    linearForward(a, w.wv, N, D, HD, this.v);

    // bias[h, i, j] = relBias[bucket(i - j), h], expanded once per forward.
    // Row i, j = 0..i, is rev[T-1-i .. T-1] with rev[k] = relBias[bucket(T-1-k), h]: one copy per row.
    const table = this.bucketTable(T);
    const bias = scratch.alloc([H, T, T]).data;
    const rev = scratch.alloc([T]).data;
    for (let h = 0; h < H; h++) {
      const ob = h * T * T;
      for (let k = 0; k < T; k++) rev[k] = w.relBias[table[(T - 1 - k) * T]! * H + h]!;
      for (let i = 0; i < T; i++) bias.set(rev.subarray(T - 1 - i), ob + i * T);
    }

    const TT = T * T;
    const blocks = causalBlocks(T);
    for (let b = 0; b < batch; b++) {
      const rows = b * T * HD;
      for (const [r0, r1] of blocks) {
        // scores[b,h] rows r0..r1-1, keys 0..r1-1 = Q_bh·K_bhᵀ, one strided batch over heads.
        K.sgemmStridedBatched(
          H,
          1,
          mat(this.q, r1 - r0, Dh, rows + r0 * HD, HD),
          Dh,
          transpose(mat(this.k, r1, Dh, rows, HD)),
          Dh,
          0,
          mat(this.probs, r1 - r0, r1, b * H * TT + r0 * T, T),
          TT,
        );
      }
    }
    // Reads only j <= i of the scores and zeroes the rest.
    K.causalSoftmax(mat(this.probs, batch * H * T, T), mat(bias, H * T, T), H, 1 / Math.sqrt(Dh));
    for (let b = 0; b < batch; b++) {
      const rows = b * T * HD;
      for (const [r0, r1] of blocks) {
        // O_bh rows r0..r1-1 = P_bh (those rows, keys < r1)·V_bh.
        K.sgemmStridedBatched(
          H,
          1,
          mat(this.probs, r1 - r0, r1, b * H * TT + r0 * T, T),
          TT,
          mat(this.v, r1, Dh, rows, HD),
          Dh,
          0,
          mat(this.o, r1 - r0, Dh, rows + r0 * HD, HD),
          Dh,
        );
      }
    }
    linearForward(this.o, w.wo, N, HD, D, out, 1);
  }

  /** From dOut (grad of the sublayer output) writes da and accumulates the weight grads. */
  backward(
    scratch: Arena,
    w: AttentionWeights,
    g: AttentionWeights,
    dOut: Float32Array,
    da: Float32Array,
  ): void {
    const { dModel: D, heads: H, dHead: Dh } = this.dims;
    const T = this.seqLen;
    const batch = this.batch;
    const N = batch * T;
    const HD = H * Dh;
    const TT = T * T;
    const K = kernels();
    const dO = scratch.alloc([N, HD]).data;
    const dQ = scratch.alloc([N, HD]).data;
    const dK = scratch.alloc([N, HD]).data;
    const dV = scratch.alloc([N, HD]).data;
    const dS = scratch.alloc([batch, H, T, T]).data;
    K.fill(dS, 0); // entries above the diagonal are never written by the blocked products below
    const blocks = causalBlocks(T);

    linearWeightGrad(this.o, dOut, N, HD, D, g.wo);
    linearInputGrad(dOut, w.wo, N, HD, D, dO);
    for (let b = 0; b < batch; b++) {
      const rows = b * T * HD;
      // dP = dO_bh·V_bhᵀ (rows r0..r1-1, keys < r1; the rest stays 0 from the fill above, as the
      // softmax backward reads whole rows); dV_bh = Pᵀ·dO_bh.
      for (const [r0, r1] of blocks) {
        K.sgemmStridedBatched(
          H,
          1,
          mat(dO, r1 - r0, Dh, rows + r0 * HD, HD),
          Dh,
          transpose(mat(this.v, r1, Dh, rows, HD)),
          Dh,
          0,
          mat(dS, r1 - r0, r1, b * H * TT + r0 * T, T),
          TT,
        );
      }
      for (const [r0, r1] of blocks) {
        // dV_bh rows (keys) r0..r1-1 need only queries i >= r0.
        K.sgemmStridedBatched(
          H,
          1,
          transpose(mat(this.probs, T - r0, r1 - r0, b * H * TT + r0 * T + r0, T)),
          TT,
          mat(dO, T - r0, Dh, rows + r0 * HD, HD),
          Dh,
          0,
          mat(dV, r1 - r0, Dh, rows + r0 * HD, HD),
          Dh,
        );
      }
    }
    // Masked entries have P = 0, so the row-softmax backward leaves them at 0.
    const dSm = mat(dS, batch * H * T, T);
    K.softmaxRowsBackward(mat(this.probs, batch * H * T, T), dSm, dSm);

    // The bias enters the scores unscaled: dRelBias[bucket(i-j), h] += Σ_b dS[b,h,i,j].
    // The sum over the batch is a [1,B]·[B, H·T·T] product; the bucket scatter is a kernel.
    const ones = scratch.alloc([batch]).fill(1).data;
    const dBias = scratch.alloc([H, T, T]).data;
    K.sgemm(1, mat(ones, 1, batch), mat(dS, batch, H * TT), 0, mat(dBias, 1, H * TT));
    K.relBiasGrad(mat(dBias, H * T, T), this.bucketTable(T), g.relBias);

    const scale = 1 / Math.sqrt(Dh);
    for (let b = 0; b < batch; b++) {
      const rows = b * T * HD;
      for (const [r0, r1] of blocks) {
        // dQ_bh rows r0..r1-1 = scale·dS (those rows, keys < r1)·K_bh;
        // dK_bh rows r0..r1-1 = scale·dSᵀ (those keys, queries >= r0)·Q_bh.
        K.sgemmStridedBatched(
          H,
          scale,
          mat(dS, r1 - r0, r1, b * H * TT + r0 * T, T),
          TT,
          mat(this.k, r1, Dh, rows, HD),
          Dh,
          0,
          mat(dQ, r1 - r0, Dh, rows + r0 * HD, HD),
          Dh,
        );
        K.sgemmStridedBatched(
          H,
          scale,
          transpose(mat(dS, T - r0, r1 - r0, b * H * TT + r0 * T + r0, T)),
          TT,
          mat(this.q, T - r0, Dh, rows + r0 * HD, HD),
          Dh,
          0,
          mat(dK, r1 - r0, Dh, rows + r0 * HD, HD),
          Dh,
        );
      }
    }
    linearWeightGrad(this.a, dQ, N, D, HD, g.wq);
    linearWeightGrad(this.a, dK, N, D, HD, g.wk);
    linearWeightGrad(this.a, dV, N, D, HD, g.wv);
    linearInputGrad(dQ, w.wq, N, D, HD, da);
    linearInputGrad(dK, w.wk, N, D, HD, da, 1);
    linearInputGrad(dV, w.wv, N, D, HD, da, 1);
  }
}
