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

// alpha·s (+ beta·C by one FMA) into 8 columns of C: every full tile and stream route stores so, and
// storeTile (pack_impl.h) the same per element.
inline void store8(__m256 s, float* c, float alpha, float beta) {
  __m256 t = _mm256_mul_ps(_mm256_set1_ps(alpha), s);
  if (beta != 0.0f) t = _mm256_fmadd_ps(_mm256_set1_ps(beta), _mm256_loadu_ps(c), t);
  _mm256_storeu_ps(c, t);
}

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

  if (rows == MR && cols == NR) {
    const __m256 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    for (int r = 0; r < MR; r++) {
      store8(acc[r][0], c + r * ldc, alpha, beta);
      store8(acc[r][1], c + r * ldc + 8, alpha, beta);
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

// Streaming few-row products (GemmKernel::stream and streamTransposed; the widening Bf16Kernel's too): up to
// kStreamRows rows of C against a weight matrix read once, in place, float32 or bf16 (widened as it is
// loaded: products of bf16 values are exact in float32). Each element of C is summed over p in order from
// zero, one FMA per step, per KC block, and stored as alpha·sum (+ beta·C by one FMA), as micro6x16 does:
// the routes change no bit, so a row of C never depends on how many rows the product has.
constexpr int kStreamRows = 4;

inline float load1(const float* p) { return *p; }
inline float load1(const uint16_t* p) { return bf16Widen(*p); }

// bf16 pairs: 8 32-bit lanes of two bf16 values each (p, p + 1) split into the widened first and second
// values, two integer operations and no shuffle.
inline __m256 firstOfPairs(__m256i v) { return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)); }
inline __m256 secondOfPairs(__m256i v) {
  return _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32(static_cast<int>(0xFFFF0000u))));
}

// Columns a row-major stream step takes per vector step: 8 floats, or 16 bf16 (one 32-byte load split into
// the even and the odd columns, whose sums are kept in that order: sums[j..j+7] even, [j+8..j+15] odd).
template <typename T>
constexpr int64_t kStreamChunk = sizeof(T) == 2 ? 16 : 8;

// Q k steps of a row-major stream call (Q rows of B from b, ldb apart) over `cols` columns: each sums
// vector is loaded once, takes Q FMAs in order of p and is stored once; columns past the last whole chunk
// one by one with the same operations.
template <int R, int Q, typename T>
inline __attribute__((always_inline)) void streamSteps(const float* a, const T* b, int64_t ldb, int64_t cols,
                                                      int64_t w, float* sums) {
  constexpr int64_t chunk = kStreamChunk<T>;
  constexpr int V = chunk / 8;
  __m256 av[Q][R];
#pragma GCC unroll 4
  for (int q = 0; q < Q; q++) {
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) av[q][r] = _mm256_broadcast_ss(a + q * MR + r);
  }
  const int64_t whole = cols / chunk * chunk;
  for (int64_t j = 0; j < whole; j += chunk) {
    __m256 bv[Q][V];
#pragma GCC unroll 4
    for (int q = 0; q < Q; q++) {
      if constexpr (V == 2) {
        const __m256i pairs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + q * ldb + j));
        bv[q][0] = firstOfPairs(pairs);
        bv[q][1] = secondOfPairs(pairs);
      } else {
        bv[q][0] = _mm256_loadu_ps(reinterpret_cast<const float*>(b + q * ldb + j));
      }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
#pragma GCC unroll 2
      for (int v = 0; v < V; v++) {
        float* s = sums + r * w + j + 8 * v;
        __m256 t = _mm256_load_ps(s);
#pragma GCC unroll 4
        for (int q = 0; q < Q; q++) t = _mm256_fmadd_ps(av[q][r], bv[q][v], t);
        _mm256_store_ps(s, t);
      }
    }
  }
  for (int64_t j = whole; j < cols; j++) {
    for (int r = 0; r < R; r++) {
      float t = sums[r * w + j];
      for (int q = 0; q < Q; q++) t = __builtin_fmaf(a[q * MR + r], load1(b + q * ldb + j), t);
      sums[r * w + j] = t;
    }
  }
}

// C[0:rows, 0:cols] = alpha·sums (+ beta·C by one FMA), the first `paired` columns of each row held as
// even/odd halves of 16 (kStreamChunk<uint16_t>) and put back in order.
inline void storeSums(const float* sums, int64_t w, int rows, int64_t cols, int64_t paired, float* c, int64_t ldc,
                      float alpha, float beta) {
  const int64_t whole = cols / 8 * 8;
  for (int r = 0; r < rows; r++) {
    float* cr = c + r * ldc;
    const float* sr = sums + r * w;
    int64_t j = 0;
    for (; j < paired; j += 16) {
      const __m256 even = _mm256_load_ps(sr + j), odd = _mm256_load_ps(sr + j + 8);
      const __m256 lo = _mm256_unpacklo_ps(even, odd), hi = _mm256_unpackhi_ps(even, odd);
      store8(_mm256_permute2f128_ps(lo, hi, 0x20), cr + j, alpha, beta);
      store8(_mm256_permute2f128_ps(lo, hi, 0x31), cr + j + 8, alpha, beta);
    }
    for (; j < whole; j += 8) store8(_mm256_load_ps(sr + j), cr + j, alpha, beta);
    for (; j < cols; j++) cr[j] = beta == 0.0f ? alpha * sr[j] : __builtin_fmaf(beta, cr[j], alpha * sr[j]);
  }
}

template <int R, typename T>
void streamTile(int64_t kc, const float* a, const T* b, int64_t ldb, float* c, int64_t ldc, float alpha, float beta,
                int64_t cols, float* sums) {
  constexpr int Q = 4;
  const int64_t w = (cols + 15) / 16 * 16 + 16;  // row stride of the sums: see streamSumsFloats (gemm.h)
  for (int64_t i = 0; i < R * w; i += 8) _mm256_store_ps(sums + i, _mm256_setzero_ps());
  // No software prefetch: Zen 3's hardware prefetchers follow the B rows' runs, and fetching rows ahead
  // measured no faster (up to 25% slower for 3 KiB rows).
  int64_t p = 0;
  for (; p + Q <= kc; p += Q, b += Q * ldb, a += Q * MR) streamSteps<R, Q>(a, b, ldb, cols, w, sums);
  for (; p < kc; p++, b += ldb, a += MR) streamSteps<R, 1>(a, b, ldb, cols, w, sums);
  const int64_t paired = sizeof(T) == 2 ? cols / 16 * 16 : 0;
  storeSums(sums, w, R, cols, paired, c, ldc, alpha, beta);
}

template <typename T>
void stream(int64_t kc, const float* a, const T* b, int64_t ldb, float* c, int64_t ldc, float alpha, float beta,
            int rows, int64_t cols, float* sums) {
  using StreamFn = void (*)(int64_t, const float*, const T*, int64_t, float*, int64_t, float, float, int64_t, float*);
  static constexpr StreamFn fns[kStreamRows] = {streamTile<1, T>, streamTile<2, T>, streamTile<3, T>,
                                                streamTile<4, T>};
  fns[rows - 1](kc, a, b, ldb, c, ldc, alpha, beta, cols, sums);
}

// acc[r] += a[p, r]·col for the R rows, one FMA each.
template <int R>
inline __attribute__((always_inline)) void addStep(const float* a, __m256 col, __m256 acc[R]) {
#pragma GCC unroll 4
  for (int r = 0; r < R; r++) acc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(a + r), col, acc[r]);
}

// B stored transposed (column j of B is row j of bt, k contiguous), as the tied-embedding logits x·Eᵀ:
// 8 columns at a time, the 8 weight rows' next 32 bytes transposed in registers as 8x8 32-bit values (8 k
// steps of float32, or 16 of bf16 pairs split after the transpose: one transpose per 32 bytes of each row
// either way), the sums of the R rows in registers, each KC block's from zero, stored in block order. The
// 8 rows are read front to back, as sequential streams that the hardware prefetchers follow. Measured no
// faster here (Zen 3): software prefetch, copying each group in address order, more groups of 8 at a
// time or several KC blocks side by side (more chains of FMAs, but more rows sharing L1 sets).
template <int R, typename T>
void streamTransposedTile(int64_t k, int64_t kcMax, const float* a, const T* bt, int64_t ldb, float* c, int64_t ldc,
                          float alpha, float beta, int64_t cols) {
  constexpr int64_t step = 32 / sizeof(T);
  const int64_t groups = cols / 8;
  for (int64_t g = 0; g < groups; g++) {
    const T* rows = bt + g * 8 * ldb;
    for (int64_t pc = 0; pc < k; pc += kcMax) {
      const int64_t end = pc + blocking::minI(kcMax, k - pc);
      __m256 acc[R];
#pragma GCC unroll 4
      for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
      int64_t p = pc;
      for (; p + step <= end; p += step) {
        __m256 col[8];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) col[i] = _mm256_loadu_ps(reinterpret_cast<const float*>(rows + i * ldb + p));
        transpose8x8(col);
#pragma GCC unroll 8
        for (int q = 0; q < 8; q++) {
          if constexpr (sizeof(T) == 2) {
            addStep<R>(a + (p + 2 * q) * MR, firstOfPairs(_mm256_castps_si256(col[q])), acc);
            addStep<R>(a + (p + 2 * q + 1) * MR, secondOfPairs(_mm256_castps_si256(col[q])), acc);
          } else {
            addStep<R>(a + (p + q) * MR, col[q], acc);
          }
        }
      }
      for (; p < end; p++) {
        const __m256 col = _mm256_setr_ps(load1(rows + p), load1(rows + ldb + p), load1(rows + 2 * ldb + p),
                                          load1(rows + 3 * ldb + p), load1(rows + 4 * ldb + p),
                                          load1(rows + 5 * ldb + p), load1(rows + 6 * ldb + p),
                                          load1(rows + 7 * ldb + p));
        addStep<R>(a + p * MR, col, acc);
      }
      const float blockBeta = pc == 0 ? beta : 1.0f;
#pragma GCC unroll 4
      for (int r = 0; r < R; r++) store8(acc[r], c + r * ldc + g * 8, alpha, blockBeta);
    }
  }
  for (int64_t j = groups * 8; j < cols; j++) {
    const T* row = bt + j * ldb;
    for (int64_t pc = 0; pc < k; pc += kcMax) {
      const int64_t end = pc + blocking::minI(kcMax, k - pc);
      float sums[R] = {};
      for (int64_t p = pc; p < end; p++) {
        for (int r = 0; r < R; r++) sums[r] = __builtin_fmaf(a[p * MR + r], load1(row + p), sums[r]);
      }
      storeSums(sums, 1, R, 1, 0, c + j, ldc, alpha, pc == 0 ? beta : 1.0f);
    }
  }
}

template <typename T>
void streamTransposed(int64_t k, int64_t kcMax, const float* a, const T* bt, int64_t ldb, float* c, int64_t ldc,
                      float alpha, float beta, int rows, int64_t cols) {
  using Fn = void (*)(int64_t, int64_t, const float*, const T*, int64_t, float*, int64_t, float, float, int64_t);
  static constexpr Fn fns[kStreamRows] = {streamTransposedTile<1, T>, streamTransposedTile<2, T>,
                                          streamTransposedTile<3, T>, streamTransposedTile<4, T>};
  fns[rows - 1](k, kcMax, a, bt, ldb, c, ldc, alpha, beta, cols);
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
  return GemmKernel{MR,    NR,        NR,          0,           blocking::kKC, blocking::kMC, false, false, packA,
                    packB, micro6x16, kStreamRows, stream<float>, streamTransposed<float>};
}

Bf16Kernel avx2Bf16Widening() {
  Bf16Kernel kern = wideningBf16Kernel<MR, NR, micro6x16>(blocking::kKC);
  kern.streamRows = kStreamRows;
  kern.stream = [](int64_t kc, const void* a, const uint16_t* b, int64_t ldb, float* c, int64_t ldc, float alpha,
                   float beta, int rows, int64_t cols, float* sums) {
    stream<uint16_t>(kc, static_cast<const float*>(a), b, ldb, c, ldc, alpha, beta, rows, cols, sums);
  };
  kern.streamTransposed = [](int64_t k, int64_t kcMax, const void* a, const uint16_t* bt, int64_t ldb, float* c,
                             int64_t ldc, float alpha, float beta, int rows, int64_t cols) {
    streamTransposed<uint16_t>(k, kcMax, static_cast<const float*>(a), bt, ldb, c, ldc, alpha, beta, rows, cols);
  };
  return kern;
}

}  // namespace glam
