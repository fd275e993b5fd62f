// AVX-512 GEMM micro-kernels and packing; compiled with AVX-512 F/BW/DQ/VL flags and only called after
// the CPU and OS checks (isa.cc). Everything here has internal linkage except the table getter.
#include <immintrin.h>

#include <cstdint>

// GCC's _mm512_undefined_ps (inside the unpack intrinsics) trips this warning in its own header.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "isa.h"

namespace glam {
namespace {

#include "pack_impl.h"
#include "simd_impl.h"
#include "widening_impl.h"

constexpr int MR = 6;
constexpr int NV = 4;  // zmm vectors per tile row
constexpr int NR = 16 * NV;
// Tiles of one or two rows (few-row products reading B in place) are twice as wide: longer runs of each
// B row per page touched, which is what the memory-bound decode products need.
constexpr int kWideRows = 2;
constexpr int kWideNV = 8;
// k cuts and A block rows: the A block (144 x 512 floats, 288 KiB) and the B panel the micro-kernel walks
// (512 x 64 floats, 128 KiB) both stay in a 1 MiB L2.
constexpr int64_t kKC = 512;
constexpr int64_t kMC = 144;

// An R x (16·V) tile of C (R <= MR rows), the last vector masked to the columns that exist. Per k step:
// V loads of the B row (ldb floats apart: NR for a packed panel, the matrix's own stride when B is read
// in place), R broadcasts of A (the packed panel holds MR values per k step), R·V independent FMAs
// (6 x 4 = 24 accumulators cover the FMA latency on two pipes with room to spare). With `side`: its
// nextRows (<= kc) rows of `next` are fetched towards L2, spread evenly over the k steps so the memory
// requests do not come in bursts, and the B rows read are also stored to side->copyB as a packed panel.
// Each element of C is summed over p in order from zero with one FMA per step and stored as alpha·sum
// (+ beta·C by one more FMA): the same operations for every tile shape, so a row of C never depends on
// how many rows or columns were computed beside it.
template <int R, int V>
void tile(int64_t kc, const float* a, const float* b, int64_t ldb, float* c, int64_t ldc, float alpha, float beta,
          int cols, const MicroSide* side) {
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
  // Packed panels are read in sequence and the hardware prefetcher follows them; B read in place has
  // its rows ldb apart (a new page each when ldb >= 1024): the row 4 steps ahead is fetched to L1 (the
  // side fetch of the previous call has brought it towards L2).
  const int64_t ahead = ldb == NR ? 0 : 4 * ldb;
  if (side != nullptr) {
    const float* next = side->next;
    const int64_t nextLd = side->nextLd;
    const int64_t nextRows = side->nextRows < kc ? side->nextRows : kc;
    float* copy = side->copyB;
    int64_t due = 0;
#pragma GCC unroll 2
    for (int64_t p = 0; p < kc; p++) {
      __m512 bv[V];
#pragma GCC unroll 8
      for (int v = 0; v < V - 1; v++) bv[v] = _mm512_loadu_ps(b + 16 * v);
      bv[V - 1] = _mm512_maskz_loadu_ps(last, b + 16 * (V - 1));
#pragma GCC unroll 8
      for (int v = 0; v < V; v++) _mm_prefetch(reinterpret_cast<const char*>(b + ahead + 16 * v), _MM_HINT_T0);
      if (copy != nullptr) {
#pragma GCC unroll 8
        for (int v = 0; v < V; v++) _mm512_store_ps(copy + 16 * v, bv[v]);
        copy += NR;
      }
      due += nextRows;
      if (due >= kc) {
        due -= kc;
#pragma GCC unroll 8
        for (int v = 0; v < V; v++) _mm_prefetch(reinterpret_cast<const char*>(next + 16 * v), _MM_HINT_T1);
        next += nextLd;
      }
#pragma GCC unroll 8
      for (int r = 0; r < R; r++) {
        const __m512 av = _mm512_set1_ps(a[r]);
#pragma GCC unroll 8
        for (int v = 0; v < V; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
      }
      a += MR;
      b += ldb;
    }
  } else {
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; p++) {
      __m512 bv[V];
#pragma GCC unroll 8
      for (int v = 0; v < V - 1; v++) bv[v] = _mm512_loadu_ps(b + 16 * v);
      bv[V - 1] = _mm512_maskz_loadu_ps(last, b + 16 * (V - 1));
      if (ahead != 0) {
#pragma GCC unroll 8
        for (int v = 0; v < V; v++) _mm_prefetch(reinterpret_cast<const char*>(b + ahead + 16 * v), _MM_HINT_T0);
      }
      _mm_prefetch(reinterpret_cast<const char*>(a + 16 * MR), _MM_HINT_T0);
#pragma GCC unroll 8
      for (int r = 0; r < R; r++) {
        const __m512 av = _mm512_set1_ps(a[r]);
#pragma GCC unroll 8
        for (int v = 0; v < V; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
      }
      a += MR;
      b += ldb;
    }
  }
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

using TileFn = void (*)(int64_t, const float*, const float*, int64_t, float*, int64_t, float, float, int,
                        const MicroSide*);

template <int R>
struct TileRow {
  static constexpr TileFn fns[kWideNV] = {tile<R, 1>, tile<R, 2>, tile<R, 3>, tile<R, 4>,
                                          tile<R, R <= kWideRows ? 5 : 4>, tile<R, R <= kWideRows ? 6 : 4>,
                                          tile<R, R <= kWideRows ? 7 : 4>, tile<R, R <= kWideRows ? 8 : 4>};
};
template <int R>
constexpr TileFn TileRow<R>::fns[kWideNV];

const TileFn* const kTiles[MR] = {TileRow<1>::fns, TileRow<2>::fns, TileRow<3>::fns,
                                  TileRow<4>::fns, TileRow<5>::fns, TileRow<6>::fns};

// The micro-kernel entry: a tile of `rows` x `cols` (1..MR rows; up to NR columns, or 2·NR for one or
// two rows), run by the instance that computes only those rows and the vectors that hold those columns.
void micro(int64_t kc, const float* a, const float* b, int64_t ldb, float* c, int64_t ldc, float alpha,
           float beta, int rows, int cols, const MicroSide* side) {
  kTiles[rows - 1][(cols + 15) / 16 - 1](kc, a, b, ldb, c, ldc, alpha, beta, cols, side);
}

// Streaming few-row products (GemmKernel::stream): rows R <= kStreamRows of C over any number of columns,
// the running sums in `sums` (R rows of 16·vecs floats). Per k step: the B row's run is read once, in
// order, and each row's sums take one FMA per vector, as micro's accumulators do.
constexpr int kStreamRows = 4;
// B rows fetched ahead of the one being summed (to L2: the hardware prefetcher brings them on to L1).
constexpr int64_t kStreamAhead = 8;

// Q k steps of a stream call (Q rows of B from b, ldb apart): each sums vector is loaded once, takes Q FMAs in
// order of p and is stored once.
template <int R, int Q>
inline __attribute__((always_inline)) void streamSteps(const float* a, const float* b, int64_t ldb, int64_t vecs,
                                                      int64_t w, __mmask16 last, float* sums,
                                                      const float* ahead = nullptr, int64_t aheadRows = 0) {
  __m512 av[Q][R];
#pragma GCC unroll 8
  for (int q = 0; q < Q; q++) {
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) av[q][r] = _mm512_set1_ps(a[q * MR + r]);
  }
  for (int64_t v = 0; v < vecs; v++) {
    const __mmask16 m = v == vecs - 1 ? last : static_cast<__mmask16>(0xFFFF);
    __m512 bv[Q];
#pragma GCC unroll 8
    for (int q = 0; q < Q; q++) bv[q] = _mm512_maskz_loadu_ps(m, b + q * ldb + 16 * v);
    for (int64_t q = 0; q < aheadRows; q++) _mm_prefetch(reinterpret_cast<const char*>(ahead + q * ldb + 16 * v), _MM_HINT_T1);
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
      float* s = sums + r * w + 16 * v;
      __m512 t = _mm512_load_ps(s);
#pragma GCC unroll 8
      for (int q = 0; q < Q; q++) t = _mm512_fmadd_ps(av[q][r], bv[q], t);
      _mm512_store_ps(s, t);
    }
  }
}

template <int R>
void streamTile(int64_t kc, const float* a, const float* b, int64_t ldb, float* c, int64_t ldc, float alpha,
                float beta, int64_t cols, float* sums) {
  constexpr int Q = R <= 2 ? 8 : 4;  // k steps per pass over the sums: Q·R broadcasts stay in registers
  const int64_t vecs = (cols + 15) / 16;
  const int64_t w = vecs * 16 + 16;  // row stride of the sums: see streamSumsFloats (gemm.h)
  const __mmask16 last = laneMask(static_cast<int>(cols - 16 * (vecs - 1)));
  for (int64_t i = 0; i < R * w; i += 16) _mm512_store_ps(sums + i, _mm512_setzero_ps());
  int64_t p = 0;
  for (; p + Q <= kc; p += Q, b += Q * ldb, a += Q * MR) {
    // The rows kStreamAhead on are fetched a line of each per vector summed, spread over the pass: all
    // their lines in a burst before it streamed 1.1-1.4x slower (bench/decode_products.mjs, one row).
    const int64_t aheadRows = p + kStreamAhead < kc ? (kc - p - kStreamAhead < Q ? kc - p - kStreamAhead : Q) : 0;
    streamSteps<R, Q>(a, b, ldb, vecs, w, last, sums, b + kStreamAhead * ldb, aheadRows);
  }
  for (; p < kc; p++, b += ldb, a += MR) streamSteps<R, 1>(a, b, ldb, vecs, w, last, sums);
  storeStreamSums(sums, w, R, cols, c, ldc, alpha, beta);
}

void stream(int64_t kc, const float* a, const float* b, int64_t ldb, float* c, int64_t ldc, float alpha, float beta,
            int rows, int64_t cols, float* sums) {
  using StreamFn = void (*)(int64_t, const float*, const float*, int64_t, float*, int64_t, float, float, int64_t,
                            float*);
  static constexpr StreamFn fns[kStreamRows] = {streamTile<1>, streamTile<2>, streamTile<3>, streamTile<4>};
  fns[rows - 1](kc, a, b, ldb, c, ldc, alpha, beta, cols, sums);
}

// The transposed stream route's KC blocks (transposedStreamGroups, simd_impl.h): the 16 weight rows' next 64
// bytes transposed in registers (16x16 floats: 16 k steps), one FMA per k step into each row's sums.
template <int R>
void streamTransposedTile(int64_t k, int64_t kcMax, const float* a, const float* bt, int64_t ldb, float* c,
                          int64_t ldc, float alpha, float beta, int64_t cols) {
  auto block = [a, ldb](const float* rows, int live, int64_t pc, int64_t end, NextGroupFetch& fetch, __m512* acc)
                   __attribute__((always_inline)) {
    int64_t p = pc;
    for (; p + 16 <= end; p += 16) {
      fetch.step();
      __m512 col[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; i++) col[i] = i < live ? _mm512_loadu_ps(rows + i * ldb + p) : _mm512_setzero_ps();
      transpose16x16(col);
#pragma GCC unroll 16
      for (int q = 0; q < 16; q++) {
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(a[(p + q) * MR + r]), col[q], acc[r]);
      }
    }
    for (; p < end; p++) {
      alignas(64) float col[16] = {};
      for (int i = 0; i < live; i++) col[i] = rows[i * ldb + p];
      const __m512 v = _mm512_load_ps(col);
#pragma GCC unroll 4
      for (int r = 0; r < R; r++) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(a[p * MR + r]), v, acc[r]);
    }
  };
  transposedStreamGroups<R>(k, kcMax, bt, ldb, c, ldc, alpha, beta, cols, block);
}

void streamTransposed(int64_t k, int64_t kcMax, const float* a, const float* bt, int64_t ldb, float* c, int64_t ldc,
                      float alpha, float beta, int rows, int64_t cols) {
  using Fn = void (*)(int64_t, int64_t, const float*, const float*, int64_t, float*, int64_t, float, float, int64_t);
  static constexpr Fn fns[kStreamRows] = {streamTransposedTile<1>, streamTransposedTile<2>, streamTransposedTile<3>,
                                          streamTransposedTile<4>};
  fns[rows - 1](k, kcMax, a, bt, ldb, c, ldc, alpha, beta, cols);
}

void packA(int64_t mc, int64_t kc, const float* a, int64_t rs, int64_t cs, float* dst) {
  const int64_t full = mc / MR;
  if (cs == 1) {
    for (int64_t i = 0; i < full; i++) packAPanelRowMajor<MR>(kc, a + i * MR * rs, rs, dst + i * MR * kc);
  } else if (rs == 1) {
    // A stored transposed: each k step is a source row, MR contiguous values per panel.
    for (int64_t p = 0; p < kc; p++) {
      const float* row = a + p * cs;
      for (int64_t i = 0; i < full; i++) {
        _mm256_mask_storeu_ps(dst + i * MR * kc + p * MR, 0x3F, _mm256_maskz_loadu_ps(0x3F, row + i * MR));
      }
    }
  } else {
    packAPanels<MR>(full * MR, kc, a, rs, cs, dst);
  }
  if (full * MR < mc) packAPanels<MR>(mc - full * MR, kc, a + full * MR * rs, rs, cs, dst + full * MR * kc);
}

// B stored row-major (cs == 1): the chunk's panels side by side, swept row by row so each source row is
// read as one contiguous run; masked loads zero the columns past nc.
void packBRowMajor(int64_t kc, int64_t nc, const float* b, int64_t rs, float* dst) {
  const int64_t panels = (nc + NR - 1) / NR;
  constexpr int64_t kAhead = 4;
  for (int64_t p = 0; p < kc; p++) {
    const float* row = b + p * rs;
    if (p + kAhead < kc) {
      for (int64_t j = 0; j < nc; j += 16) _mm_prefetch(reinterpret_cast<const char*>(row + kAhead * rs + j), _MM_HINT_T0);
    }
    for (int64_t g = 0; g < panels; g++) {
      float* d = dst + g * NR * kc + p * NR;
      for (int v = 0; v < NV; v++) {
        const int64_t j = g * NR + 16 * v;
        const int left = nc - j > 16 ? 16 : static_cast<int>(nc - j);
        _mm512_store_ps(d + 16 * v, _mm512_maskz_loadu_ps(laneMask(left), row + j));
      }
    }
  }
}

// B stored transposed (rs == 1): panel column j is source row j (contiguous in k); 16x16 transposes
// turn 16 source rows into 16 panel rows of 16 floats.
void packBTransposed(int64_t kc, int64_t nc, const float* b, int64_t cs, float* dst) {
  for (int64_t j0 = 0; j0 < nc; j0 += NR, dst += NR * kc) {
    const int64_t cols = nc - j0 < NR ? nc - j0 : NR;
    for (int v = 0; v < NV; v++) {
      const int64_t c0 = 16 * v;
      const int n16 = cols - c0 >= 16 ? 16 : cols - c0 <= 0 ? 0 : static_cast<int>(cols - c0);
      int64_t p = 0;
      for (; p + 16 <= kc; p += 16) {
        __m512 r[16];
        for (int i = 0; i < 16; i++) {
          r[i] = i < n16 ? _mm512_loadu_ps(b + (j0 + c0 + i) * cs + p) : _mm512_setzero_ps();
        }
        transpose16x16(r);
        for (int q = 0; q < 16; q++) _mm512_store_ps(dst + (p + q) * NR + c0, r[q]);
      }
      for (; p < kc; p++) {
        for (int i = 0; i < 16; i++) dst[p * NR + c0 + i] = i < n16 ? b[(j0 + c0 + i) * cs + p] : 0.0f;
      }
    }
  }
}

void packB(int64_t kc, int64_t nc, const float* b, int64_t rs, int64_t cs, float* dst) {
  if (cs == 1) {
    packBRowMajor(kc, nc, b, rs, dst);
  } else if (rs == 1) {
    packBTransposed(kc, nc, b, cs, dst);
  } else {
    packBPanels<NR>(kc, nc, b, rs, cs, dst);
  }
}

}  // namespace

GemmKernel avx512GemmKernel() {
  return GemmKernel{MR,    NR,    16 * kWideNV, kWideRows,   kKC,   kMC, true, true,
                    packA, packB, micro,        kStreamRows, stream, streamTransposed};
}

Bf16Kernel avx512Bf16Widening() { return wideningBf16Kernel<MR, NR, micro>(kKC); }

}  // namespace glam
