// Products with bf16 operands and float32 accumulation: C = alpha·bf16(op(A))·op(B) + beta·C with A float32
// (rounded to bf16, nearest even, as it is packed) and B bf16 storage (weights), or B float32 rounded the
// same way (bf16 mixed-precision training). Arguments must already be validated (ops.cc). The kernel is
// the current table's (isa.h: currentBf16).
#pragma once

#include <cstdint>

#include "gemm.h"
#include "grouped.h"

namespace glam {

// op(A)[i,p] = a[i*rsA + p*csA] (m x k), op(B)[p,j] = b[p*rsB + j*csB] (k x n), C row-major (ldc). When bf is
// set, B is float32 at bf (same strides) and b is ignored.
struct Bf16Call {
  int64_t m, n, k;
  float alpha;
  const float* a;
  int64_t rsA, csA;
  const uint16_t* b;
  int64_t rsB, csB;
  float beta;
  float* c;
  int64_t ldc;
  const float* bf = nullptr;
};

void gemmBf16(const Bf16Call& call);

// Grouped forward products (the experts of an MoE layer at inference): group g's rows
// [offsets[g], offsets[g+1]) of A (rows lda apart, k = d columns) times op(B_g), B_g = b + g·strideB
// (op(B_g)[p,j] = B_g[p*rsB + j*csB], d x n), into the same rows of C + g·strideC (ldc).
struct Bf16GroupedCall {
  const int32_t* offsets;
  int64_t groups;
  int64_t d, n;
  float alpha;
  const float* a;
  int64_t lda;
  const uint16_t* b;
  int64_t rsB, csB, strideB;
  float beta;
  float* c;
  int64_t ldc, strideC;
};

void gemmGroupedBf16(const Bf16GroupedCall& call);

// The float32 products of gemm.h and grouped.h with both operands rounded to bf16 (same arguments, same
// semantics otherwise): what `--precision bf16` training computes with.
void sgemmBf16(const GemmCall& call);
void sgemmStridedBatchedBf16(const GemmCall& call, int64_t strideA, int64_t strideB, int64_t strideC,
                             int64_t batch);
void sgemmGroupedBf16(const GroupedCall& call);

}  // namespace glam
