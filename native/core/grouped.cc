// Grouped GEMM (see grouped.h): all the per-expert products of an MoE layer in one call. Work units are
// (group x range of column panels) for transA == false and (group x range of row panels of C_g) for
// transA == true; each unit packs its own B block and A block (no shared state but the unit counter), and
// the threads take units from an atomic counter, largest first, so ragged groups keep every thread busy.
// The blocking is that of gemm.cc (the ISA table's KC slices of k and MC row blocks, the same packing and
// micro-kernel), and the unit split never changes the operations an element of C sees, so results are
// bitwise identical whatever the thread count.
#include "grouped.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "blocking.h"
#include "gemm.h"
#include "isa.h"
#include "threadpool.h"

namespace glam {
namespace {

using blocking::ceilDiv;
using blocking::kMinFlopsPerThread;
using blocking::minI;
using blocking::bytesWork;
using blocking::Scratch;

thread_local Scratch tlsGroupA;
thread_local Scratch tlsGroupB;

struct Unit {
  int64_t group;
  int64_t p0, p1;  // panel range: column panels (transA false) or row panels of C_g (transA true)
  double cost;
};

// C[M x N] (ldc) = alpha * op(A) op(B) + beta * C with op(A)[i,p] = a[i*rsA + p*csA] and
// op(B)[p,j] = b[p*rsB + j*csB]. The A block (up to 2·MC x KC floats) is packed once per k slice and stays
// in L2; B is packed a chunk of about kChunkCols columns at a time right
// before the micro-kernel sweeps the A block over it, so the packed chunk is still in L1/L2 (a group's
// B is used by few rows, so packing all of it first would push it out to L3).
// 64 columns per chunk (4 AVX2 panels, 1 AVX-512 panel): KC x 64 floats beside the A block in L2.
constexpr int64_t kChunkCols = 64;

void blockProduct(const GemmKernel& kern, int64_t M, int64_t N, int64_t K, float alpha, const float* a,
                  int64_t rsA, int64_t csA, const float* b, int64_t rsB, int64_t csB, float beta0, float* c,
                  int64_t ldc) {
  const int64_t mr = kern.mr, nr = kern.nr;
  const int64_t kKC = kern.kc, kMC = kern.mc;
  const int64_t kChunkPanels = nr < kChunkCols ? kChunkCols / nr : 1;
  float* packA = tlsGroupA.get(2 * kMC * kKC + mr * kKC);
  float* packB = tlsGroupB.get(kKC * kChunkPanels * nr);
  for (int64_t pc = 0; pc < K; pc += kKC) {
    const int64_t kc = minI(kKC, K - pc);
    const float beta = pc == 0 ? beta0 : 1.0f;
    // Row blocks of at most 2·MC rows (288 x KC floats, 288 KiB, still in L2 beside the B chunk), cut
    // evenly: a group of a few more rows than MC is then not followed by a thin block that repacks B.
    const int64_t blocks = ceilDiv(M, 2 * kMC);
    const int64_t mcMax = ceilDiv(ceilDiv(M, blocks), mr) * mr;
    for (int64_t ic = 0; ic < M; ic += mcMax) {
      const int64_t mc = minI(mcMax, M - ic);
      kern.packA(mc, kc, a + ic * rsA + pc * csA, rsA, csA, packA);
      const int64_t rowPanels = ceilDiv(mc, mr);
      for (int64_t jc = 0; jc < N; jc += kChunkPanels * nr) {
        const int64_t ncChunk = minI(kChunkPanels * nr, N - jc);
        kern.packB(kc, ncChunk, b + pc * rsB + jc * csB, rsB, csB, packB);
        // While the micro-kernel runs on this chunk, the source of the next one is fetched a few cache
        // lines per micro-tile: a group's B (an expert's weights) comes from memory, in rows ldb apart that
        // the hardware prefetcher does not follow across pages.
        const int64_t jn = jc + kChunkPanels * nr;
        const int64_t ncNext = jn < N ? minI(kChunkPanels * nr, N - jn) : 0;
        const bool rowMajorB = csB == 1;
        const int64_t linesPerRun = rowMajorB ? ceilDiv(ncNext, 16) : ceilDiv(kc, 16);
        const int64_t runs = rowMajorB ? kc : ncNext;
        const int64_t lines = ncNext > 0 ? runs * linesPerRun : 0;
        const int64_t calls = ceilDiv(ncChunk, nr) * rowPanels;
        const int64_t perCall = ceilDiv(lines, calls);
        int64_t line = 0;
        auto prefetchNext = [&]() {
          for (int64_t e = minI(lines, line + perCall); line < e; line++) {
            const int64_t run = line / linesPerRun;
            const int64_t at = (line % linesPerRun) * 16;
            const float* src = rowMajorB ? b + (pc + run) * rsB + jn + at : b + (pc + at) * rsB + (jn + run) * csB;
            __builtin_prefetch(src, 0, 2);
          }
        };
        for (int64_t q = 0; q * nr < ncChunk; q++) {
          const int nc = static_cast<int>(minI(nr, ncChunk - q * nr));
          const float* bp = packB + q * nr * kc;
          float* cq = c + ic * ldc + jc + q * nr;
          // The next packed panel is pulled towards L1 a slice per micro-tile, so switching panels does not
          // stall (with ~20 row panels per group, the switch is frequent).
          const char* nextPanel = (q + 1) * nr < ncChunk ? reinterpret_cast<const char*>(bp + nr * kc) : nullptr;
          const int64_t panelLines = nr * kc * static_cast<int64_t>(sizeof(float)) / 64;
          const int64_t linesPerTile = ceilDiv(panelLines, rowPanels);
          for (int64_t ip = 0; ip < rowPanels; ip++) {
            if (nextPanel != nullptr) {
              for (int64_t l = ip * linesPerTile; l < minI(panelLines, (ip + 1) * linesPerTile); l++) {
                __builtin_prefetch(nextPanel + l * 64, 0, 3);
              }
            }
            const int rows = static_cast<int>(minI(mr, mc - ip * mr));
            // The next C tile is fetched while this one computes: a group's C (or C_g) is touched once
            // per k slice, so it is not in cache (the rows are ldc apart, which defeats the prefetcher).
            if (ip + 1 < rowPanels) {
              const float* nextC = cq + (ip + 1) * mr * ldc;
              const int nextRows = static_cast<int>(minI(mr, mc - (ip + 1) * mr));
              for (int r = 0; r < nextRows; r++) {
                __builtin_prefetch(nextC + r * ldc, 1, 3);
                __builtin_prefetch(nextC + r * ldc + nc - 1, 1, 3);
              }
            }
            prefetchNext();
            kern.micro(kc, packA + ip * mr * kc, bp, nr, cq + ip * mr * ldc, ldc, alpha, beta, rows, nc, nullptr);
          }
        }
      }
    }
  }
}

// transA == false: rows [off_g, off_g+1) of C, column panels [p0, p1).
void runForward(const GroupedCall& g, const GemmKernel& kern, const Unit& u) {
  const int64_t nr = kern.nr;
  const int64_t row0 = g.offsets[u.group];
  const int64_t rows = g.offsets[u.group + 1] - row0;
  const int64_t j0 = u.p0 * nr;
  const int64_t cols = minI(u.p1 * nr, g.n) - j0;
  float* c = g.c + u.group * g.strideC + row0 * g.ldc + j0;
  if (g.d == 0 || g.alpha == 0.0f) {
    scaleRows(c, rows, cols, g.ldc, g.beta);
    return;
  }
  const int64_t rsB = g.transB ? 1 : g.ldb;
  const int64_t csB = g.transB ? g.ldb : 1;
  if (!g.transB && rows <= kern.streamRows) {
    // A few tokens chose this expert (decode): its weights stream through once, read in place.
    float* packedA = tlsGroupA.get(kern.mr * ceilDiv(g.d, kern.kc) * kern.kc);
    for (int64_t pc = 0; pc < g.d; pc += kern.kc) {
      kern.packA(rows, minI(kern.kc, g.d - pc), g.a + row0 * g.lda + pc, g.lda, 1, packedA + kern.mr * pc);
    }
    streamColumns(kern, rows, g.d, g.alpha, packedA, g.b + u.group * g.strideB + j0, rsB, g.beta, c, g.ldc, 0, cols);
    return;
  }
  blockProduct(kern, rows, cols, g.d, g.alpha, g.a + row0 * g.lda, g.lda, 1, g.b + u.group * g.strideB + j0 * csB,
               rsB, csB, g.beta, c, g.ldc);
}

// transA == true: rows [p0*mr, p1*mr) of C_g = A_gᵀ B_g, all n columns, k = the group's rows.
void runWeightGrad(const GroupedCall& g, const GemmKernel& kern, const Unit& u) {
  const int64_t mr = kern.mr;
  const int64_t row0 = g.offsets[u.group];
  const int64_t k = g.offsets[u.group + 1] - row0;
  const int64_t i0 = u.p0 * mr;
  const int64_t rows = minI(u.p1 * mr, g.d) - i0;
  float* c = g.c + u.group * g.strideC + i0 * g.ldc;
  if (k == 0 || g.alpha == 0.0f) {
    scaleRows(c, rows, g.n, g.ldc, g.beta);
    return;
  }
  // op(A)[i, p] = a[p*lda + i]
  blockProduct(kern, rows, g.n, k, g.alpha, g.a + row0 * g.lda + i0, 1, g.lda,
               g.b + u.group * g.strideB + row0 * g.ldb, g.ldb, 1, g.beta, c, g.ldc);
}

}  // namespace

void sgemmGrouped(const GroupedCall& g) {
  if (g.groups <= 0 || g.n == 0) return;
  if (g.transA && g.d == 0) return;
  const GemmKernel& kern = currentIsa().gemm;
  const int64_t mr = kern.mr, nr = kern.nr;
  // Panels a unit may be cut along: columns of C (forward) or rows of C_g (weight gradient).
  const int64_t panels = g.transA ? ceilDiv(g.d, mr) : ceilDiv(g.n, nr);
  const int64_t inner = g.transA ? g.n : g.d;  // the other fixed dimension
  double total = 0;
  int64_t busy = 0;
  int64_t maxLen = 0;
  for (int64_t i = 0; i < g.groups; i++) {
    const int64_t len = g.offsets[i + 1] - g.offsets[i];
    total += 2.0 * static_cast<double>(len) * static_cast<double>(panels) * static_cast<double>(inner);
    busy += len > 0 || g.transA ? 1 : 0;
    maxLen = std::max(maxLen, len);
  }
  const double flops = total * static_cast<double>(g.transA ? mr : nr);
  // Forward products of few rows per expert are bound by reading the routed experts' weights.
  const double work = g.transA ? flops : std::max(flops, static_cast<double>(busy) * bytesWork(g.n, g.d, 4));
  int nt = threadsFor(work, kMinFlopsPerThread);

  // Units: one per group, cut further when there are few groups for the threads (at least 2 units per
  // thread: their runs of each weight row are twice as long as with 4 per thread, and stream 1.2-1.4x
  // faster) or one group is large (a hot expert): each unit at most about total / (2·threads). But no more
  // groups than threads, each of at most streamRows rows (a batch-1 decode step's 2 experts on 2 threads),
  // are bound by reading their weights: each is cut only as far as it takes to give every thread a unit, so
  // a thread reads whole weight rows in address order (1.3-1.5x at this machine's upper bandwidth level,
  // where reading a part of each row is slow, bench/access_patterns.cc; no change measurable at its lower).
  std::vector<Unit> units;
  units.reserve(static_cast<size_t>(g.groups) * 2);
  const bool fewStreamed = !g.transA && nt > 1 && busy <= nt && maxLen <= kern.streamRows;
  const int64_t fewGroupParts = nt > 1 && busy > 0 ? ceilDiv((fewStreamed ? 1 : 2) * nt, busy) : 1;
  const double maxCost = total / (2.0 * nt);
  for (int64_t i = 0; i < g.groups; i++) {
    const int64_t len = g.offsets[i + 1] - g.offsets[i];
    if (len == 0 && !g.transA) continue;
    const double cost = 2.0 * static_cast<double>(len) * static_cast<double>(panels) * static_cast<double>(inner);
    int64_t parts = 1;
    if (nt > 1) {
      parts = fewGroupParts;
      if (!fewStreamed && maxCost > 0) parts = std::max(parts, static_cast<int64_t>(std::ceil(cost / maxCost)));
      parts = std::max<int64_t>(1, std::min(parts, panels));
    }
    for (int64_t p = 0; p < parts; p++) {
      int64_t p0, p1;
      splitRange(panels, static_cast<int>(parts), static_cast<int>(p), &p0, &p1);
      units.push_back(Unit{i, p0, p1, 1.0 + static_cast<double>(len) * static_cast<double>(p1 - p0)});
    }
  }
  if (units.empty()) return;
  std::stable_sort(units.begin(), units.end(), [](const Unit& x, const Unit& y) { return x.cost > y.cost; });
  const int64_t count = static_cast<int64_t>(units.size());
  forEachUnit(count < nt ? static_cast<int>(count) : nt, count, [&](int64_t i) {
    if (g.transA) {
      runWeightGrad(g, kern, units[static_cast<size_t>(i)]);
    } else {
      runForward(g, kern, units[static_cast<size_t>(i)]);
    }
  });
}

}  // namespace glam
