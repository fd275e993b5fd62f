// Single-precision GEMM driver: blocking, packing, threading. Arguments must already be validated.
#pragma once

#include <cstdint>

#include "threadpool.h"

namespace glam {

// C = alpha * op(A) * op(B) + beta * C, row-major, op(A) [m,k], op(B) [k,n].
struct GemmCall {
  bool transA;
  bool transB;
  int64_t m, n, k;
  float alpha;
  const float* a;
  int64_t lda;
  const float* b;
  int64_t ldb;
  float beta;
  float* c;
  int64_t ldc;
};

void sgemm(const GemmCall& call);

// rows x cols of C (ldc) = beta·C, what a product with k == 0 or alpha == 0 computes (as BLAS does): beta == 0
// writes zeros without reading C, beta == 1 leaves C alone.
void scaleRows(float* c, int64_t rows, int64_t cols, int64_t ldc, float beta);

struct GemmKernel;

// Columns [j0, j1) of C = alpha·A·B + beta·C on the calling thread through kern.stream (m <= kern.streamRows,
// B row-major, ldb floats per row, read in place). packedA holds A packed by kern.packA over all of k, a
// KC block at a time (one mr-row panel, mr·KC floats per block, as gemmFewRows packs it).
void streamColumns(const GemmKernel& kern, int64_t m, int64_t k, float alpha, const float* packedA, const float* b,
                   int64_t ldb, float beta, float* c, int64_t ldc, int64_t j0, int64_t j1);
// Columns of B each stream call sums per row of C at most (the sums of up to streamRows rows stay in L1
// beside the B rows streaming through): 16 KiB, so that one row reads a 3072-column weight row whole.
constexpr int64_t kStreamFloats = 4096;
// The columns of one stream call for `rows` rows of C (a multiple of 32: whole bf16 pairs of vectors).
inline int64_t streamRunCols(int64_t rows) { return kStreamFloats / rows / 32 * 32; }
// Columns per claim of the stream routes (float32 and bf16) over n columns on nt threads: each thread's
// share, in multiples of `align`, cut into as few equal runs as one stream call takes, so the claims divide
// evenly between the threads (3072 columns, 4 rows, 2 threads: 4 runs of 768, not 3 of 1024).
inline int64_t streamClaimCols(int64_t n, int64_t rows, int nt, int64_t align) {
  const int64_t perThread = ((n + nt - 1) / nt + align - 1) / align * align;
  const int64_t runsPerThread = (perThread + streamRunCols(rows) - 1) / streamRunCols(rows);
  return ((perThread + runsPerThread - 1) / runsPerThread + align - 1) / align * align;
}
// Columns per claim of the transposed stream routes (GemmKernel::streamTransposed, Bf16Kernel's) over n
// columns on nt threads: at most 1024 weight rows (3 MiB of a 0.1B model's float32 embedding: fewer claim
// boundaries, where the next group is not fetched ahead, than 256 gave), at least one claim per thread,
// whole groups of 16 (AVX-512; two groups of 8 on AVX2).
inline int64_t transposedRunCols(int64_t n, int nt) {
  const int64_t perThread = (n + nt - 1) / nt;
  const int64_t run = (perThread + 15) / 16 * 16;
  return run < 1024 ? run : 1024;
}
// Floats a stream call's sums need: rows of cols rounded up to 32, each row 16 floats longer so that
// rows are never a multiple of 4 KiB apart (loads of one row would wait on stores to another).
inline int64_t streamSumsFloats(int64_t rows, int64_t cols) { return rows * ((cols + 31) / 32 * 32 + 16); }

// `batch` products; item i uses a + i*strideA, b + i*strideB, c + i*strideC.
void sgemmStridedBatched(const GemmCall& call, int64_t strideA, int64_t strideB, int64_t strideC, int64_t batch);

// The strided-batch driver of a product: product(item, maxThreads) for every item (call with a, b and c
// moved i strides on). With wholeItems the pool's threads claim whole items, one thread each (no barriers,
// no shared packing); else the items run one after another, each on all the threads.
template <typename Product>
void forEachBatchItem(const GemmCall& call, int64_t strideA, int64_t strideB, int64_t strideC, int64_t batch,
                      bool wholeItems, Product&& product) {
  const int pool = poolThreads();
  auto item = [&](int64_t i, int maxThreads) {
    GemmCall g = call;
    g.a = call.a + i * strideA;
    g.b = call.b + i * strideB;
    g.c = call.c + i * strideC;
    product(g, maxThreads);
  };
  if (wholeItems) {
    forEachUnit(pool, batch, [&](int64_t i) { item(i, 1); });
  } else {
    for (int64_t i = 0; i < batch; i++) item(i, pool);
  }
}

}  // namespace glam
