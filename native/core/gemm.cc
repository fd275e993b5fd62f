// GEMM driver in the BLIS/GotoBLAS layout:
//   for jc (column blocks of C)         B, all of k x the block, packed into a shared buffer (L3)
//     units (row block x B panel range), taken dynamically by the threads, each over all of k:
//       for pc (KC slices of k)          A block MC x KC packed per thread (L2)
//         for jr (NR panels), ir (MR panels): micro-kernel (the B micro-panel stays in L1)
// Every element of C sees the same sequence of operations whatever the thread count or unit split
// (k is always cut at the same KC boundaries), so results are bitwise identical across thread counts.
#include "gemm.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

#include "blocking.h"
#include "isa.h"
#include "threadpool.h"

namespace glam {
namespace {

// Floats of packed B shared by the threads of one product (all of k for a block of columns): 16 MiB,
// half the L3, so a column block stays in L3 while every row block streams over it.
constexpr int64_t kPackedBBudget = int64_t{4} << 20;

using blocking::ceilDiv;
using blocking::kKC;
using blocking::kMC;
using blocking::kMinFlopsPerThread;
using blocking::minI;
using blocking::Scratch;

thread_local Scratch tlsPackA;
thread_local Scratch tlsPackB;
thread_local Scratch tlsChunkState;    // bytes, viewed as atomics
thread_local Scratch tlsUnitCounters;  // viewed as 64-bit atomics

// Strides of op(A) and op(B): op(A)[i,p] = a[i*rsA + p*csA], op(B)[p,j] = b[p*rsB + j*csB].
struct Operands {
  const float* a;
  int64_t rsA, csA;
  const float* b;
  int64_t rsB, csB;
  float* c;
  int64_t ldc;
};

Operands operandsOf(const GemmCall& g) {
  return Operands{g.a, g.transA ? 1 : g.lda, g.transA ? g.lda : 1, g.b, g.transB ? 1 : g.ldb,
                  g.transB ? g.ldb : 1, g.c, g.ldc};
}

// C = beta * C without touching A and B (k == 0 or alpha == 0, as BLAS does).
void scaleC(const GemmCall& g, float* c) {
  for (int64_t i = 0; i < g.m; i++) {
    float* row = c + i * g.ldc;
    if (g.beta == 0.0f) {
      std::memset(row, 0, static_cast<size_t>(g.n) * sizeof(float));
    } else if (g.beta != 1.0f) {
      for (int64_t j = 0; j < g.n; j++) row[j] *= g.beta;
    }
  }
}

// How a column block is cut into work units: mUnits row blocks x nUnits ranges of B panels.
struct Split {
  int64_t mUnits;
  int64_t nUnits;
};

// Makespan of the split when threads grab units in order (as the dynamic scheduler does), in micro-tile
// calls, counting the A packing each unit repeats (about a third of a micro-tile call per A panel).
double makespan(int64_t mPanels, int64_t nPanels, Split s, int nt) {
  double load[64] = {0};
  const int threads = nt < 64 ? nt : 64;
  for (int64_t mi = 0; mi < s.mUnits; mi++) {
    int64_t m0, m1;
    splitRange(mPanels, static_cast<int>(s.mUnits), static_cast<int>(mi), &m0, &m1);
    for (int64_t ni = 0; ni < s.nUnits; ni++) {
      int64_t n0, n1;
      splitRange(nPanels, static_cast<int>(s.nUnits), static_cast<int>(ni), &n0, &n1);
      const double cost = static_cast<double>(m1 - m0) * static_cast<double>(n1 - n0 + 0.35);
      int best = 0;
      for (int t = 1; t < threads; t++) best = load[t] < load[best] ? t : best;
      load[best] += cost;
    }
  }
  double worst = 0;
  for (int t = 0; t < threads; t++) worst = load[t] > worst ? load[t] : worst;
  return worst;
}

Split chooseSplit(int64_t mPanels, int64_t nPanels, int64_t mcPanels, int nt) {
  const int64_t mMin = ceilDiv(mPanels, mcPanels);
  if (nt <= 1) return Split{mMin, 1};
  Split best{mMin, 1};
  double bestCost = makespan(mPanels, nPanels, best, nt);
  const int64_t mCandidates[2] = {mMin, ceilDiv(mMin, nt) * nt};
  for (int64_t mu : mCandidates) {
    if (mu > mPanels) continue;
    for (int64_t nu = 1; nu <= 2 * nt && nu <= nPanels; nu++) {
      const Split s{mu, nu};
      const double cost = makespan(mPanels, nPanels, s, nt);
      if (cost < bestCost * 0.999) {
        best = s;
        bestCost = cost;
      }
    }
  }
  // Prefer about four row units per thread when that costs (almost) nothing: a thread descheduled while
  // it holds a unit then delays the product by less.
  if (best.nUnits == 1) {
    const int64_t fine = ceilDiv(std::max(mMin, std::min<int64_t>(4 * nt, mPanels / 4)), nt) * nt;
    if (fine > best.mUnits && fine <= mPanels) {
      const Split s{fine, 1};
      if (makespan(mPanels, nPanels, s, nt) <= bestCost * 1.03) best = s;
    }
  }
  return best;
}

// Shared state of one product. B is packed into a shared buffer covering the whole k range of a column
// block (jc), a chunk of panels at a time, by whichever thread needs it first; work units are
// (row block x range of B panels) over the whole k range, so each C tile belongs to one unit and
// threads never wait at a barrier. A thread that is descheduled holds up only its own unit; the
// others keep taking units (and one that never started is not waited for).
struct Job {
  const GemmKernel* kern;
  const GemmCall* call;
  Operands ops;
  int64_t ncMax;          // columns per jc block
  int64_t kBlocks;        // KC blocks along k
  float* packB;           // kBlocks x (ncMax rounded to NR) floats, panel-major within each k block
  std::atomic<uint8_t>* chunkState;  // per (jc block, k block, chunk of panels): free, packing, ready
  std::atomic<int64_t>* nextUnit;    // per jc block
};

constexpr uint8_t kChunkFree = 0;
constexpr uint8_t kChunkPacking = 1;
constexpr uint8_t kChunkReady = 2;
// B is packed (and claimed) in chunks of this many panels: each source row is then read as one
// contiguous run of 4·NR floats, about twice as fast as a panel at a time.
constexpr int64_t kChunkPanels = 4;

// Returns true once chunk `ch` of k block `pb` is packed; packs it when nobody has claimed it.
// With `wait` false, returns false instead of waiting for another thread that is packing it.
bool ensureChunk(Job& job, std::atomic<uint8_t>& state, int64_t jc, int64_t nc, int64_t pb, int64_t ch,
                 bool wait) {
  uint8_t s = state.load(std::memory_order_acquire);
  if (s == kChunkReady) return true;
  if (s == kChunkFree && state.compare_exchange_strong(s, kChunkPacking, std::memory_order_acq_rel)) {
    const GemmKernel& kern = *job.kern;
    const Operands& o = job.ops;
    const int64_t nr = kern.nr;
    const int64_t pc = pb * kKC;
    const int64_t kc = minI(kKC, job.call->k - pc);
    const int64_t ncr = ceilDiv(job.ncMax, nr) * nr;
    const int64_t col = ch * kChunkPanels * nr;
    kern.packB(kc, minI(kChunkPanels * nr, nc - col), o.b + pc * o.rsB + (jc + col) * o.csB, o.rsB, o.csB,
               job.packB + pc * ncr + col * kc);
    state.store(kChunkReady, std::memory_order_release);
    return true;
  }
  if (!wait) return false;
  int spins = 0;
  while (state.load(std::memory_order_acquire) != kChunkReady) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
    if (++spins > 2000) sched_yield();
  }
  return true;
}

// One unit: rows [ic, ic+mc) of C against B panels [q0, q1) of the jc block, over all of k.
void runUnit(Job& job, float* packA, int64_t jcBlock, int64_t jc, int64_t nc, int64_t ic, int64_t mc, int64_t q0,
             int64_t q1, int tid, int nt) {
  const GemmKernel& kern = *job.kern;
  const GemmCall& g = *job.call;
  const Operands& o = job.ops;
  const int64_t mr = kern.mr;
  const int64_t nr = kern.nr;
  const int64_t chunks = ceilDiv(ceilDiv(nc, nr), kChunkPanels);
  const int64_t ncr = ceilDiv(job.ncMax, nr) * nr;
  const int64_t rowPanels = ceilDiv(mc, mr);
  const int64_t c0 = q0 / kChunkPanels;
  const int64_t span = ceilDiv(q1, kChunkPanels) - c0;  // chunks this unit touches (at most 64)
  // Threads start their walk over the chunks at different points, so the first pass splits the packing.
  const int64_t start = nt > 1 ? span * tid / nt : 0;
  for (int64_t pb = 0; pb < job.kBlocks; pb++) {
    const int64_t pc = pb * kKC;
    const int64_t kc = minI(kKC, g.k - pc);
    const float beta = pb == 0 ? g.beta : 1.0f;
    kern.packA(mc, kc, o.a + ic * o.rsA + pc * o.csA, o.rsA, o.csA, packA);
    std::atomic<uint8_t>* states = job.chunkState + (jcBlock * job.kBlocks + pb) * chunks;
    auto compute = [&](int64_t ch) {
      const int64_t qEnd = minI(q1, (ch + 1) * kChunkPanels);
      for (int64_t q = q0 > ch * kChunkPanels ? q0 : ch * kChunkPanels; q < qEnd; q++) {
        const int cols = static_cast<int>(minI(nr, nc - q * nr));
        const float* bp = job.packB + pc * ncr + q * nr * kc;
        float* cBase = o.c + ic * o.ldc + jc + q * nr;
        // While this B panel is in use, the next one is fetched towards L2 a slice per micro-tile, so
        // switching panels does not stall on L3 (about 3% at 1024³).
        const char* nextPanel = reinterpret_cast<const char*>(bp + nr * kc);
        const int64_t lines = nr * kc * static_cast<int64_t>(sizeof(float)) / 64;
        const int64_t linesPerTile = ceilDiv(lines, rowPanels);
        for (int64_t ip = 0; ip < rowPanels; ip++) {
          for (int64_t l = ip * linesPerTile; l < minI(lines, (ip + 1) * linesPerTile); l++) {
            __builtin_prefetch(nextPanel + l * 64, 0, 2);
          }
          const int rows = static_cast<int>(minI(mr, mc - ip * mr));
          kern.micro(kc, packA + ip * mr * kc, bp, nr, cBase + ip * mr * o.ldc, o.ldc, g.alpha, beta, rows, cols);
        }
      }
    };
    uint64_t skipped = 0;  // chunks another thread was packing: done in a second pass
    for (int64_t i = 0; i < span; i++) {
      const int64_t j = (start + i) % span;
      if (ensureChunk(job, states[c0 + j], jc, nc, pb, c0 + j, nt == 1)) {
        compute(c0 + j);
      } else {
        skipped |= uint64_t{1} << j;
      }
    }
    for (int64_t j = 0; skipped != 0 && j < span; j++) {
      if (skipped & (uint64_t{1} << j)) {
        ensureChunk(job, states[c0 + j], jc, nc, pb, c0 + j, true);
        compute(c0 + j);
      }
    }
  }
}

// Runs the units of column block `jcBlock` that are left, on one of the `nt` threads of a pool job.
void runColumnBlock(Job& job, int64_t jcBlock, int tid, int nt) {
  const GemmKernel& kern = *job.kern;
  const GemmCall& g = *job.call;
  const int64_t mr = kern.mr;
  const int64_t nr = kern.nr;
  const int64_t mPanels = ceilDiv(g.m, mr);
  float* packA = tlsPackA.get(kMC * kKC);
  if (packA == nullptr) std::abort();  // a few hundred KiB of scratch: nothing sensible left to do
  const int64_t jc = jcBlock * job.ncMax;
  const int64_t nc = minI(job.ncMax, g.n - jc);
  const int64_t nPanels = ceilDiv(nc, nr);
  const Split split = chooseSplit(mPanels, nPanels, kMC / mr, nt);
  const int64_t units = split.mUnits * split.nUnits;
  std::atomic<int64_t>& next = job.nextUnit[jcBlock];
  for (int64_t u = next.fetch_add(1, std::memory_order_relaxed); u < units;
       u = next.fetch_add(1, std::memory_order_relaxed)) {
    const int64_t mi = u / split.nUnits;
    const int64_t ni = u % split.nUnits;
    int64_t p0, p1, q0, q1;
    splitRange(mPanels, static_cast<int>(split.mUnits), static_cast<int>(mi), &p0, &p1);
    splitRange(nPanels, static_cast<int>(split.nUnits), static_cast<int>(ni), &q0, &q1);
    const int64_t ic = p0 * mr;
    runUnit(job, packA, jcBlock, jc, nc, ic, minI(p1 * mr, g.m) - ic, q0, q1, tid, nt);
  }
}

thread_local Scratch tlsSmallA;
thread_local Scratch tlsEdgeB;

// Few rows, B row-major: the micro-kernel runs on an A packed over all of k and reads B in place (its
// rows ldb apart), one column tile at a time; only a ragged last tile of B is copied (zero-padded).
void gemmFewRowsTiled(const GemmCall& g, const Operands& o, int nt) {
  const GemmKernel& kern = currentIsa().gemm;
  const int64_t mr = kern.mr;
  const int64_t nr = kern.nr;
  const int64_t rowPanels = ceilDiv(g.m, mr);
  float* packed = tlsSmallA.get(rowPanels * mr * g.k);
  if (packed == nullptr) std::abort();
  kern.packA(g.m, g.k, o.a, o.rsA, o.csA, packed);
  const int64_t tiles = ceilDiv(g.n, nr);
  constexpr int64_t kTilesPerClaim = 8;
  const int64_t claims = ceilDiv(tiles, kTilesPerClaim);
  forEachUnit(nt, claims, [&](int64_t c) {
    for (int64_t t = c * kTilesPerClaim; t < minI(tiles, (c + 1) * kTilesPerClaim); t++) {
      const int64_t j = t * nr;
      const int cols = static_cast<int>(minI(nr, g.n - j));
      const float* bt = o.b + j;
      int64_t ldb = o.rsB;
      if (cols < nr) {  // the micro-kernel reads nr columns: give it a padded copy
        float* edge = tlsEdgeB.get(g.k * nr);
        if (edge == nullptr) std::abort();
        kern.packB(g.k, cols, bt, o.rsB, 1, edge);
        bt = edge;
        ldb = nr;
      }
      for (int64_t ip = 0; ip < rowPanels; ip++) {
        const int rows = static_cast<int>(minI(mr, g.m - ip * mr));
        kern.micro(g.k, packed + ip * mr * g.k, bt, ldb, g.c + ip * mr * g.ldc + j, g.ldc, g.alpha, g.beta, rows,
                   cols);
      }
    }
  });
}

// Few rows (or, transposed, few columns): packing B would cost more than the product. Returns false
// when the blocked path should run instead.
bool gemmSmall(const GemmCall& g, int maxThreads) {
  // Crossovers measured on Zen 3 (k = 1024): reading B in place wins up to 6 rows (one AVX2 row panel);
  // the dot products of the few-columns case win up to 4 columns.
  constexpr int64_t kFewRows = 6;
  constexpr int64_t kFewCols = 4;
  static_assert(kFewRows <= kSmallGemmRows && kFewCols <= kSmallGemmRows, "small kernel capacity");
  const Operands o = operandsOf(g);
  const bool fewRows = g.m <= kFewRows;
  if (!fewRows && g.n > kFewCols) return false;
  const int rows = static_cast<int>(fewRows ? g.m : g.n);
  const int64_t cols = fewRows ? g.n : g.m;
  const double flops = 2.0 * rows * static_cast<double>(cols) * static_cast<double>(g.k);
  int nt = threadsFor(flops, kMinFlopsPerThread);
  if (nt > maxThreads) nt = maxThreads;
  if (fewRows && o.csB == 1 && g.m > 2) {
    gemmFewRowsTiled(g, o, nt);
    return true;
  }
  // Otherwise A' (rows x k, copied contiguous) against B' read in place, B'[p, j] = bp[p*rsB + j*csB],
  // into C'[i, j] = c[i*rsC + j*csC]; with few columns, A' = op(B)ᵀ, B' = op(A)ᵀ, C' = Cᵀ.
  const float* aSrc = fewRows ? o.a : o.b;
  const int64_t aRs = fewRows ? o.rsA : o.csB;
  const int64_t aCs = fewRows ? o.csA : o.rsB;
  const float* bp = fewRows ? o.b : o.a;
  const int64_t rsB = fewRows ? o.rsB : o.csA;
  const int64_t csB = fewRows ? o.csB : o.rsA;
  const int64_t rsC = fewRows ? g.ldc : 1;
  const int64_t csC = fewRows ? 1 : g.ldc;
  float* packed = tlsSmallA.get(static_cast<int64_t>(rows) * g.k);
  if (packed == nullptr) std::abort();
  for (int i = 0; i < rows; i++) {
    for (int64_t p = 0; p < g.k; p++) packed[i * g.k + p] = aSrc[i * aRs + p * aCs];
  }
  const auto kernel = currentIsa().gemm.smallRows;
  // Row-major B' is swept in runs as wide as the kernel keeps sums for; dot products go 64 at a time.
  const int64_t kColsPerClaim = csB == 1 ? 2048 / rows : 64;
  const int64_t claims = ceilDiv(cols, kColsPerClaim);
  forEachUnit(nt, claims, [&](int64_t c) {
    kernel(rows, g.k, g.alpha, packed, bp, rsB, csB, g.beta, g.c, rsC, csC, c * kColsPerClaim,
           minI(cols, (c + 1) * kColsPerClaim));
  });
  return true;
}

// One product on up to `maxThreads` threads; packing buffers come from the calling thread.
void gemmOne(const GemmCall& g, int maxThreads) {
  if (g.m == 0 || g.n == 0) return;
  if (g.k == 0 || g.alpha == 0.0f) {
    scaleC(g, g.c);
    return;
  }
  if (gemmSmall(g, maxThreads)) return;
  const GemmKernel& kern = currentIsa().gemm;
  const double flops = 2.0 * static_cast<double>(g.m) * static_cast<double>(g.n) * static_cast<double>(g.k);
  int nt = threadsFor(flops, kMinFlopsPerThread);
  if (nt > maxThreads) nt = maxThreads;

  const int64_t kBlocks = ceilDiv(g.k, kKC);
  const int64_t kPadded = kBlocks * kKC;
  // Column block: the packed B (all of k) stays within the budget, and at most 256 panels per block.
  int64_t ncMax = (kPackedBBudget / kPadded) / kern.nr * kern.nr;
  ncMax = minI(ncMax < kern.nr ? kern.nr : ncMax, minI(256 * kern.nr, ceilDiv(g.n, kern.nr) * kern.nr));
  const int64_t jcBlocks = ceilDiv(g.n, ncMax);
  const int64_t nPanels = ceilDiv(ncMax, kern.nr);
  float* packB = tlsPackB.get(kPadded * nPanels * kern.nr);
  const int64_t states = jcBlocks * kBlocks * ceilDiv(nPanels, kChunkPanels);
  auto* chunkState = reinterpret_cast<std::atomic<uint8_t>*>(tlsChunkState.get(ceilDiv(states, 4)));
  auto* nextUnit = reinterpret_cast<std::atomic<int64_t>*>(tlsUnitCounters.get(jcBlocks * 2));
  if (packB == nullptr || chunkState == nullptr || nextUnit == nullptr) std::abort();
  for (int64_t i = 0; i < states; i++) new (&chunkState[i]) std::atomic<uint8_t>(kChunkFree);
  for (int64_t i = 0; i < jcBlocks; i++) new (&nextUnit[i]) std::atomic<int64_t>(0);

  Job job{&kern, &g, operandsOf(g), ncMax, kBlocks, packB, chunkState, nextUnit};
  // One pool job per column block: the shared B buffer is reused only after every unit of the block
  // is done.
  for (int64_t jcBlock = 0; jcBlock < jcBlocks; jcBlock++) {
    auto body = [&job, jcBlock](int tid, int threads) { runColumnBlock(job, jcBlock, tid, threads); };
    parallelFor(nt, body);
  }
}

}  // namespace

void sgemm(const GemmCall& call) { gemmOne(call, poolThreads()); }

void sgemmStridedBatched(const GemmCall& call, int64_t strideA, int64_t strideB, int64_t strideC, int64_t batch) {
  if (batch <= 0) return;
  const double itemFlops =
      2.0 * static_cast<double>(call.m) * static_cast<double>(call.n) * static_cast<double>(call.k);
  const int pool = poolThreads();
  auto item = [&](int64_t i, int maxThreads) {
    GemmCall g = call;
    g.a = call.a + i * strideA;
    g.b = call.b + i * strideB;
    g.c = call.c + i * strideC;
    gemmOne(g, maxThreads);
  };
  // Whole items per thread when there are enough of them (no barriers, no shared packing), else each item
  // on all threads. Whole items need no shared state, so a batch worth one thread's minimum is enough
  // (the causal blocks of attention: 8 heads x 64 x 64 x 32 is 2.1 MFLOP).
  const bool perItem = pool > 1 && batch >= pool &&
                       (batch % pool == 0 || batch >= 4 * pool || itemFlops < 4.0 * kMinFlopsPerThread) &&
                       itemFlops * static_cast<double>(batch) >= kMinFlopsPerThread;
  if (!perItem) {
    for (int64_t i = 0; i < batch; i++) item(i, pool);
    return;
  }
  forEachUnit(pool, batch, [&](int64_t i) { item(i, 1); });
}

}  // namespace glam
