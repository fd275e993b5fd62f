/**
 * The kernel op set: the contract between the compute core (native C++ or the
 * pure TypeScript reference) and everything above it.
 *
 * Conventions:
 * - Matrices are row-major Float32Array views; `ld*` is the leading dimension
 *   (elements between consecutive rows) so sub-matrices can be addressed without copies.
 * - Every array argument may be a subarray view; kernels read/write from index 0 of the view.
 * - `out` arguments may alias an input only where the doc says so.
 * - Every kernel validates lengths against the sizes it is given and throws an
 *   Error naming the argument and the shapes on a mismatch (never crashes).
 */
export interface Kernels {
  /** 'native' (C++ addon) or 'reference' (pure TypeScript). */
  readonly name: 'native' | 'reference';
  /** Human-readable description of the code path, e.g. "native avx2+fma, 2 threads". */
  describe(): string;
  /** Threads the kernels use (native only; reference always 1). */
  setThreads(n: number): void;
  getThreads(): number;

  /**
   * C = alpha·op(A)·op(B) + beta·C with op(X) = X or Xᵀ.
   * op(A) is [m,k], op(B) is [k,n], C is [m,n]. When transA, A is stored [k,m] with leading dim lda.
   * beta = 0 means C is write-only (its old contents, even NaN, are ignored).
   */
  sgemm(
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    alpha: number,
    a: Float32Array,
    lda: number,
    b: Float32Array,
    ldb: number,
    beta: number,
    c: Float32Array,
    ldc: number,
  ): void;

  /** `batch` independent sgemm calls; matrix i starts at offset i·stride* in each array. */
  sgemmStridedBatched(
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    alpha: number,
    a: Float32Array,
    lda: number,
    strideA: number,
    b: Float32Array,
    ldb: number,
    strideB: number,
    beta: number,
    c: Float32Array,
    ldc: number,
    strideC: number,
    batch: number,
  ): void;

  /**
   * Grouped products over ragged groups of rows (the experts of an MoE layer), in one call.
   * A is [T, d] (leading dim lda), T = offsets[groups]; group g owns rows offsets[g] .. offsets[g+1]-1
   * (offsets: groups + 1 non-decreasing entries, offsets[0] >= 0).
   * - transA = false: C[off_g:off_g+1, :] = alpha·A[off_g:off_g+1, :]·op(B_g) + beta·C[...], with
   *   op(B_g) [d, n] (transB: stored [n, d]) at b + g·strideB, and C [T, n] at c + g·strideC (ldc).
   * - transA = true (weight gradients): C_g [d, n] at c + g·strideC = alpha·A[off_g:off_g+1, :]ᵀ·B_g + beta·C_g,
   *   B_g the rows off_g .. off_g+1-1 of B [T, n] at b + g·strideB; transB must be false, the C_g must not
   *   overlap (strideC >= (d-1)·ldc + n). An empty group gives C_g = beta·C_g (zeros when beta = 0).
   * beta = 0 means C is write-only.
   */
  sgemmGrouped(
    transA: boolean,
    transB: boolean,
    groups: number,
    offsets: Int32Array,
    d: number,
    n: number,
    alpha: number,
    a: Float32Array,
    lda: number,
    b: Float32Array,
    ldb: number,
    strideB: number,
    beta: number,
    c: Float32Array,
    ldc: number,
    strideC: number,
  ): void;

  /** out = a + b (elementwise, n = a.length). out may alias a or b. */
  add(a: Float32Array, b: Float32Array, out: Float32Array): void;
  /** y += alpha·x (elementwise). */
  axpy(alpha: number, x: Float32Array, y: Float32Array): void;

  /**
   * RMSNorm over rows of x[rows, cols]: out = x / sqrt(mean(x²) + eps) * scale.
   * Writes invRms[rows] = 1/sqrt(mean(x²)+eps) for the backward pass.
   */
  rmsnorm(
    x: Float32Array,
    scale: Float32Array,
    rows: number,
    cols: number,
    eps: number,
    out: Float32Array,
    invRms: Float32Array,
  ): void;
  /** Backward of rmsnorm: writes dx (may alias dy), ACCUMULATES into dscale. */
  rmsnormBackward(
    x: Float32Array,
    scale: Float32Array,
    invRms: Float32Array,
    dy: Float32Array,
    rows: number,
    cols: number,
    dx: Float32Array,
    dscale: Float32Array,
  ): void;

  /** out = gelu(x), tanh approximation. out may alias x. */
  gelu(x: Float32Array, out: Float32Array): void;
  /** dx = dy · gelu'(x). dx may alias dy. */
  geluBackward(x: Float32Array, dy: Float32Array, dx: Float32Array): void;
  /** out = gelu(a) ⊙ b. */
  gatedGelu(a: Float32Array, b: Float32Array, out: Float32Array): void;
  /** da = dy ⊙ b ⊙ gelu'(a); db = dy ⊙ gelu(a). */
  gatedGeluBackward(
    a: Float32Array,
    b: Float32Array,
    dy: Float32Array,
    da: Float32Array,
    db: Float32Array,
  ): void;

  /** Row softmax of x[rows, cols] into out (may alias x). */
  softmaxRows(x: Float32Array, rows: number, cols: number, out: Float32Array): void;
  /** dx = y ⊙ (dy - rowsum(dy ⊙ y)). dx may alias dy. */
  softmaxRowsBackward(y: Float32Array, dy: Float32Array, rows: number, cols: number, dx: Float32Array): void;

  /**
   * Causal attention probabilities, in place on scores[batchHeads, t, t]:
   * s[bh,i,j] <- softmax_j(scale·s[bh,i,j] + bias[h,i,j]) for j <= i, 0 for j > i,
   * with h = bh % heads and bias[heads, t, t].
   */
  causalSoftmax(
    scores: Float32Array,
    bias: Float32Array,
    batchHeads: number,
    heads: number,
    t: number,
    scale: number,
  ): void;

  /**
   * Cross-entropy with logsumexp over logits[rows, cols] and integer targets[rows].
   * Writes losses[r] = lse_r - logits[r, target_r] and lse[r].
   */
  crossEntropy(
    logits: Float32Array,
    targets: Int32Array,
    rows: number,
    cols: number,
    losses: Float32Array,
    lse: Float32Array,
  ): void;
  /**
   * Gradient of Σ_r (ceScale·loss_r + zScale·lse_r²) wrt logits, written to dlogits (may alias logits):
   * dlogits = (ceScale + 2·zScale·lse_r)·softmax_r - ceScale·onehot(target_r).
   */
  crossEntropyBackward(
    logits: Float32Array,
    lse: Float32Array,
    targets: Int32Array,
    rows: number,
    cols: number,
    ceScale: number,
    zScale: number,
    dlogits: Float32Array,
  ): void;

  /** out[i, :] = src[idx[i], :] for i < idx.length; rows of width cols. */
  gatherRows(src: Float32Array, idx: Int32Array, cols: number, out: Float32Array): void;
  /**
   * Σ x² accumulated in float64 (a NaN or ±Infinity element makes the result NaN or Infinity; float32
   * squares cannot overflow float64, so a finite result means every element is finite). The native sum
   * is cut into fixed blocks whose partials are added in order: the same bits on any thread count.
   */
  sumSquares(x: Float32Array): number;
  /** x[:] = value. */
  fill(x: Float32Array, value: number): void;

  /**
   * Adafactor statistics for a stack of `slices` factored matrices g[s] of [rows, cols] (row-major,
   * consecutive), row statistics vRow[slices·rows], column statistics vCol[slices·cols]:
   *   R ← beta2·R + mix·rowsum(g² + eps1),  C ← beta2·C + mix·colsum(g² + eps1)   (float64 sums)
   * then sumSq[s] = Σ U² with U_ij = g_ij·sqrt(ΣR/R_i)/sqrt(C_j) (the unclipped update, float64).
   */
  adafactorFactoredStats(
    g: Float32Array,
    vRow: Float32Array,
    vCol: Float32Array,
    slices: number,
    rows: number,
    cols: number,
    beta2: number,
    mix: number,
    eps1: number,
    sumSq: Float64Array,
  ): void;
  /** θ ← θ − decay·θ − stepSizes[s]·U over each slice s, U as in adafactorFactoredStats. p must not alias g. */
  adafactorFactoredApply(
    g: Float32Array,
    vRow: Float32Array,
    vCol: Float32Array,
    p: Float32Array,
    slices: number,
    rows: number,
    cols: number,
    stepSizes: Float64Array,
    decay: number,
  ): void;
  /**
   * Adafactor with a full second moment over `slices` consecutive blocks of `size` elements:
   * v ← beta2·v + mix·(g² + eps1) (rounded to float32), then sumSq[s] = Σ (g/sqrt(v))² over block s.
   */
  adafactorFullStats(
    g: Float32Array,
    v: Float32Array,
    slices: number,
    size: number,
    beta2: number,
    mix: number,
    eps1: number,
    sumSq: Float64Array,
  ): void;
  /** θ ← θ − decay·θ − stepSizes[s]·g/sqrt(v) over block s. p must not alias g. */
  adafactorFullApply(
    g: Float32Array,
    v: Float32Array,
    p: Float32Array,
    slices: number,
    size: number,
    stepSizes: Float64Array,
    decay: number,
  ): void;

  /** out[idx[i], :] += weight[i] · src[i, :]. Indices may repeat. */
  scatterAddRows(
    src: Float32Array,
    idx: Int32Array,
    weight: Float32Array,
    cols: number,
    out: Float32Array,
  ): void;

  /**
   * For each row r of a and b [rows, cols]: dot[r] = a[r, :]·b[r, :] (summed in float64), then
   * a[r, :] *= scale[r] (in place). The MoE gate gradient and the gate scaling of the expert output grads.
   */
  rowDotScale(
    a: Float32Array,
    b: Float32Array,
    scale: Float32Array,
    rows: number,
    cols: number,
    dot: Float32Array,
  ): void;
}
