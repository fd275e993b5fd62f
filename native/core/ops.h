// The compute core's public C++ API: every kernel as one function that validates its arguments (shapes,
// buffer bounds, index ranges) and returns a Status naming the problem instead of touching memory it must
// not. The Node-API binding (native/node) is a thin layer over these; a C++ program, an MPI layer or another
// device backend calls them directly. The TypeScript contract (src/backend/ops.ts) mirrors them one to one,
// with the same argument names, the same semantics and the same error messages.
//
// Results never depend on the thread count (bitwise), except where a function says otherwise.
#pragma once

#include <cstdint>
#include <string>

namespace glam {

// A float buffer the caller owns: `size` floats at `data`. Only [0, size) is ever read or written.
struct Vec {
  float* data;
  int64_t size;
};
struct IVec {
  int32_t* data;
  int64_t size;
};
struct DVec {
  double* data;
  int64_t size;
};

// A matrix view on a float buffer: the logical [rows, cols] matrix whose element (i, j) is
// data[offset + i*ld + j], or data[offset + j*ld + i] when `trans` (stored [cols, rows], read transposed).
struct Mat {
  float* data;
  int64_t size;  // floats in the buffer, for the bounds check
  int64_t offset, rows, cols, ld;
  bool trans;
};

// A matrix view on a bf16 buffer (each element the upper half of a float32: weights stored in bf16),
// addressed like Mat.
struct BMat {
  uint16_t* data;
  int64_t size;  // elements in the buffer, for the bounds check
  int64_t offset, rows, cols, ld;
  bool trans;
};

// Empty when the call was valid (and ran); otherwise "op: what is wrong".
struct Status {
  std::string error;
  bool ok() const { return error.empty(); }
};

namespace ops {

// C = alpha·A·B + beta·C, A [m, k], B [k, n], C [m, n] (C not transposed, not overlapping A or B).
// beta = 0 never reads C; alpha = 0 or k = 0 only scales C (BLAS semantics).
Status sgemm(double alpha, const Mat& a, const Mat& b, double beta, const Mat& c);
// `batch` products; item i's views start stride·i floats after the given ones.
Status sgemmStridedBatched(int64_t batch, double alpha, const Mat& a, int64_t strideA, const Mat& b,
                           int64_t strideB, double beta, const Mat& c, int64_t strideC);
// Products over ragged groups (the experts of an MoE layer), groups = offsets.size - 1, group g spanning
// T-indices [offsets[g], offsets[g+1]) (non-decreasing, offsets[0] >= 0, T = offsets[groups]):
// - a not transposed, a [T, d]: rows of group g of C [T, n] (at c + g·strideC) =
//   alpha·(rows of g of a)·B_g + beta·(those rows), B_g = b [d, n] moved g·strideB floats.
// - a transposed, a [d, T]: C_g [d, n] (c moved g·strideC) = alpha·(columns of g of a)·(rows of g of B_g)
//   + beta·C_g, with B_g = b [T, n] (not transposed) moved g·strideB; an empty group gives beta·C_g.
//   The C_g must not overlap.
Status sgemmGrouped(const IVec& offsets, double alpha, const Mat& a, const Mat& b, int64_t strideB, double beta,
                    const Mat& c, int64_t strideC);

// The three products above with both operands rounded to bf16 (nearest even) and float32 sums (vdpbf16ps
// on AVX512-BF16): what bf16 mixed-precision training computes with. Same arguments and checks.
Status sgemmBf16(double alpha, const Mat& a, const Mat& b, double beta, const Mat& c);
Status sgemmStridedBatchedBf16(int64_t batch, double alpha, const Mat& a, int64_t strideA, const Mat& b,
                               int64_t strideB, double beta, const Mat& c, int64_t strideC);
Status sgemmGroupedBf16(const IVec& offsets, double alpha, const Mat& a, const Mat& b, int64_t strideB,
                        double beta, const Mat& c, int64_t strideC);

// C = alpha·bf16(A)·W + beta·C: A float32 [m, k] rounded to bf16 (nearest even) for the product, W bf16
// [k, n], C float32 [m, n] (not transposed, not overlapping A); products of bf16 values (exact), sums in
// float32 (vdpbf16ps where the CPU has AVX512-BF16). Batch-invariant like sgemm. beta = 0 never reads C.
Status gemmBf16(double alpha, const Mat& a, const BMat& w, double beta, const Mat& c);
// The experts of an MoE layer at inference: rows of group g (offsets as sgemmGrouped's) of C [T, n] (moved
// g·strideC) = alpha·bf16(rows of g of A [T, d])·W_g + beta·(those rows), W_g = w [d, n] moved g·strideW.
// A and C not transposed.
Status gemmGroupedBf16(const IVec& offsets, double alpha, const Mat& a, const BMat& w, int64_t strideW, double beta,
                       const Mat& c, int64_t strideC);

// Element-wise over n = the first operand's size (the others hold at least n). Outputs may alias inputs.
Status add(const Vec& a, const Vec& b, const Vec& out);
Status axpy(double alpha, const Vec& x, const Vec& y);
Status gelu(const Vec& x, const Vec& out);
Status geluBackward(const Vec& x, const Vec& dy, const Vec& dx);
Status gatedGelu(const Vec& a, const Vec& b, const Vec& out);
Status gatedGeluBackward(const Vec& a, const Vec& b, const Vec& dy, const Vec& da, const Vec& db);

// Row kernels: matrix operands are [rows, cols] views with contiguous rows (ld = cols, not transposed).
// out = x / sqrt(mean(x²) + eps) · scale per row; invRms[r] = that 1/sqrt(...).
Status rmsnorm(const Mat& x, const Vec& scale, double eps, const Mat& out, const Vec& invRms);
// dx (may alias dy) and dscale += Σ_r dy·x·invRms.
Status rmsnormBackward(const Mat& x, const Vec& scale, const Vec& invRms, const Mat& dy, const Mat& dx,
                       const Vec& dscale);
Status softmaxRows(const Mat& x, const Mat& out);
// dx = y ⊙ (dy − rowsum(dy ⊙ y)); dx may alias dy.
Status softmaxRowsBackward(const Mat& y, const Mat& dy, const Mat& dx);
// In place on scores [batchHeads·t, t]: row (bh, i) ← softmax_j(scale·s + bias[h·t + i, j]) for j <= i, 0 after,
// h = bh mod heads, bias [heads·t, t].
Status causalSoftmax(const Mat& scores, const Mat& bias, int64_t heads, double scale);
// losses[r] = lse[r] − logits[r, targets[r]], lse[r] = logsumexp of row r.
Status crossEntropy(const Mat& logits, const IVec& targets, const Vec& losses, const Vec& lse);
// dlogits (may alias logits) = (ceScale + 2·zScale·lse_r)·softmax_r − ceScale·onehot(targets[r]).
Status crossEntropyBackward(const Mat& logits, const Vec& lse, const IVec& targets, double ceScale, double zScale,
                            const Mat& dlogits);
// out row i = src row idx[i].
Status gatherRows(const Mat& src, const IVec& idx, const Mat& out);
// out row idx[i] += weight[i]·src row i (indices may repeat; applied in index order).
Status scatterAddRows(const Mat& src, const IVec& idx, const Vec& weight, const Mat& out);
// dot[r] = a row r · b row r (float64 sum), then a row r *= scale[r].
Status rowDotScale(const Mat& a, const Mat& b, const Vec& scale, const Vec& dot);

// Attention of query rows over a paged key/value cache (inference). q, out [rows, heads·dHead]; kCache,
// vCache [slots, heads·dHead]; relBias [buckets, heads] (heads = relBias.cols); all with contiguous rows.
// Key j of sequence s is in slot blockTable[s·maxBlocks + j / blockSize]·blockSize + j % blockSize; row r
// (sequence rowSeq[r], position i = rowPos[r]) attends to keys 0..i with the bias relBias[bucketOf[i − j], h].
// A row's result does not depend on the other rows or the thread count (bitwise).
Status pagedAttention(const Mat& q, const Mat& kCache, const Mat& vCache, const IVec& blockTable, int64_t maxBlocks,
                      int64_t blockSize, const IVec& rowSeq, const IVec& rowPos, const Mat& relBias,
                      const IVec& bucketOf, double scale, const Mat& out);
// Per row of x (contiguous rows): the k largest values, descending (ties: lower index; NaN last), into idx and
// val [x.rows, k].
Status topkRows(const Mat& x, int64_t k, const IVec& idx, const Vec& val);

// The step's bookkeeping (moe.h): top-2 routing with GShard capacity over p and logits [rows, E] in `groups`
// groups, `capacity` slots per expert and group, `coins` the uniforms of policy 'random' (rows of them, or
// none: keep every second choice); per-token first, second, gate1, gate2, slot1, slot2 [rows]; offsets
// [E+1]; token and gate [2·rows]; load and routed [E]; firstCounts [groups·E]; stats {entropy, aux,
// dropped, assignments}.
Status top2Route(const Mat& p, const Mat& logits, int64_t groups, int64_t capacity, const DVec& coins,
                 const IVec& first, const IVec& second, const Vec& gate1, const Vec& gate2, const IVec& slot1,
                 const IVec& slot2, const IVec& offsets, const IVec& token, const Vec& gate, const IVec& load,
                 const IVec& routed, const IVec& firstCounts, const DVec& stats);
// The router probabilities' gradient dp [rows, E] from the gates' gradients dGate (by assignment) and
// the aux loss (auxGrad = d objective / d aux), for the routing top2Route wrote.
Status routerGrad(const Mat& p, const IVec& first, const IVec& second, const IVec& slot1, const IVec& slot2,
                  const Vec& dGate, const IVec& firstCounts, int64_t groups, double auxGrad, const Mat& dp);
// sums = {Σ losses, Σ lse², rows} over the rows whose target is >= 0 (float64, row order).
Status lossSums(const Vec& losses, const Vec& lse, const IVec& targets, const DVec& sums);
// dRelBias [buckets, heads] += the bias gradient dBias [heads·t, t] gathered by bucket (j <= i of each row).
Status relBiasGrad(const Mat& dBias, const IVec& bucketOf, const Vec& dRelBias);

// Σ x² in float64 over all of x (NaN and ±Inf propagate; finite iff every element is).
Status sumSquares(const Vec& x, double* result);
Status fill(const Vec& x, double value);

// Adafactor over a stack of `slices` matrices [rows, cols] stored one after another (see optim.h).
Status adafactorFactoredStats(const Vec& g, const Vec& vRow, const Vec& vCol, int64_t slices, int64_t rows,
                              int64_t cols, double beta2, double mix, double eps1, const DVec& sumSq);
Status adafactorFactoredApply(const Vec& g, const Vec& vRow, const Vec& vCol, const Vec& p, int64_t slices,
                              int64_t rows, int64_t cols, const DVec& stepSizes, double decay);
Status adafactorFullStats(const Vec& g, const Vec& v, int64_t slices, int64_t size, double beta2, double mix,
                          double eps1, const DVec& sumSq);
Status adafactorFullApply(const Vec& g, const Vec& v, const Vec& p, int64_t slices, int64_t size,
                          const DVec& stepSizes, double decay);

}  // namespace ops
}  // namespace glam
