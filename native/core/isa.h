// The per-instruction-set kernel tables. Each table is built in its own translation unit with its
// own compiler flags (AVX2/FMA or baseline x86-64); the drivers pick one at run time.
#pragma once

#include <cstdint>

namespace glam {

// Register-blocked GEMM pieces (BLIS style). op(A) is addressed as a[i*rs + p*cs], op(B) as b[p*rs + j*cs].
struct GemmKernel {
  int mr;  // rows of the micro-tile
  int nr;  // columns of the micro-tile
  // Packs rows [0,mc) x cols [0,kc) of op(A) into mr-row panels, panel-major, zero-padded to mr rows.
  void (*packA)(int64_t mc, int64_t kc, const float* a, int64_t rs, int64_t cs, float* dst);
  // Packs rows [0,kc) x cols [0,nc) of op(B) into nr-column panels, zero-padded to nr columns.
  void (*packB)(int64_t kc, int64_t nc, const float* b, int64_t rs, int64_t cs, float* dst);
  // C[0:rows, 0:cols] = alpha * (A panel x B panel) + beta * C; beta == 0 never reads C. The B panel has
  // kc rows of nr floats, ldb apart (nr when packed; a row-major B read in place otherwise).
  void (*micro)(int64_t kc, const float* a, const float* b, int64_t ldb, float* c, int64_t ldc, float alpha,
                float beta, int rows, int cols);
  // Products with at most kSmallGemmRows rows, B read in place (see small_impl.h): columns [j0, j1) of
  // C'[i,j] = c[i*rsC + j*csC] = alpha * A'(m x k, contiguous) * B'(b[p*rsB + j*csB]) + beta * C'.
  void (*smallRows)(int m, int64_t k, float alpha, const float* a, const float* b, int64_t rsB, int64_t csB,
                    float beta, float* c, int64_t rsC, int64_t csC, int64_t j0, int64_t j1);
};

constexpr int kSmallGemmRows = 8;

// Element-wise and row kernels on contiguous ranges; the driver splits work across threads.
struct RowKernels {
  void (*add)(const float* a, const float* b, float* out, int64_t n);
  void (*axpy)(float alpha, const float* x, float* y, int64_t n);
  void (*gelu)(const float* x, float* out, int64_t n);
  void (*geluBackward)(const float* x, const float* dy, float* dx, int64_t n);
  void (*gatedGelu)(const float* a, const float* b, float* out, int64_t n);
  void (*gatedGeluBackward)(const float* a, const float* b, const float* dy, float* da, float* db, int64_t n);
  void (*rmsnorm)(const float* x, const float* scale, int64_t rows, int64_t cols, float eps, float* out,
                  float* invRms);
  void (*rmsnormBackwardDx)(const float* x, const float* scale, const float* invRms, const float* dy,
                            int64_t rows, int64_t cols, float* dx);
  // dscale[j] += sum_r dy[r,j] * x[r,j] * invRms[r] for columns [colBegin, colEnd), summed in double.
  void (*rmsnormBackwardScale)(const float* x, const float* invRms, const float* dy, int64_t rows, int64_t cols,
                               int64_t colBegin, int64_t colEnd, float* dscale);
  void (*softmaxRows)(const float* x, int64_t rows, int64_t cols, float* out);
  void (*softmaxRowsBackward)(const float* y, const float* dy, int64_t rows, int64_t cols, float* dx);
  // Rows [rowBegin, rowEnd) of scores viewed as [batchHeads*t, t].
  void (*causalSoftmax)(float* scores, const float* bias, int64_t rowBegin, int64_t rowEnd, int64_t heads,
                        int64_t t, float scale);
  void (*crossEntropy)(const float* logits, const int32_t* targets, int64_t rows, int64_t cols, float* losses,
                       float* lse);
  void (*crossEntropyBackward)(const float* logits, const float* lse, const int32_t* targets, int64_t rows,
                               int64_t cols, float ceScale, float zScale, float* dlogits);
  // out[idx[i], j] += weight[i] * src[i, j] for all i, columns [colBegin, colEnd).
  void (*scatterAddRows)(const float* src, const int32_t* idx, const float* weight, int64_t count, int64_t cols,
                         int64_t colBegin, int64_t colEnd, float* out);
  // dot[r] = sum_j a[r,j] * b[r,j] (summed in double), then a[r,:] *= scale[r], for `rows` rows.
  void (*rowDotScale)(float* a, const float* b, const float* scale, int64_t rows, int64_t cols, float* dot);
};

struct Isa {
  const char* name;  // "avx2+fma" or "portable"
  GemmKernel gemm;
  RowKernels rows;
  // Runs `iterations` rounds of independent multiply-add chains; returns the flops done.
  double (*peakLoop)(int64_t iterations);
};

const Isa& avx2Isa();
const Isa& portableIsa();

}  // namespace glam

namespace glam {

// True when the CPU (and OS) support AVX2 and FMA.
bool cpuHasAvx2Fma();

// The table in use: AVX2/FMA when the CPU has it, unless GLAM_FORCE_PORTABLE=1 is set at load time
// or forcePortable(true) was called.
const Isa& currentIsa();
// Returns false when `on` is false but the CPU lacks AVX2/FMA (the portable path stays).
bool forcePortable(bool on);
// Why the current table was chosen, e.g. "forced by GLAM_FORCE_PORTABLE".
const char* isaReason();

}  // namespace glam
