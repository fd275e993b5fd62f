// bf16 products with vdpbf16ps (AVX512-BF16); compiled with AVX-512 and AVX512-BF16 flags and only called
// after the CPU and OS checks (isa.cc). Everything here has internal linkage except the table getter.
//
// k is packed in pairs: a packed A panel holds, per pair q, MR dwords (bf16 of A[i][2q] in the low half,
// of A[i][2q+1] in the high half), a packed B panel NR such dwords (B[2q][j], B[2q+1][j]); an odd last k
// step is paired with zeros. vdpbf16ps adds both products of a pair to a float32 lane, so a 6x64 tile
// takes 24 instructions per two k steps: twice the float32 rate.
#include <immintrin.h>

#include <cstdint>

#include "isa.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace glam {
namespace {

#include "pack_impl.h"
#include "simd_impl.h"

constexpr int MR = 6;
constexpr int NV = 4;
constexpr int NR = 16 * NV;
// Tiles of one or two rows reading B in place are wider, 256 and 128 columns: 512 and 256 contiguous
// bytes of each weight row per page touched (what a memory-bound decode product needs).
constexpr int kWideRows = 2;
constexpr int kWideNV = 16;
constexpr int wideVectors(int rows) { return rows == 1 ? 16 : rows <= kWideRows ? 8 : NV; }
constexpr int64_t kKC = 512;  // the same k cuts as the float32 AVX-512 kernel (even: pairs never straddle)

inline uint32_t pairOf(uint16_t lo, uint16_t hi) { return static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16); }

alignas(64) constexpr uint16_t kInterleaveLo[32] = {0, 32, 1, 33, 2,  34, 3,  35, 4,  36, 5,  37, 6,  38, 7,  39,
                                                    8, 40, 9, 41, 10, 42, 11, 43, 12, 44, 13, 45, 14, 46, 15, 47};
alignas(64) constexpr uint16_t kInterleaveHi[32] = {16, 48, 17, 49, 18, 50, 19, 51, 20, 52, 21, 53, 22, 54, 23, 55,
                                                    24, 56, 25, 57, 26, 58, 27, 59, 28, 60, 29, 61, 30, 62, 31, 63};

// The first `n` (0..32) 16-bit lanes.
inline __mmask32 wordMask(int64_t n) {
  return n >= 32 ? ~__mmask32{0} : n <= 0 ? __mmask32{0} : static_cast<__mmask32>((uint32_t{1} << n) - 1u);
}

// An R x (16·V) tile over ceil(kc/2) pairs. Each float32 lane gets, per pair in order from zero, one
// vdpbf16ps; the store is alpha·sum (+ beta·C by one FMA), as in the float32 kernels. B is a packed
// panel, or (InPlace) a row-major bf16 B read in place, rows ldb apart: each pair of rows is interleaved
// word by word in registers (vpermt2w), columns past `cols` and a missing last row read as zeros, and
// with copyB the interleaved pairs are also stored as a packed panel for the next row panels. With
// `side`, its rows (at most kc) of a bf16 B source (what a later call reads) are fetched towards L2,
// spread over the pairs.
template <int R, int V, bool InPlace>
void tile(int64_t kc, const void* aPacked, const void* bSrc, int64_t ldb, float* c, int64_t ldc, float alpha,
          float beta, int cols, const Bf16Side* side, uint32_t* copyB) {
  const uint32_t* a = static_cast<const uint32_t*>(aPacked);
  const uint32_t* b = static_cast<const uint32_t*>(bSrc);
  const uint16_t* row = static_cast<const uint16_t*>(bSrc);
  const int64_t pairs = (kc + 1) / 2;
  __m512 acc[R][V];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) {
#pragma GCC unroll 8
    for (int v = 0; v < V; v++) acc[r][v] = _mm512_setzero_ps();
  }
  const __mmask16 last = laneMask(cols - 16 * (V - 1));
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) {
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 16 * V - 1), _MM_HINT_T0);
  }
  const __m512i lo = _mm512_load_si512(kInterleaveLo);
  const __m512i hi = _mm512_load_si512(kInterleaveHi);
  __mmask32 words[(V + 1) / 2];
#pragma GCC unroll 8
  for (int h = 0; h < (V + 1) / 2; h++) words[h] = wordMask(cols - 32 * h);
  const uint16_t* next = side != nullptr ? side->next : nullptr;
  const int64_t nextRows = side != nullptr ? (side->nextRows < 2 * pairs ? side->nextRows : 2 * pairs) : 0;
  const int64_t nextLd = side != nullptr ? side->nextLd : 0;
  int64_t due = 0;
  // One pair step: B's pair q (in registers), the side fetch, the R x V dot products.
  auto step = [&](int64_t q, bool second) __attribute__((always_inline)) {
    __m512bh av[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) av[r] = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[q * MR + r]));
    if (InPlace) {
      // 32 columns at a time: two row segments interleaved into two vectors of pairs, used at once (so a
      // 256-column tile needs no more than its accumulators and a few registers).
#pragma GCC unroll 8
      for (int h = 0; h < (V + 1) / 2; h++) {
        const __m512i x0 = _mm512_maskz_loadu_epi16(words[h], row + 32 * h);
        const __m512i x1 = second ? _mm512_maskz_loadu_epi16(words[h], row + ldb + 32 * h) : _mm512_setzero_si512();
        const __m512bh b0 = (__m512bh)_mm512_permutex2var_epi16(x0, lo, x1);
        const __m512bh b1 = (__m512bh)_mm512_permutex2var_epi16(x0, hi, x1);
        if (copyB != nullptr) {
          _mm512_store_si512(copyB + q * NR + 32 * h, (__m512i)b0);
          if (2 * h + 1 < V) _mm512_store_si512(copyB + q * NR + 32 * h + 16, (__m512i)b1);
        }
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
          acc[r][2 * h] = _mm512_dpbf16_ps(acc[r][2 * h], av[r], b0);
          if (2 * h + 1 < V) acc[r][2 * h + 1] = _mm512_dpbf16_ps(acc[r][2 * h + 1], av[r], b1);
        }
      }
      // Rows 4 pairs ahead towards L1 (the side fetch of the previous block brought them towards L2).
#pragma GCC unroll 8
      for (int h = 0; h < (V + 1) / 2; h++) {
        _mm_prefetch(reinterpret_cast<const char*>(row + 8 * ldb + 32 * h), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(row + 9 * ldb + 32 * h), _MM_HINT_T0);
      }
      row += 2 * ldb;
    } else {
      __m512bh bv[V];
#pragma GCC unroll 4
      for (int v = 0; v < V; v++) bv[v] = (__m512bh)_mm512_load_si512(b + q * NR + 16 * v);
#pragma GCC unroll 8
      for (int r = 0; r < R; r++) {
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av[r], bv[v]);
      }
    }
    _mm_prefetch(reinterpret_cast<const char*>(a + q * MR + 16 * MR), _MM_HINT_T0);
    if (nextRows > 0) {
      due += nextRows;
      while (due >= pairs) {  // up to two source rows per pair step
        due -= pairs;
        // A row of the next source: 16·V bf16 columns, V/2 cache lines (rounded up).
#pragma GCC unroll 8
        for (int l = 0; l < (V + 1) / 2; l++) _mm_prefetch(reinterpret_cast<const char*>(next + 32 * l), _MM_HINT_T1);
        next += nextLd;
      }
    }
  };
  const int64_t full = kc / 2;
#pragma GCC unroll 2
  for (int64_t q = 0; q < full; q++) step(q, true);
  if (full < pairs) step(full, false);  // an odd last k step, paired with zeros
  const __m512 va = _mm512_set1_ps(alpha);
  const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) {
#pragma GCC unroll 8
    for (int v = 0; v < V; v++) {
      const __mmask16 m = v == V - 1 ? last : static_cast<__mmask16>(0xFFFF);
      store16(c + r * ldc + 16 * v, m, acc[r][v], va, vb, beta);
    }
  }
}

using TileFn = void (*)(int64_t, const void*, const void*, int64_t, float*, int64_t, float, float, int,
                        const Bf16Side*, uint32_t*);

// Instances per row count: V = 1..4 for packed B, and in place up to wideVectors(R) (16 for one row, 8 for
// two); slots past a row count's widest tile repeat it (the driver never asks for more columns).
template <int R, bool InPlace>
struct TileRow {
  static constexpr int kMax = InPlace ? wideVectors(R) : NV;
  template <int V>
  static constexpr TileFn at() {
    return tile<R, (V < kMax ? V : kMax), InPlace>;
  }
  static constexpr TileFn fns[kWideNV] = {at<1>(),  at<2>(),  at<3>(),  at<4>(),  at<5>(),  at<6>(),
                                          at<7>(),  at<8>(),  at<9>(),  at<10>(), at<11>(), at<12>(),
                                          at<13>(), at<14>(), at<15>(), at<16>()};
};
template <int R, bool InPlace>
constexpr TileFn TileRow<R, InPlace>::fns[kWideNV];

const TileFn* const kTiles[MR] = {TileRow<1, false>::fns, TileRow<2, false>::fns, TileRow<3, false>::fns,
                                  TileRow<4, false>::fns, TileRow<5, false>::fns, TileRow<6, false>::fns};
const TileFn* const kTilesInPlace[MR] = {TileRow<1, true>::fns, TileRow<2, true>::fns, TileRow<3, true>::fns,
                                         TileRow<4, true>::fns, TileRow<5, true>::fns, TileRow<6, true>::fns};

void micro(int64_t kc, const void* a, const void* b, float* c, int64_t ldc, float alpha, float beta, int rows,
           int cols, const Bf16Side* side) {
  kTiles[rows - 1][(cols + 15) / 16 - 1](kc, a, b, NR, c, ldc, alpha, beta, cols, side, nullptr);
}

void microInPlace(int64_t kc, const void* a, const uint16_t* b, int64_t ldb, float* c, int64_t ldc, float alpha,
                  float beta, int rows, int cols, const Bf16Side* side, void* copyB) {
  kTilesInPlace[rows - 1][(cols + 15) / 16 - 1](kc, a, b, ldb, c, ldc, alpha, beta, cols, side,
                                                static_cast<uint32_t*>(copyB));
}

// Streaming few-row products (Bf16Kernel::stream): rows R <= kStreamRows of C over any number of columns,
// running sums in `sums` (R rows of 32·groups floats). Per pair step each pair of B rows is read once, in
// order, 32 columns at a time interleaved as the in-place tile interleaves them, and each row's sums take
// one vdpbf16ps per vector: the tile's operations, element by element.
constexpr int kStreamRows = 4;
constexpr int64_t kStreamAheadRows = 8;  // B rows fetched ahead (to L2) of the pair being summed

template <int R>
void streamTile(int64_t kc, const void* aPacked, const uint16_t* b, int64_t ldb, float* c, int64_t ldc, float alpha,
                float beta, int64_t cols, float* sums) {
  const uint32_t* a = static_cast<const uint32_t*>(aPacked);
  const int64_t pairs = (kc + 1) / 2, full = kc / 2;
  const int64_t groups = (cols + 31) / 32;
  const int64_t w = groups * 32 + 16;  // row stride of the sums: see streamSumsFloats (gemm.h)
  for (int64_t i = 0; i < R * w; i += 16) _mm512_store_ps(sums + i, _mm512_setzero_ps());
  const __m512i lo = _mm512_load_si512(kInterleaveLo);
  const __m512i hi = _mm512_load_si512(kInterleaveHi);
  // QP pairs per pass over the sums (each sums vector loaded and stored once per pass: stores between the
  // loads of weights slow the stream from memory), their R·QP broadcasts in registers.
  constexpr int QP = R <= 2 ? 4 : 2;
  for (int64_t q0 = 0; q0 < pairs; q0 += QP) {
    const int n = pairs - q0 < QP ? static_cast<int>(pairs - q0) : QP;
    const uint16_t* r0 = b + 2 * q0 * ldb;
    // The rows kStreamAheadRows on are fetched a line of each per group summed: spread over the pass, not
    // in a burst (as the float32 stream does).
    const uint16_t* ahead = r0 + kStreamAheadRows * ldb;
    const int64_t left = kc - 2 * q0 - kStreamAheadRows;
    const int64_t aheadRows = left <= 0 ? 0 : (left < 2 * n ? left : 2 * n);
    __m512bh av[QP][R];
#pragma GCC unroll 4
    for (int t = 0; t < QP; t++) {
#pragma GCC unroll 4
      for (int r = 0; r < R; r++) av[t][r] = (__m512bh)_mm512_set1_epi32(t < n ? static_cast<int>(a[(q0 + t) * MR + r]) : 0);
    }
    for (int64_t g = 0; g < groups; g++) {
      const __mmask32 words = wordMask(cols - 32 * g);
      for (int64_t q = 0; q < aheadRows; q++) _mm_prefetch(reinterpret_cast<const char*>(ahead + q * ldb + 32 * g), _MM_HINT_T1);
      __m512 s0[R], s1[R];
#pragma GCC unroll 4
      for (int r = 0; r < R; r++) {
        s0[r] = _mm512_load_ps(sums + r * w + 32 * g);
        s1[r] = _mm512_load_ps(sums + r * w + 32 * g + 16);
      }
#pragma GCC unroll 4
      for (int t = 0; t < QP; t++) {
        if (t >= n) break;
        const uint16_t* rt = r0 + 2 * t * ldb;
        const bool second = q0 + t < full;
        const __m512i x0 = _mm512_maskz_loadu_epi16(words, rt + 32 * g);
        const __m512i x1 = second ? _mm512_maskz_loadu_epi16(words, rt + ldb + 32 * g) : _mm512_setzero_si512();
        const __m512bh b0 = (__m512bh)_mm512_permutex2var_epi16(x0, lo, x1);
        const __m512bh b1 = (__m512bh)_mm512_permutex2var_epi16(x0, hi, x1);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
          s0[r] = _mm512_dpbf16_ps(s0[r], av[t][r], b0);
          s1[r] = _mm512_dpbf16_ps(s1[r], av[t][r], b1);
        }
      }
#pragma GCC unroll 4
      for (int r = 0; r < R; r++) {
        _mm512_store_ps(sums + r * w + 32 * g, s0[r]);
        _mm512_store_ps(sums + r * w + 32 * g + 16, s1[r]);
      }
    }
  }
  storeStreamSums(sums, w, R, cols, c, ldc, alpha, beta);
}

void stream(int64_t kc, const void* a, const uint16_t* b, int64_t ldb, float* c, int64_t ldc, float alpha, float beta,
            int rows, int64_t cols, float* sums) {
  using StreamFn = void (*)(int64_t, const void*, const uint16_t*, int64_t, float*, int64_t, float, float, int64_t,
                            float*);
  static constexpr StreamFn fns[kStreamRows] = {streamTile<1>, streamTile<2>, streamTile<3>, streamTile<4>};
  fns[rows - 1](kc, a, b, ldb, c, ldc, alpha, beta, cols, sums);
}

// The transposed stream route with bf16 weights (transposedStreamGroups, simd_impl.h). Pair q of column j is
// the dword at q of row j, so a 16x16 dword transpose of the 16 rows' next 64 bytes gives 16 pair vectors
// laid out as a packed panel's: 32 k steps per transpose, one vdpbf16ps per pair in order (an odd last k
// step paired with zero), as the tiles sum.
template <int R>
void streamTransposedTile(int64_t k, int64_t kcMax, const uint32_t* a, const uint16_t* bt, int64_t ldb, float* c,
                          int64_t ldc, float alpha, float beta, int64_t cols) {
  auto block = [a, ldb](const uint16_t* rows, int live, int64_t pc, int64_t end, NextGroupFetch& fetch, __m512* acc)
                   __attribute__((always_inline)) {
    auto pairStep = [&](int64_t p, __m512 pairs) __attribute__((always_inline)) {
#pragma GCC unroll 4
      for (int r = 0; r < R; r++) {
        const __m512bh av = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[p / 2 * MR + r]));
        acc[r] = _mm512_dpbf16_ps(acc[r], av, (__m512bh)pairs);
      }
    };
    int64_t p = pc;
    for (; p + 32 <= end; p += 32) {
      fetch.step();
      __m512 col[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; i++) {
        col[i] = i < live ? _mm512_loadu_ps(reinterpret_cast<const float*>(rows + i * ldb + p)) : _mm512_setzero_ps();
      }
      transpose16x16(col);
#pragma GCC unroll 16
      for (int t = 0; t < 16; t++) pairStep(p + 2 * t, col[t]);
    }
    for (; p < end; p += 2) {
      alignas(64) uint32_t pair[16] = {};
      for (int i = 0; i < live; i++) pair[i] = pairOf(rows[i * ldb + p], p + 1 < end ? rows[i * ldb + p + 1] : 0);
      pairStep(p, _mm512_load_ps(reinterpret_cast<const float*>(pair)));
    }
  };
  transposedStreamGroups<R>(k, kcMax, bt, ldb, c, ldc, alpha, beta, cols, block);
}

void streamTransposed(int64_t k, int64_t kcMax, const void* a, const uint16_t* bt, int64_t ldb, float* c, int64_t ldc,
                      float alpha, float beta, int rows, int64_t cols) {
  using Fn = void (*)(int64_t, int64_t, const uint32_t*, const uint16_t*, int64_t, float*, int64_t, float, float,
                      int64_t);
  static constexpr Fn fns[kStreamRows] = {streamTransposedTile<1>, streamTransposedTile<2>, streamTransposedTile<3>,
                                          streamTransposedTile<4>};
  fns[rows - 1](k, kcMax, static_cast<const uint32_t*>(a), bt, ldb, c, ldc, alpha, beta, cols);
}

// A: per pair q of each MR-row panel, MR dwords; rows past mc and the odd last step are zeros. Scalar: A
// (activations) is m x k against the m x n x k of the product.
void packA(int64_t mc, int64_t kc, const float* a, int64_t rs, int64_t cs, void* dstv) {
  uint32_t* dst = static_cast<uint32_t*>(dstv);
  const int64_t pairs = (kc + 1) / 2;
  for (int64_t i0 = 0; i0 < mc; i0 += MR, dst += MR * pairs) {
    const int64_t rows = mc - i0 < MR ? mc - i0 : MR;
    const float* src = a + i0 * rs;
    for (int64_t q = 0; q < pairs; q++) {
      for (int r = 0; r < MR; r++) {
        uint16_t lo = 0, hi = 0;
        if (r < rows) {
          lo = bf16Round(src[r * rs + 2 * q * cs]);
          if (2 * q + 1 < kc) hi = bf16Round(src[r * rs + (2 * q + 1) * cs]);
        }
        dst[q * MR + r] = pairOf(lo, hi);
      }
    }
  }
}

// B row-major (cs == 1): rows 2q and 2q+1 interleaved word by word (vpermt2w), 32 columns per pair of
// loads; masked loads zero the columns past nc and a missing row 2q+1.
void packBRowMajor(int64_t kc, int64_t nc, const uint16_t* b, int64_t rs, uint32_t* dst) {
  const __m512i lo = _mm512_load_si512(kInterleaveLo);
  const __m512i hi = _mm512_load_si512(kInterleaveHi);
  const int64_t pairs = (kc + 1) / 2;
  const int64_t panels = (nc + NR - 1) / NR;
  constexpr int64_t kAhead = 8;  // pairs ahead: the rows are ldb apart, a new page each for wide B
  for (int64_t q = 0; q < pairs; q++) {
    const uint16_t* r0 = b + 2 * q * rs;
    const uint16_t* r1 = r0 + rs;
    const bool second = 2 * q + 1 < kc;
    if (q + kAhead < pairs) {
      for (int64_t j = 0; j < nc; j += 32) {
        _mm_prefetch(reinterpret_cast<const char*>(r0 + 2 * kAhead * rs + j), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(r1 + 2 * kAhead * rs + j), _MM_HINT_T0);
      }
    }
    for (int64_t g = 0; g < panels; g++) {
      uint32_t* d = dst + g * NR * pairs + q * NR;
      for (int h = 0; h < 2; h++) {
        const int64_t j = g * NR + 32 * h;
        const int64_t left = nc - j;
        const __mmask32 m = wordMask(left);
        const __m512i x0 = _mm512_maskz_loadu_epi16(m, r0 + j);
        const __m512i x1 = second ? _mm512_maskz_loadu_epi16(m, r1 + j) : _mm512_setzero_si512();
        _mm512_store_si512(d + 32 * h, _mm512_permutex2var_epi16(x0, lo, x1));
        _mm512_store_si512(d + 32 * h + 16, _mm512_permutex2var_epi16(x0, hi, x1));
      }
    }
  }
}

// B transposed (rs == 1): column j of op(B) is source row j, contiguous in k, so pair q of column j is
// the dword at q of that row; 16x16 dword transposes turn 16 rows into 16 pair rows of a panel.
void packBTransposed(int64_t kc, int64_t nc, const uint16_t* b, int64_t cs, uint32_t* dst) {
  const int64_t pairs = (kc + 1) / 2;
  const int64_t fullPairs = kc / 2;  // pairs with both halves inside k
  for (int64_t j0 = 0; j0 < nc; j0 += NR, dst += NR * pairs) {
    const int64_t cols = nc - j0 < NR ? nc - j0 : NR;
    for (int v = 0; v < NV; v++) {
      const int64_t c0 = 16 * v;
      const int n16 = cols - c0 >= 16 ? 16 : cols - c0 <= 0 ? 0 : static_cast<int>(cols - c0);
      int64_t q = 0;
      for (; q + 16 <= fullPairs; q += 16) {
        __m512 r[16];
        for (int i = 0; i < 16; i++) {
          r[i] = i < n16 ? _mm512_loadu_ps(reinterpret_cast<const float*>(b + (j0 + c0 + i) * cs + 2 * q))
                         : _mm512_setzero_ps();
        }
        transpose16x16(r);
        for (int t = 0; t < 16; t++) _mm512_store_ps(reinterpret_cast<float*>(dst + (q + t) * NR + c0), r[t]);
      }
      for (; q < pairs; q++) {
        for (int i = 0; i < 16; i++) {
          uint16_t lo = 0, hi = 0;
          if (i < n16) {
            const uint16_t* col = b + (j0 + c0 + i) * cs;
            lo = col[2 * q];
            if (2 * q + 1 < kc) hi = col[2 * q + 1];
          }
          dst[q * NR + c0 + i] = pairOf(lo, hi);
        }
      }
    }
  }
}

void packBGeneral(int64_t kc, int64_t nc, const uint16_t* b, int64_t rs, int64_t cs, uint32_t* dst) {
  const int64_t pairs = (kc + 1) / 2;
  for (int64_t j0 = 0; j0 < nc; j0 += NR, dst += NR * pairs) {
    const int64_t cols = nc - j0 < NR ? nc - j0 : NR;
    for (int64_t q = 0; q < pairs; q++) {
      for (int c = 0; c < NR; c++) {
        uint16_t lo = 0, hi = 0;
        if (c < cols) {
          lo = b[2 * q * rs + (j0 + c) * cs];
          if (2 * q + 1 < kc) hi = b[(2 * q + 1) * rs + (j0 + c) * cs];
        }
        dst[q * NR + c] = pairOf(lo, hi);
      }
    }
  }
}

// B float32, rounded to bf16 as it is packed (bf16 products of float32 operands: training). Scalar for
// any layout; the row-major case rounds 16 columns of two rows at a time and merges them into pairs.
void packBFloat(int64_t kc, int64_t nc, const float* b, int64_t rs, int64_t cs, void* dstv) {
  uint32_t* dst = static_cast<uint32_t*>(dstv);
  const int64_t pairs = (kc + 1) / 2;
  // Nearest-even rounding of float32 lanes to bf16 bits kept in the upper half (NaN made quiet).
  const __m512i bias = _mm512_set1_epi32(0x7FFF);
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i absMask = _mm512_set1_epi32(0x7FFFFFFF);
  const __m512i inf = _mm512_set1_epi32(0x7F800000);
  const __m512i quiet = _mm512_set1_epi32(0x00400000);
  const __m512i upper = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
  auto round16 = [&](__m512i u) __attribute__((always_inline)) {
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, absMask), inf);
    const __m512i r = _mm512_add_epi32(_mm512_add_epi32(u, bias), _mm512_and_si512(_mm512_srli_epi32(u, 16), one));
    return _mm512_and_si512(_mm512_mask_or_epi32(r, nan, u, quiet), upper);
  };
  for (int64_t j0 = 0; j0 < nc; j0 += NR, dst += NR * pairs) {
    const int64_t cols = nc - j0 < NR ? nc - j0 : NR;
    for (int64_t q = 0; q < pairs; q++) {
      const bool second = 2 * q + 1 < kc;
      if (cs == 1) {
        for (int v = 0; v < NV; v++) {
          const __mmask16 m = laneMask(static_cast<int>(cols - 16 * v));
          const float* r0 = b + 2 * q * rs + j0 + 16 * v;
          const __m512i lo = round16(_mm512_castps_si512(_mm512_maskz_loadu_ps(m, r0)));
          const __m512i hi = second ? round16(_mm512_castps_si512(_mm512_maskz_loadu_ps(m, r0 + rs)))
                                    : _mm512_setzero_si512();
          _mm512_store_si512(dst + q * NR + 16 * v, _mm512_or_si512(_mm512_srli_epi32(lo, 16), hi));
        }
      } else {
        for (int c = 0; c < NR; c++) {
          uint16_t lo = 0, hi = 0;
          if (c < cols) {
            lo = bf16Round(b[2 * q * rs + (j0 + c) * cs]);
            if (second) hi = bf16Round(b[(2 * q + 1) * rs + (j0 + c) * cs]);
          }
          dst[q * NR + c] = pairOf(lo, hi);
        }
      }
    }
  }
}

void packB(int64_t kc, int64_t nc, const uint16_t* b, int64_t rs, int64_t cs, void* dstv) {
  uint32_t* dst = static_cast<uint32_t*>(dstv);
  if (cs == 1) {
    packBRowMajor(kc, nc, b, rs, dst);
  } else if (rs == 1) {
    packBTransposed(kc, nc, b, cs, dst);
  } else {
    packBGeneral(kc, nc, b, rs, cs, dst);
  }
}

}  // namespace

Bf16Kernel avx512Bf16Dot() {
  return Bf16Kernel{"vdpbf16ps", MR,    NR,         16 * wideVectors(kWideRows), kWideRows, 16 * wideVectors(1), kKC, 2, 2,
                    packA,       packB, packBFloat, micro,        microInPlace, kStreamRows, stream, streamTransposed};
}

}  // namespace glam
