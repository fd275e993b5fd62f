// Grouped single-precision GEMM: one call for many independent products whose token dimension is cut
// into ragged groups by row offsets (the experts of an MoE layer). Arguments must already be validated.
#pragma once

#include <cstdint>

namespace glam {

// A is [T, d] row-major (lda), T = offsets[groups]; group g owns rows [offsets[g], offsets[g+1]) of A.
//   transA == false: C[off_g:off_g+1, 0:n] (c + g*strideC + off_g*ldc) = alpha * A_g * op(B_g) + beta * C,
//                    op(B_g) [d, n] stored at b + g*strideB (transB: [n, d]).
//   transA == true:  C_g [d, n] (c + g*strideC) = alpha * A_gᵀ * B_g + beta * C_g, B_g the rows
//                    [off_g, off_g+1) of B [T, n] at b + g*strideB (transB must be false). An empty group
//                    gives C_g = beta * C_g.
struct GroupedCall {
  bool transA;
  bool transB;
  int64_t groups;
  const int32_t* offsets;  // groups + 1, non-decreasing, offsets[0] >= 0
  int64_t d, n;
  float alpha;
  const float* a;
  int64_t lda;
  const float* b;
  int64_t ldb, strideB;
  float beta;
  float* c;
  int64_t ldc, strideC;
};

void sgemmGrouped(const GroupedCall& call);

}  // namespace glam
