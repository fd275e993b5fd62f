// Single-precision GEMM driver: blocking, packing, threading. Arguments must already be validated.
#pragma once

#include <cstdint>

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

// `batch` products; item i uses a + i*strideA, b + i*strideB, c + i*strideC.
void sgemmStridedBatched(const GemmCall& call, int64_t strideA, int64_t strideB, int64_t strideC, int64_t batch);

}  // namespace glam
