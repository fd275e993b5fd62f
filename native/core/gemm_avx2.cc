// AVX2/FMA GEMM micro-kernel and packing; compiled with -mavx2 -mfma and only called after CPU detection.
#include <immintrin.h>

#include <cstdint>

#include "blocking.h"
#include "isa.h"

namespace glam {
namespace {

#include "pack_impl.h"
#include "simd_impl.h"
#include "widening_impl.h"

constexpr int MR = 6;
constexpr int NR = 16;

// One k step of the 6x16 tile: B row in ymm12/13, A values broadcast through ymm14/15 in turn; then
// the B pointer moves one row on. The row 8 ahead is prefetched (B read in place is ldb apart).
#define GLAM_STEP(a_off)                               \
  "prefetcht0 (%[b], %[bs], 8)\n\t"                   \
  "vmovups (%[b]), %%ymm12\n\t"                       \
  "vmovups 32(%[b]), %%ymm13\n\t"                     \
  "add %[bs], %[b]\n\t"                               \
  "vbroadcastss " #a_off "(%[a]), %%ymm14\n\t"        \
  "vfmadd231ps %%ymm12, %%ymm14, %t[c00]\n\t"         \
  "vfmadd231ps %%ymm13, %%ymm14, %t[c01]\n\t"         \
  "vbroadcastss " #a_off "+4(%[a]), %%ymm15\n\t"      \
  "vfmadd231ps %%ymm12, %%ymm15, %t[c10]\n\t"         \
  "vfmadd231ps %%ymm13, %%ymm15, %t[c11]\n\t"         \
  "vbroadcastss " #a_off "+8(%[a]), %%ymm14\n\t"      \
  "vfmadd231ps %%ymm12, %%ymm14, %t[c20]\n\t"         \
  "vfmadd231ps %%ymm13, %%ymm14, %t[c21]\n\t"         \
  "vbroadcastss " #a_off "+12(%[a]), %%ymm15\n\t"     \
  "vfmadd231ps %%ymm12, %%ymm15, %t[c30]\n\t"         \
  "vfmadd231ps %%ymm13, %%ymm15, %t[c31]\n\t"         \
  "vbroadcastss " #a_off "+16(%[a]), %%ymm14\n\t"     \
  "vfmadd231ps %%ymm12, %%ymm14, %t[c40]\n\t"         \
  "vfmadd231ps %%ymm13, %%ymm14, %t[c41]\n\t"         \
  "vbroadcastss " #a_off "+20(%[a]), %%ymm15\n\t"     \
  "vfmadd231ps %%ymm12, %%ymm15, %t[c50]\n\t"         \
  "vfmadd231ps %%ymm13, %%ymm15, %t[c51]\n\t"

// 6x16 tile in 12 ymm accumulators: per k step, two loads of the B row, six broadcasts of A, twelve
// independent FMAs (enough in flight to cover the FMA latency on two pipes). The k loop is written in
// assembly: compilers shuffle and spill the 12 accumulators of the intrinsics version. B rows are ldb
// floats apart: 16 for a packed panel, the matrix's own stride when a few-row product reads B in place.
void micro6x16(int64_t kc, const float* a, const float* b, int64_t ldb, float* c, int64_t ldc, float alpha,
               float beta, int rows, int cols, const MicroSide*) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();

  for (int r = 0; r < rows; r++) {
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 15), _MM_HINT_T0);
  }

  const int64_t quads = kc / 4;
  const int64_t bStrideBytes = ldb * static_cast<int64_t>(sizeof(float));
  const float* aEnd = a + quads * 4 * MR;  // the loop ends on the A pointer: asm allows 30 operands
  if (quads > 0) {
    __asm__ volatile(
        "1:\n\t"
        "prefetcht0 384(%[a])\n\t"
        GLAM_STEP(0)
        GLAM_STEP(24)
        GLAM_STEP(48)
        GLAM_STEP(72)
        "add $96, %[a]\n\t"
        "cmp %[aend], %[a]\n\t"
        "jne 1b\n\t"
        : [a] "+r"(a), [b] "+r"(b), [c00] "+x"(c00), [c01] "+x"(c01), [c10] "+x"(c10),
          [c11] "+x"(c11), [c20] "+x"(c20), [c21] "+x"(c21), [c30] "+x"(c30), [c31] "+x"(c31), [c40] "+x"(c40),
          [c41] "+x"(c41), [c50] "+x"(c50), [c51] "+x"(c51)
        : [bs] "r"(bStrideBytes), [aend] "r"(aEnd)
        : "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc");
  }
  for (int64_t p = kc & ~int64_t{3}; p < kc; p++) {
    const __m256 b0 = _mm256_loadu_ps(b);
    const __m256 b1 = _mm256_loadu_ps(b + 8);
    __m256 av = _mm256_broadcast_ss(a + 0);
    c00 = _mm256_fmadd_ps(av, b0, c00);
    c01 = _mm256_fmadd_ps(av, b1, c01);
    av = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(av, b0, c10);
    c11 = _mm256_fmadd_ps(av, b1, c11);
    av = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(av, b0, c20);
    c21 = _mm256_fmadd_ps(av, b1, c21);
    av = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(av, b0, c30);
    c31 = _mm256_fmadd_ps(av, b1, c31);
    av = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(av, b0, c40);
    c41 = _mm256_fmadd_ps(av, b1, c41);
    av = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(av, b0, c50);
    c51 = _mm256_fmadd_ps(av, b1, c51);
    a += MR;
    b += ldb;
  }

  const __m256 va = _mm256_set1_ps(alpha);
  if (rows == MR && cols == NR) {
    const __m256 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    if (beta == 0.0f) {
      for (int r = 0; r < MR; r++) {
        _mm256_storeu_ps(c + r * ldc, _mm256_mul_ps(va, acc[r][0]));
        _mm256_storeu_ps(c + r * ldc + 8, _mm256_mul_ps(va, acc[r][1]));
      }
    } else {
      const __m256 vb = _mm256_set1_ps(beta);
      for (int r = 0; r < MR; r++) {
        float* cr = c + r * ldc;
        _mm256_storeu_ps(cr, _mm256_fmadd_ps(vb, _mm256_loadu_ps(cr), _mm256_mul_ps(va, acc[r][0])));
        _mm256_storeu_ps(cr + 8, _mm256_fmadd_ps(vb, _mm256_loadu_ps(cr + 8), _mm256_mul_ps(va, acc[r][1])));
      }
    }
    return;
  }
  alignas(32) float tile[MR * NR];
  _mm256_store_ps(tile + 0 * NR, c00);
  _mm256_store_ps(tile + 0 * NR + 8, c01);
  _mm256_store_ps(tile + 1 * NR, c10);
  _mm256_store_ps(tile + 1 * NR + 8, c11);
  _mm256_store_ps(tile + 2 * NR, c20);
  _mm256_store_ps(tile + 2 * NR + 8, c21);
  _mm256_store_ps(tile + 3 * NR, c30);
  _mm256_store_ps(tile + 3 * NR + 8, c31);
  _mm256_store_ps(tile + 4 * NR, c40);
  _mm256_store_ps(tile + 4 * NR + 8, c41);
  _mm256_store_ps(tile + 5 * NR, c50);
  _mm256_store_ps(tile + 5 * NR + 8, c51);
  storeTile<NR>(tile, c, ldc, alpha, beta, rows, cols);
}

// B stored transposed (rs == 1): each panel column is a source row; 8x8 transposes turn 8 source rows
// into 8 panel rows of 8 floats.
void packBPanelTransposed(int64_t kc, const float* src, int64_t cs, float* dst) {
  int64_t p = 0;
  for (; p + 8 <= kc; p += 8) {
    for (int half = 0; half < 2; half++) {
      __m256 r[8];
      for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + (half * 8 + i) * cs + p);
      transpose8x8(r);
      for (int j = 0; j < 8; j++) _mm256_store_ps(dst + (p + j) * NR + half * 8, r[j]);
    }
  }
  for (; p < kc; p++) {
    for (int c = 0; c < NR; c++) dst[p * NR + c] = src[c * cs + p];
  }
}

// B stored row-major (cs == 1): `panels` full panels side by side, swept row by row so each source row
// is read as one contiguous run (rows are ldb apart; a per-panel sweep would touch a new line per row).
template <int Panels>
void packBPanelsRowMajor(int64_t kc, const float* src, int64_t rs, float* dst) {
  constexpr int64_t kAhead = 4;
  for (int64_t p = 0; p < kc; p++) {
    const float* row = src + p * rs;
    if (p + kAhead < kc) {
      for (int g = 0; g < Panels; g += 2) _mm_prefetch(reinterpret_cast<const char*>(row + kAhead * rs + g * NR), _MM_HINT_T0);
    }
    for (int g = 0; g < Panels; g++) {
      _mm256_store_ps(dst + g * NR * kc + p * NR, _mm256_loadu_ps(row + g * NR));
      _mm256_store_ps(dst + g * NR * kc + p * NR + 8, _mm256_loadu_ps(row + g * NR + 8));
    }
  }
}

// A stored transposed (rs == 1): k steps are source rows; sweep them in order, each contiguous run of
// MR floats going to its panel. Stores are 8 wide and overlap into the next k step's slot, which is
// written later, except at the last k step.
void packABlockTransposed(int64_t panels, int64_t kc, const float* src, int64_t cs, float* dst) {
  for (int64_t p = 0; p < kc; p++) {
    const float* row = src + p * cs;
    float* d = dst + p * MR;
    if (p + 1 < kc) {
      for (int64_t i = 0; i < panels; i++) {
        if (i + 2 < panels) {  // an 8-wide load stays inside the block's rows
          _mm256_storeu_ps(d + i * MR * kc, _mm256_loadu_ps(row + i * MR));
        } else {
          for (int r = 0; r < MR; r++) d[i * MR * kc + r] = row[i * MR + r];
        }
      }
    } else {
      for (int64_t i = 0; i < panels; i++) {
        for (int r = 0; r < MR; r++) d[i * MR * kc + r] = row[i * MR + r];
      }
    }
  }
}

void packA(int64_t mc, int64_t kc, const float* a, int64_t rs, int64_t cs, float* dst) {
  if (cs != 1) {
    const int64_t full = rs == 1 ? mc / MR : 0;
    if (full > 0) packABlockTransposed(full, kc, a, cs, dst);
    if (full * MR < mc) packAPanels<MR>(mc - full * MR, kc, a + full * MR * rs, rs, cs, dst + full * MR * kc);
    return;
  }
  int64_t i = 0;
  for (; i + MR <= mc; i += MR, dst += MR * kc) packAPanelRowMajor<MR>(kc, a + i * rs, rs, dst);
  if (i < mc) packAPanels<MR>(mc - i, kc, a + i * rs, rs, cs, dst);
}

void packB(int64_t kc, int64_t nc, const float* b, int64_t rs, int64_t cs, float* dst) {
  int64_t j = 0;
  if (cs == 1) {
    for (; j + 4 * NR <= nc; j += 4 * NR, dst += 4 * NR * kc) packBPanelsRowMajor<4>(kc, b + j, rs, dst);
    for (; j + NR <= nc; j += NR, dst += NR * kc) packBPanelsRowMajor<1>(kc, b + j, rs, dst);
  } else if (rs == 1) {
    for (; j + NR <= nc; j += NR, dst += NR * kc) packBPanelTransposed(kc, b + j * cs, cs, dst);
  }
  if (j < nc) packBPanels<NR>(kc, nc - j, b + j * cs, rs, cs, dst);
}

}  // namespace

GemmKernel avx2GemmKernel() {
  return GemmKernel{MR, NR, NR, 0, blocking::kKC, blocking::kMC, false, false, packA, packB, micro6x16, 0, nullptr};
}

Bf16Kernel avx2Bf16Widening() { return wideningBf16Kernel<MR, NR, micro6x16>(blocking::kKC); }

}  // namespace glam
