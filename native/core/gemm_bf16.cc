// bf16 product driver. One route for every m, tile-major: A is packed once over all of k (rounded to
// bf16); the columns are cut into nr-wide tiles, runs of which the threads claim; for each tile and KC
// block, B is packed into a per-thread panel (kept in L1/L2) and every row panel of A runs over it. While a
// block computes, its micro-kernel calls fetch the source of the block the thread packs next towards L2,
// spread over them, so a decode product (a few rows against a large weight matrix, bound by memory
// bandwidth) streams the weights at close to the memory's rate: half the bytes of float32 weights.
// k is cut at multiples of the kernel's KC whatever m is, and each element is summed and stored the same
// way by every tile: a row of C never depends on the number of rows, nor on the thread count.
#include "gemm_bf16.h"

#include <algorithm>

#include "blocking.h"
#include "gemm.h"
#include "isa.h"
#include "threadpool.h"

namespace glam {
namespace {

using blocking::ceilDiv;
using blocking::kMinFlopsPerThread;
using blocking::minI;
using blocking::productWork;
using blocking::Scratch;

thread_local Scratch tlsA16;
thread_local Scratch tlsB16;

// Bytes of a packed block of `units` rows (or columns) over kc steps.
int64_t packedBytes(const Bf16Kernel& kern, int64_t units, int64_t kc) {
  return units * ceilDiv(kc, kern.kStep) * kern.kStep * kern.elemBytes;
}

// A (m x k) packed over all of k into `dst`: KC block pb starts at packedBytes(rowPanels·mr, pb·KC).
void packAllA(const Bf16Kernel& kern, int64_t m, int64_t k, const float* a, int64_t rsA, int64_t csA, char* dst) {
  const int64_t rows = ceilDiv(m, kern.mr) * kern.mr;
  for (int64_t pc = 0; pc < k; pc += kern.kc) {
    kern.packA(m, minI(kern.kc, k - pc), a + pc * csA, rsA, csA, dst + packedBytes(kern, rows, pc));
  }
}

char* scratchBytes(Scratch& s, int64_t bytes) { return reinterpret_cast<char*>(s.get(ceilDiv(bytes, 4))); }

// Whether the micro-kernel reads B in place: bf16 weights stored row-major, and a kernel that can.
bool readsInPlace(const Bf16Kernel& kern, const float* bf, int64_t csB) {
  return bf == nullptr && csB == 1 && kern.microInPlace != nullptr;
}

// Columns per tile: wide when few rows read B in place.
int64_t tileWidth(const Bf16Kernel& kern, int64_t m, bool inPlace) {
  if (!inPlace || m > kern.wideRows) return kern.nr;
  return m == 1 ? kern.nrOneRow : kern.nrWide;
}

// Columns [j0, j1) (tiles of tileWidth columns from j0) of C[m x n] = alpha·A·B + beta·C, A packed by
// packAllA.
void runTiles(const Bf16Kernel& kern, int64_t m, int64_t k, const char* packedA, const uint16_t* b, const float* bf,
              int64_t rsB, int64_t csB, int64_t j0, int64_t j1, float* c, int64_t ldc, float alpha, float beta) {
  // A float32 B is always packed (rounded); the side fetches below are for bf16 weights.
  const bool inPlace = readsInPlace(kern, bf, csB);
  const int64_t mr = kern.mr, nr = tileWidth(kern, m, inPlace), kcMax = kern.kc;
  const int64_t rowPanels = ceilDiv(m, mr);
  const int64_t kBlocks = ceilDiv(k, kcMax);
  char* packedB = scratchBytes(tlsB16, packedBytes(kern, kern.nr, kcMax));
  for (int64_t j = j0; j < j1; j += nr) {
    const int cols = static_cast<int>(minI(nr, j1 - j));
    for (int64_t pb = 0; pb < kBlocks; pb++) {
      const int64_t pc = pb * kcMax;
      const int64_t kc = minI(kcMax, k - pc);
      // A row-major B is read in place by the first row panel (which copies it for the others) when the
      // kernel can: one pass over the weights, no separate packing.
      if (bf != nullptr) {
        kern.packBFloat(kc, cols, bf + pc * rsB + j * csB, rsB, csB, packedB);
      } else if (!inPlace) {
        kern.packB(kc, cols, b + pc * rsB + j * csB, rsB, csB, packedB);
      }
      // The source the next packing reads (row-major B): this tile's next KC block, else the next tile's first.
      Bf16Side next;
      if (bf == nullptr && csB == 1 && pb + 1 < kBlocks) {
        next = Bf16Side{b + (pc + kcMax) * rsB + j, rsB, minI(kcMax, k - pc - kcMax)};
      } else if (bf == nullptr && csB == 1 && j + nr < j1) {
        next = Bf16Side{b + j + nr, rsB, minI(kcMax, k)};
      }
      const int64_t perPanel = ceilDiv(next.nextRows, rowPanels);
      const char* aBlock = packedA + packedBytes(kern, rowPanels * mr, pc);
      for (int64_t ip = 0; ip < rowPanels; ip++) {
        Bf16Side side;
        side.nextRows = std::max<int64_t>(0, minI(perPanel, next.nextRows - ip * perPanel));
        side.next = side.nextRows > 0 ? next.next + ip * perPanel * rsB : nullptr;
        side.nextLd = rsB;
        const char* aPanel = aBlock + packedBytes(kern, ip * mr, kc);
        float* cTile = c + ip * mr * ldc + j;
        const int rows = static_cast<int>(minI(mr, m - ip * mr));
        const float blockBeta = pb == 0 ? beta : 1.0f;
        if (inPlace && ip == 0) {
          kern.microInPlace(kc, aPanel, b + pc * rsB + j, rsB, cTile, ldc, alpha, blockBeta, rows, cols, &side,
                            rowPanels > 1 ? packedB : nullptr);
        } else {
          kern.micro(kc, aPanel, packedB, cTile, ldc, alpha, blockBeta, rows, cols, &side);
        }
      }
    }
  }
}

// Whether a product of m rows takes the kernel's stream route: few rows, bf16 weights stored row-major.
bool streams(const Bf16Kernel& kern, int64_t m, const float* bf, int64_t csB) {
  return bf == nullptr && csB == 1 && kern.stream != nullptr && m <= kern.streamRows;
}

// The same for the transposed stream route: few rows, bf16 weights stored transposed (the tied logits).
bool streamsTransposed(const Bf16Kernel& kern, int64_t m, const float* bf, int64_t rsB, int64_t csB) {
  return bf == nullptr && rsB == 1 && csB != 1 && kern.streamTransposed != nullptr && m <= kern.streamRows;
}

thread_local Scratch tlsStreamSums16;

// Columns [j0, j1) of C[m x n] = alpha·A·B + beta·C through kern.stream (streams() holds), A packed by
// packAllA: runs of columns as long as the sums allow, each KC block reading every B row's run once.
void streamRange(const Bf16Kernel& kern, int64_t m, int64_t k, const char* packedA, const uint16_t* b, int64_t rsB,
                 int64_t j0, int64_t j1, float* c, int64_t ldc, float alpha, float beta) {
  const int64_t run = streamRunCols(m);
  float* sums = tlsStreamSums16.get(streamSumsFloats(m, run));
  const int64_t rows = ceilDiv(m, kern.mr) * kern.mr;
  for (int64_t j = j0; j < j1; j += run) {
    const int64_t cols = minI(run, j1 - j);
    for (int64_t pc = 0; pc < k; pc += kern.kc) {
      kern.stream(minI(kern.kc, k - pc), packedA + packedBytes(kern, rows, pc), b + pc * rsB + j, rsB, c + j, ldc,
                  alpha, pc == 0 ? beta : 1.0f, static_cast<int>(m), cols, sums);
    }
  }
}

// One product on up to maxThreads threads.
void gemmBf16On(const Bf16Call& g, int maxThreads) {
  if (g.m == 0 || g.n == 0) return;
  if (g.k == 0 || g.alpha == 0.0f) {
    scaleRows(g.c, g.m, g.n, g.ldc, g.beta);
    return;
  }
  const Bf16Kernel& kern = currentBf16();
  const int64_t width1 = tileWidth(kern, g.m, readsInPlace(kern, g.bf, g.csB));
  const int64_t tiles = ceilDiv(g.n, width1);
  const double work = productWork(g.m, g.n, g.k, sizeof(uint16_t));
  const int nt = std::min(maxThreads, threadsFor(work, kMinFlopsPerThread, tiles));
  char* packedA = scratchBytes(tlsA16, packedBytes(kern, ceilDiv(g.m, kern.mr) * kern.mr, g.k));
  packAllA(kern, g.m, g.k, g.a, g.rsA, g.csA, packedA);
  if (streams(kern, g.m, g.bf, g.csB)) {
    const int64_t run = streamClaimCols(g.n, g.m, nt, 32);
    forEachUnit(nt, ceilDiv(g.n, run), [&](int64_t u) {
      streamRange(kern, g.m, g.k, packedA, g.b, g.rsB, u * run, minI(g.n, (u + 1) * run), g.c, g.ldc, g.alpha,
                  g.beta);
    });
    return;
  }
  if (streamsTransposed(kern, g.m, g.bf, g.rsB, g.csB)) {
    // bf16 weights stored transposed (the tied-embedding logits), read in place: runs of columns per claim.
    const int64_t run = transposedRunCols(g.n, nt);
    forEachUnit(nt, ceilDiv(g.n, run), [&](int64_t u) {
      const int64_t j0 = u * run;
      kern.streamTransposed(g.k, kern.kc, packedA, g.b + j0 * g.csB, g.csB, g.c + j0, g.ldc, g.alpha, g.beta,
                            static_cast<int>(g.m), minI(run, g.n - j0));
    });
    return;
  }
  // Runs of tiles: about four per thread, so a late thread costs little and each run streams B ahead.
  const int64_t run = nt > 1 ? std::max<int64_t>(1, tiles / (4 * nt)) : tiles;
  const int64_t width = run * width1;
  forEachUnit(nt, ceilDiv(tiles, run), [&](int64_t u) {
    runTiles(kern, g.m, g.k, packedA, g.b, g.bf, g.rsB, g.csB, u * width, minI(g.n, (u + 1) * width), g.c, g.ldc,
             g.alpha, g.beta);
  });
}

Bf16Call fromGemm(const GemmCall& g) {
  Bf16Call h{g.m,  g.n,  g.k,     g.alpha, g.a, g.transA ? 1 : g.lda, g.transA ? g.lda : 1, nullptr,
             g.transB ? 1 : g.ldb, g.transB ? g.ldb : 1, g.beta, g.c, g.ldc};
  h.bf = g.b;
  return h;
}

}  // namespace

void gemmBf16(const Bf16Call& g) { gemmBf16On(g, poolThreads()); }

void sgemmBf16(const GemmCall& g) { gemmBf16On(fromGemm(g), poolThreads()); }

void sgemmStridedBatchedBf16(const GemmCall& call, int64_t strideA, int64_t strideB, int64_t strideC,
                             int64_t batch) {
  if (batch <= 0) return;
  const double itemFlops =
      2.0 * static_cast<double>(call.m) * static_cast<double>(call.n) * static_cast<double>(call.k);
  const int pool = poolThreads();
  // Whole items per thread when there are enough of them (a looser rule than sgemmStridedBatched's).
  const bool perItem = pool > 1 && batch >= pool && itemFlops * static_cast<double>(batch) >= kMinFlopsPerThread;
  forEachBatchItem(call, strideA, strideB, strideC, batch, perItem,
                   [](const GemmCall& g, int maxThreads) { gemmBf16On(fromGemm(g), maxThreads); });
}

void sgemmGroupedBf16(const GroupedCall& g) {
  // One product per group on all threads (groups are few and each one large enough to split).
  for (int64_t e = 0; e < g.groups; e++) {
    const int64_t r0 = g.offsets[e], rows = g.offsets[e + 1] - r0;
    GemmCall one{};
    if (!g.transA) {
      if (rows == 0) continue;
      one = GemmCall{false, g.transB, rows, g.n, g.d, g.alpha, g.a + r0 * g.lda, g.lda,
                     g.b + e * g.strideB, g.ldb, g.beta, g.c + e * g.strideC + r0 * g.ldc, g.ldc};
    } else {
      one = GemmCall{true, false, g.d, g.n, rows, g.alpha, g.a + r0 * g.lda, g.lda,
                     g.b + e * g.strideB + r0 * g.ldb, g.ldb, g.beta, g.c + e * g.strideC, g.ldc};
    }
    gemmBf16On(fromGemm(one), poolThreads());
  }
}

void gemmGroupedBf16(const Bf16GroupedCall& g) {
  if (g.n == 0 || g.groups == 0) return;
  const Bf16Kernel& kern = currentBf16();
  const int64_t tiles = ceilDiv(g.n, kern.nrOneRow);  // runs of the widest tiles (the others divide them)
  double work = 0;
  for (int64_t e = 0; e < g.groups; e++) {
    const int64_t rows = g.offsets[e + 1] - g.offsets[e];
    if (rows > 0) work += productWork(rows, g.n, g.d, sizeof(uint16_t));
  }
  const int nt = threadsFor(work, kMinFlopsPerThread);
  // Units: (group, run of tiles); a group's A rows are packed by each of its units (they are few rows).
  const int64_t run = nt > 1 ? std::max<int64_t>(1, tiles / (2 * nt)) : tiles;
  const int64_t runs = ceilDiv(tiles, run);
  forEachUnit(nt, g.groups * runs, [&](int64_t u) {
    const int64_t e = u / runs, r = u % runs;
    const int64_t row0 = g.offsets[e], rows = g.offsets[e + 1] - row0;
    if (rows == 0) return;
    float* c = g.c + e * g.strideC + row0 * g.ldc;
    const int64_t j0 = r * run * kern.nrOneRow, j1 = minI(g.n, (r + 1) * run * kern.nrOneRow);
    if (g.d == 0 || g.alpha == 0.0f) {
      scaleRows(c + j0, rows, j1 - j0, g.ldc, g.beta);
      return;
    }
    char* packedA = scratchBytes(tlsA16, packedBytes(kern, ceilDiv(rows, kern.mr) * kern.mr, g.d));
    packAllA(kern, rows, g.d, g.a + row0 * g.lda, g.lda, 1, packedA);
    if (streams(kern, rows, nullptr, g.csB)) {
      streamRange(kern, rows, g.d, packedA, g.b + e * g.strideB, g.rsB, j0, j1, c, g.ldc, g.alpha, g.beta);
    } else {
      runTiles(kern, rows, g.d, packedA, g.b + e * g.strideB, nullptr, g.rsB, g.csB, j0, j1, c, g.ldc, g.alpha,
               g.beta);
    }
  });
}

}  // namespace glam
