/**
 * The kernel op set, declared once: the contract between the compute core (the native C++ core through
 * its Node-API binding, or the pure TypeScript reference) and everything above it. The `Kernels` type,
 * the native wrapper and the check that the addon implements exactly these ops (same names, same
 * arguments, same kinds: native/node/addon.cc exports its table as `ops`) all derive from OPS.
 *
 * Argument kinds: `num` a number, `size` a non-negative integer, `f32`/`i32`/`f64` a typed array (every
 * element from index 0 is the operand; pass a subarray for part of a buffer), `mat` a matrix view (./mat.ts),
 * `bmat` a view on bf16 storage (a Uint16Array, ./bf16.ts).
 * Semantics and argument checks are those of native/core/ops.h; every backend validates its arguments
 * and throws an Error naming the op, the argument and the shapes (the same message on every backend).
 * Results never depend on the thread count, bit for bit.
 */
import type { BMat, Mat } from './mat.js';

export type ArgKind = 'num' | 'size' | 'f32' | 'i32' | 'f64' | 'mat' | 'bmat';

interface KindTypes {
  num: number;
  size: number;
  f32: Float32Array;
  i32: Int32Array;
  f64: Float64Array;
  mat: Mat;
  bmat: BMat;
}

export interface OpSpec {
  /** "name:kind" per argument, in order. */
  readonly args: readonly string[];
  /** What the op returns (void when absent). */
  readonly returns?: 'num';
}

function op<const A extends readonly `${string}:${ArgKind}`[]>(args: A): { args: A; returns?: undefined } {
  return { args };
}

// The argument lists the float32 products share with their bf16-operand twins.
const SGEMM = op(['alpha:num', 'a:mat', 'b:mat', 'beta:num', 'c:mat']);
const SGEMM_STRIDED_BATCHED = op([
  'batch:size',
  'alpha:num',
  'a:mat',
  'strideA:size',
  'b:mat',
  'strideB:size',
  'beta:num',
  'c:mat',
  'strideC:size',
]);
const SGEMM_GROUPED = op([
  'offsets:i32',
  'alpha:num',
  'a:mat',
  'b:mat',
  'strideB:size',
  'beta:num',
  'c:mat',
  'strideC:size',
]);

export const OPS = {
  /** C = alpha·A·B + beta·C; A [m, k], B [k, n], C [m, n] (not transposed, not overlapping A or B). beta = 0 never reads C. */
  sgemm: SGEMM,
  /** `batch` sgemm products; item i's views start i·stride floats after the given ones. */
  sgemmStridedBatched: SGEMM_STRIDED_BATCHED,
  /**
   * Products over ragged groups (the experts of an MoE layer) in one call; group g spans T-indices
   * offsets[g] .. offsets[g+1]-1 (offsets non-decreasing from >= 0, T = offsets[groups]).
   * - a not transposed, a [T, d]: rows of g of C [T, n] (moved g·strideC) = alpha·(rows of g of a)·B_g
   *   + beta·(those rows), B_g = b [d, n] moved g·strideB floats.
   * - a transposed, a [d, T] (the weight gradients): C_g [d, n] = c moved g·strideC = alpha·(columns of g of
   *   a)·(rows of g of B_g) + beta·C_g, B_g = b [T, n] moved g·strideB; an empty group gives beta·C_g; the
   *   C_g must not overlap.
   */
  sgemmGrouped: SGEMM_GROUPED,
  /**
   * sgemm, sgemmStridedBatched and sgemmGrouped with both operands rounded to bf16 (nearest even) and
   * float32 sums (vdpbf16ps on AVX512-BF16): what bf16 mixed-precision training computes with
   * (./bf16.ts: withBf16Products). Same arguments and checks.
   */
  sgemmBf16: SGEMM,
  sgemmStridedBatchedBf16: SGEMM_STRIDED_BATCHED,
  sgemmGroupedBf16: SGEMM_GROUPED,
  /**
   * C = alpha·bf16(A)·W + beta·C: A float32 [m, k] rounded to bf16 (nearest even) for the product, W bf16
   * [k, n] (weights), C [m, n] (not transposed); products of bf16 values (exact), sums in float32
   * (vdpbf16ps on AVX512-BF16). A row of C never depends on m. beta = 0 never reads C.
   */
  gemmBf16: op(['alpha:num', 'a:mat', 'w:bmat', 'beta:num', 'c:mat']),
  /**
   * The experts of an MoE layer at inference: rows of group g (offsets as sgemmGrouped's) of C [T, n] (moved
   * g·strideC) = alpha·bf16(rows of g of A [T, d])·W_g + beta·(those rows), W_g = w [d, n] moved g·strideW.
   * A and C not transposed.
   */
  gemmGroupedBf16: op([
    'offsets:i32',
    'alpha:num',
    'a:mat',
    'w:bmat',
    'strideW:size',
    'beta:num',
    'c:mat',
    'strideC:size',
  ]),
  /** out = a + b over n = a.length (others at least n). out may alias a or b. */
  add: op(['a:f32', 'b:f32', 'out:f32']),
  /** y += alpha·x over x.length. */
  axpy: op(['alpha:num', 'x:f32', 'y:f32']),
  /** out = gelu(x), the tanh approximation. out may alias x. */
  gelu: op(['x:f32', 'out:f32']),
  /** dx = dy·gelu'(x). dx may alias dy. */
  geluBackward: op(['x:f32', 'dy:f32', 'dx:f32']),
  /** out = gelu(a) ⊙ b. */
  gatedGelu: op(['a:f32', 'b:f32', 'out:f32']),
  /** da = dy ⊙ b ⊙ gelu'(a); db = dy ⊙ gelu(a). */
  gatedGeluBackward: op(['a:f32', 'b:f32', 'dy:f32', 'da:f32', 'db:f32']),
  /**
   * Row kernels (matrix operands with contiguous rows: not transposed, ld = cols).
   * out = x / sqrt(mean(x²) + eps)·scale per row; invRms[r] = 1/sqrt(mean(x_r²) + eps).
   */
  rmsnorm: op(['x:mat', 'scale:f32', 'eps:num', 'out:mat', 'invRms:f32']),
  /** Writes dx (may alias dy); ACCUMULATES dscale += Σ_r dy·x·invRms. */
  rmsnormBackward: op(['x:mat', 'scale:f32', 'invRms:f32', 'dy:mat', 'dx:mat', 'dscale:f32']),
  /** Row softmax into out (may alias x). */
  softmaxRows: op(['x:mat', 'out:mat']),
  /** dx = y ⊙ (dy − rowsum(dy ⊙ y)); dx may alias dy. */
  softmaxRowsBackward: op(['y:mat', 'dy:mat', 'dx:mat']),
  /**
   * Causal attention probabilities in place on scores [batchHeads·t, t]: row (bh, i) ←
   * softmax_j(scale·s + bias[h·t + i, j]) for j <= i and 0 for j > i, h = bh mod heads, bias [heads·t, t].
   */
  causalSoftmax: op(['scores:mat', 'bias:mat', 'heads:size', 'scale:num']),
  /**
   * losses[r] = lse[r] − logits[r, targets[r]], lse[r] = logsumexp of row r. Targets in [0, cols), or
   * negative: a padding row, whose loss and lse are 0.
   */
  crossEntropy: op(['logits:mat', 'targets:i32', 'losses:f32', 'lse:f32']),
  /**
   * dlogits (may alias logits) = (ceScale + 2·zScale·lse_r)·softmax_r − ceScale·onehot(targets[r]); a row
   * whose target is negative (padding) gets zeros.
   */
  crossEntropyBackward: op([
    'logits:mat',
    'lse:f32',
    'targets:i32',
    'ceScale:num',
    'zScale:num',
    'dlogits:mat',
  ]),
  /** out row i = src row idx[i] (out.rows = idx.length). */
  gatherRows: op(['src:mat', 'idx:i32', 'out:mat']),
  /** out row idx[i] += weight[i]·src row i (src.rows = idx.length); indices may repeat. */
  scatterAddRows: op(['src:mat', 'idx:i32', 'weight:f32', 'out:mat']),
  /** dot[r] = a row r · b row r (float64 sum), then a row r *= scale[r]: the MoE gate gradient. */
  rowDotScale: op(['a:mat', 'b:mat', 'scale:f32', 'dot:f32']),
  /**
   * Attention of query rows over a paged key/value cache (the inference engine's prefill and decode).
   * q and out [rows, heads·dHead]; kCache and vCache [slots, heads·dHead] (head h in columns h·dHead...);
   * relBias [buckets, heads]. Key j of sequence s lives in slot blockTable[s·maxBlocks + floor(j /
   * blockSize)]·blockSize + j mod blockSize. Row r (sequence rowSeq[r], position i = rowPos[r]) attends
   * to keys 0..i: s_j = scale·(q_r,h · k_j,h) + relBias[bucketOf[i − j], h], out_r,h = Σ_j softmax(s)_j·v_j,h.
   * Every matrix has contiguous rows. A row's result never depends on the other rows (bitwise).
   */
  pagedAttention: op([
    'q:mat',
    'kCache:mat',
    'vCache:mat',
    'blockTable:i32',
    'maxBlocks:size',
    'blockSize:size',
    'rowSeq:i32',
    'rowPos:i32',
    'relBias:mat',
    'bucketOf:i32',
    'scale:num',
    'out:mat',
  ]),
  /**
   * For each row of x: the k largest values in descending order (ties: lower index first; NaN ranks
   * below every number) into idx and val [x.rows, k]. x has contiguous rows.
   */
  topkRows: op(['x:mat', 'k:size', 'idx:i32', 'val:f32']),
  /**
   * Top-2 routing with GShard capacity (docs/model.md "MoE routing and capacity") of p [rows, E] (router
   * probabilities; logits the router logits, for the entropy) in `groups` equal groups, `capacity` slots
   * per expert and group; `coins` holds one uniform per token for policy 'random' (empty: keep every
   * second choice). Writes per token first, second, gate1, gate2 and slot1, slot2 (the assignment's index,
   * -1 when not kept); the kept assignments sorted by expert (offsets [E+1]; token, gate [2·rows]); load
   * (kept) and routed (before capacity) [E]; firstCounts [groups·E]; stats = {entropy (mean), aux (mean over
   * groups), dropped, assignments}. Serial, float64: the same bits as the reference (entropy's log aside).
   */
  top2Route: op([
    'p:mat',
    'logits:mat',
    'groups:size',
    'capacity:size',
    'coins:f64',
    'first:i32',
    'second:i32',
    'gate1:f32',
    'gate2:f32',
    'slot1:i32',
    'slot2:i32',
    'offsets:i32',
    'token:i32',
    'gate:f32',
    'load:i32',
    'routed:i32',
    'firstCounts:i32',
    'stats:f64',
  ]),
  /**
   * The router probabilities' gradient dp [rows, E] for the routing top2Route wrote: the aux loss's
   * auxGrad·E·firstCounts[g, e]/(groups·S²) on every token of group g, plus the gates' normalisation,
   * dp[e1] += p2·(dg1 − dg2)/(p1 + p2)², dp[e2] += p1·(dg2 − dg1)/(p1 + p2)², dg = dGate[slot] (0 if dropped).
   */
  routerGrad: op([
    'p:mat',
    'first:i32',
    'second:i32',
    'slot1:i32',
    'slot2:i32',
    'dGate:f32',
    'firstCounts:i32',
    'groups:size',
    'auxGrad:num',
    'dp:mat',
  ]),
  /** sums = {Σ losses, Σ lse², count} over the rows whose target is >= 0 (float64, row order). */
  lossSums: op(['losses:f32', 'lse:f32', 'targets:i32', 'sums:f64']),
  /**
   * The relative-position bias gradient: dRelBias [buckets, heads] += dBias [heads·t, t] entry (h·t + i, j)
   * at bucket bucketOf[i·t + j], for j <= i, each addition rounded to float32, in (h, i, j) order.
   */
  relBiasGrad: op(['dBias:mat', 'bucketOf:i32', 'dRelBias:f32']),
  /**
   * Σ x² in float64 (NaN or ±Infinity propagate; float32 squares cannot overflow float64, so the sum is
   * finite iff every element is): the trainer's finite check and gradient norm in one pass.
   */
  sumSquares: { args: ['x:f32'], returns: 'num' } as const,
  /** x[:] = value. */
  fill: op(['x:f32', 'value:num']),
  /**
   * Adafactor statistics of a stack of `slices` matrices g[s] [rows, cols] stored one after another:
   * R ← beta2·R + mix·rowsum(g² + eps1), C ← beta2·C + mix·colsum(g² + eps1) (float64 sums), then
   * sumSq[s] = Σ U² with U_ij = g_ij·sqrt(ΣR/R_i)/sqrt(C_j).
   */
  adafactorFactoredStats: op([
    'g:f32',
    'vRow:f32',
    'vCol:f32',
    'slices:size',
    'rows:size',
    'cols:size',
    'beta2:num',
    'mix:num',
    'eps1:num',
    'sumSq:f64',
  ]),
  /** θ ← θ − decay·θ − stepSizes[s]·U over each slice s. p must not alias g. */
  adafactorFactoredApply: op([
    'g:f32',
    'vRow:f32',
    'vCol:f32',
    'p:f32',
    'slices:size',
    'rows:size',
    'cols:size',
    'stepSizes:f64',
    'decay:num',
  ]),
  /** Full second moment over `slices` blocks of `size`: v ← beta2·v + mix·(g² + eps1), sumSq[s] = Σ (g/sqrt(v))². */
  adafactorFullStats: op([
    'g:f32',
    'v:f32',
    'slices:size',
    'size:size',
    'beta2:num',
    'mix:num',
    'eps1:num',
    'sumSq:f64',
  ]),
  /** θ ← θ − decay·θ − stepSizes[s]·g/sqrt(v) over block s. p must not alias g. */
  adafactorFullApply: op([
    'g:f32',
    'v:f32',
    'p:f32',
    'slices:size',
    'size:size',
    'stepSizes:f64',
    'decay:num',
  ]),
} as const satisfies Record<string, OpSpec>;

export type OpName = keyof typeof OPS;

/** The names of the ops, in table order. */
export const OP_NAMES = Object.keys(OPS) as OpName[];

type KindOf<S> = S extends `${string}:${infer K extends ArgKind}` ? K : never;
type ArgTypes<A extends readonly string[]> = { -readonly [I in keyof A]: KindTypes[KindOf<A[I]>] };

/** The op functions, typed from OPS. */
export type KernelOps = {
  readonly [K in OpName]: (
    ...args: ArgTypes<(typeof OPS)[K]['args']>
  ) => (typeof OPS)[K] extends { returns: 'num' } ? number : void;
};

/** A backend: the ops plus what every backend says about itself. */
export interface Kernels extends KernelOps {
  /** 'native' (C++ core) or 'reference' (pure TypeScript). */
  readonly name: 'native' | 'reference';
  /** Human-readable description of the code path, e.g. "native avx2+fma, 2 threads". */
  describe(): string;
  /** Threads the kernels use (native only; reference always 1). */
  setThreads(n: number): void;
  getThreads(): number;
}

/** Argument names and kinds of an op, parsed from its spec. */
export function opArgs(name: OpName): { name: string; kind: ArgKind }[] {
  return OPS[name].args.map((a) => {
    const [argName, kind] = a.split(':') as [string, ArgKind];
    return { name: argName, kind };
  });
}
