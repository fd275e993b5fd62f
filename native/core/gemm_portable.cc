// Portable GEMM micro-kernel: plain C++ the compiler vectorises for the baseline target (SSE2 on x86-64).
#include <cstdint>

#include "blocking.h"
#include "isa.h"

namespace glam {
namespace {

#include "pack_impl.h"
#include "widening_impl.h"

// 4x8 fits the 16 baseline vector registers: 8 accumulators + 2 B vectors + a broadcast.
constexpr int MR = 4;
constexpr int NR = 8;

void micro4x8(int64_t kc, const float* a, const float* b, int64_t ldb, float* c, int64_t ldc, float alpha,
              float beta, int rows, int cols, const MicroSide*) {
  float acc[MR][NR] = {};
  for (int64_t p = 0; p < kc; p++) {
    const float* bp = b + p * ldb;
    const float* ap = a + p * MR;
    for (int r = 0; r < MR; r++) {
      const float av = ap[r];
      for (int j = 0; j < NR; j++) acc[r][j] += av * bp[j];
    }
  }
  storeTile<NR>(&acc[0][0], c, ldc, alpha, beta, rows, cols);
}

void packA(int64_t mc, int64_t kc, const float* a, int64_t rs, int64_t cs, float* dst) {
  packAPanels<MR>(mc, kc, a, rs, cs, dst);
}

void packB(int64_t kc, int64_t nc, const float* b, int64_t rs, int64_t cs, float* dst) {
  packBPanels<NR>(kc, nc, b, rs, cs, dst);
}

}  // namespace

GemmKernel portableGemmKernel() {
  return GemmKernel{MR, NR, NR, 0, blocking::kKC, blocking::kMC, false, false, packA, packB, micro4x8, 0, nullptr};
}

Bf16Kernel portableBf16Widening() { return wideningBf16Kernel<MR, NR, micro4x8>(blocking::kKC); }

}  // namespace glam
