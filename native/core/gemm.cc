// GEMM driver in the BLIS/GotoBLAS layout:
//   for jc (column blocks of C)         B, all of k x the block, packed into a shared buffer (L3)
//     units (row block x B panel range), taken dynamically by the threads, each over all of k:
//       for pc (KC slices of k)          A block MC x KC packed per thread (L2)
//         for jr (NR panels), ir (MR panels): micro-kernel (the B micro-panel stays in L1)
// Products with few rows take another route (A packed once, B read in place: see gemmFewRows).
// Every element of C sees the same sequence of operations whatever the route, the thread count or the
// unit split: k is always cut at the same KC boundaries (the ISA table's kc) and every micro-kernel
// sums an element over its KC block in order and stores it the same way. So results are bitwise
// identical across thread counts, and a row of C does not depend on how many rows the product has.
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
using blocking::kMinFlopsPerThread;
using blocking::minI;
using blocking::productWork;
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
    const int64_t pc = pb * kern.kc;
    const int64_t kc = minI(kern.kc, job.call->k - pc);
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
  // Chunk states are laid out per (column block, k block) for a full block (ncMax columns): the last,
  // narrower block must index them with that stride too, or it would find chunks of another block
  // already marked packed.
  const int64_t chunks = ceilDiv(ceilDiv(job.ncMax, nr), kChunkPanels);
  const int64_t ncr = ceilDiv(job.ncMax, nr) * nr;
  const int64_t rowPanels = ceilDiv(mc, mr);
  const int64_t c0 = q0 / kChunkPanels;
  const int64_t span = ceilDiv(q1, kChunkPanels) - c0;  // chunks this unit touches (at most 64)
  // Threads start their walk over the chunks at different points, so the first pass splits the packing.
  const int64_t start = nt > 1 ? span * tid / nt : 0;
  for (int64_t pb = 0; pb < job.kBlocks; pb++) {
    const int64_t pc = pb * kern.kc;
    const int64_t kc = minI(kern.kc, g.k - pc);
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
          kern.micro(kc, packA + ip * mr * kc, bp, nr, cBase + ip * mr * o.ldc, o.ldc, g.alpha, beta, rows, cols,
                     nullptr);
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
  float* packA = tlsPackA.get(kern.mc * kern.kc);
  const int64_t jc = jcBlock * job.ncMax;
  const int64_t nc = minI(job.ncMax, g.n - jc);
  const int64_t nPanels = ceilDiv(nc, nr);
  const Split split = chooseSplit(mPanels, nPanels, kern.mc / mr, nt);
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

thread_local Scratch tlsFewA;
thread_local Scratch tlsFewB;

// Rows of a product that takes the few-rows route (below). One row panel always; more when the kernel
// can copy the B block it reads and A (packed over all of k) stays within about a quarter of the L2.
constexpr int64_t kFewRowsMax = 128;
constexpr int64_t kFewRowsAFloats = int64_t{1} << 18;

bool fewRowsRoute(const GemmCall& g, const GemmKernel& kern) {
  if (g.m <= kern.mr) return true;
  return kern.copiesB && g.m <= kFewRowsMax && g.m * g.k <= kFewRowsAFloats;
}

// Few rows (decode, small batches): packing all of B would cost more than the product. Up to the kernel's
// streamRows rows with a row-major B take the stream route (GemmKernel::stream): the threads claim runs of
// columns, and each KC block reads every B row's run once, in order. Otherwise A is packed once
// over all of k; the columns are cut into tiles (twice as wide for one or two rows), runs of which the
// threads claim; for each tile and KC block the first row panel's micro-kernel reads a row-major B in
// place (ragged tiles too when the kernel masks columns) and, if more row panels follow, copies the block
// into a packed panel that they read from cache. Other layouts of B are packed a tile block at a time.
// While one block computes, the block the thread does next is fetched towards L2 (spread over its row
// panels), so a memory-bound product streams B at close to the memory bandwidth.
void gemmFewRows(const GemmCall& g, const Operands& o, int nt, const GemmKernel& kern) {
  const int64_t mr = kern.mr;
  const int64_t nr = kern.nr;
  const int64_t kcMax = kern.kc;
  const int64_t rowPanels = ceilDiv(g.m, mr);
  const int64_t kBlocks = ceilDiv(g.k, kcMax);
  float* packedA = tlsFewA.get(rowPanels * mr * g.k);
  for (int64_t pb = 0; pb < kBlocks; pb++) {
    const int64_t pc = pb * kcMax;
    kern.packA(g.m, minI(kcMax, g.k - pc), o.a + pc * o.csA, o.rsA, o.csA, packedA + rowPanels * mr * pc);
  }
  const bool rowMajor = o.csB == 1;
  if (rowMajor && g.m <= kern.streamRows) {
    const int64_t run = streamClaimCols(g.n, g.m, nt, 16);
    forEachUnit(nt, ceilDiv(g.n, run), [&](int64_t u) {
      streamColumns(kern, g.m, g.k, g.alpha, packedA, o.b, o.rsB, g.beta, g.c, g.ldc, u * run,
                    minI(g.n, (u + 1) * run));
    });
    return;
  }
  if (!rowMajor && o.rsB == 1 && g.m <= kern.streamRows && kern.streamTransposed != nullptr) {
    // B stored transposed (the tied-embedding logits x·Eᵀ), read in place: runs of columns, one per claim.
    const int64_t run = transposedRunCols(g.n, nt);
    forEachUnit(nt, ceilDiv(g.n, run), [&](int64_t u) {
      const int64_t j0 = u * run;
      kern.streamTransposed(g.k, kcMax, packedA, o.b + j0 * o.csB, o.csB, g.c + j0, g.ldc, g.alpha, g.beta,
                            static_cast<int>(g.m), minI(run, g.n - j0));
    });
    return;
  }
  const bool inPlace = rowMajor && (rowPanels == 1 || kern.copiesB);
  const bool transposedB = o.rsB == 1 && !rowMajor;
  const int64_t width = inPlace && g.m <= kern.wideRows ? kern.nrWide : nr;
  const int64_t tiles = ceilDiv(g.n, width);
  // Runs of tiles per claim: about four claims per thread (a late thread costs at most one run) and
  // runs long enough that the next-block prefetch has somewhere to go.
  const int64_t perClaim = nt > 1 ? std::max<int64_t>(1, tiles / (4 * nt)) : tiles;
  forEachUnit(nt, ceilDiv(tiles, perClaim), [&](int64_t u) {
    float* block = tlsFewB.get(kcMax * nr);
    const int64_t t1 = minI(tiles, (u + 1) * perClaim);
    for (int64_t t = u * perClaim; t < t1; t++) {
      const int64_t j = t * width;
      const int cols = static_cast<int>(minI(width, g.n - j));
      const bool readInPlace = inPlace && (kern.masksCols || cols == width);
      for (int64_t pb = 0; pb < kBlocks; pb++) {
        const int64_t pc = pb * kcMax;
        const int64_t kc = minI(kcMax, g.k - pc);
        const float beta = pb == 0 ? g.beta : 1.0f;
        // The block this thread reads next: this tile's next KC block, else the next tile's first.
        const float* next = nullptr;
        int64_t nextRows = 0;
        if (rowMajor && pb + 1 < kBlocks) {
          next = o.b + (pc + kcMax) * o.rsB + j;
          nextRows = minI(kcMax, g.k - pc - kcMax);
        } else if (rowMajor && t + 1 < t1) {
          next = o.b + j + width;
          nextRows = minI(kcMax, g.k);
        }
        // B stored transposed (x·Eᵀ for more rows than the stream routes take): the next tile's rows of
        // Bᵀ are one address range (contiguous when csB == k), fetched in order in chunks of `width`
        // floats, each KC block its share (as NextGroupFetch does), split over the row panels' calls.
        int64_t nextLd = o.rsB;
        if (transposedB && t + 1 < t1) {
          const int64_t chunks = ceilDiv(minI(width, g.n - j - width) * o.csB, width);
          const int64_t c0 = chunks * pc / g.k;
          next = o.b + (j + width) * o.csB + c0 * width;
          nextLd = width;
          nextRows = chunks * (pc + kc) / g.k - c0;
        }
        const float* bp = block;
        int64_t ldb = nr;
        if (readInPlace) {
          bp = o.b + pc * o.rsB + j;
          ldb = o.rsB;
        } else {
          kern.packB(kc, cols, o.b + pc * o.rsB + j * o.csB, o.rsB, o.csB, block);
        }
        const int64_t perPanel = ceilDiv(nextRows, rowPanels);
        for (int64_t ip = 0; ip < rowPanels; ip++) {
          MicroSide side;
          side.nextRows = std::max<int64_t>(0, minI(perPanel, nextRows - ip * perPanel));
          side.next = side.nextRows > 0 ? next + ip * perPanel * nextLd : nullptr;
          side.nextLd = nextLd;
          const bool copy = readInPlace && ip == 0 && rowPanels > 1;
          side.copyB = copy ? block : nullptr;
          const int rows = static_cast<int>(minI(mr, g.m - ip * mr));
          kern.micro(kc, packedA + rowPanels * mr * pc + ip * mr * kc, bp, ldb, g.c + ip * mr * g.ldc + j, g.ldc,
                     g.alpha, beta, rows, cols, &side);
          if (copy) {
            bp = block;
            ldb = nr;
          }
        }
      }
    }
  });
}

thread_local Scratch tlsStreamSums;

}  // namespace

void streamColumns(const GemmKernel& kern, int64_t m, int64_t k, float alpha, const float* packedA, const float* b,
                   int64_t ldb, float beta, float* c, int64_t ldc, int64_t j0, int64_t j1) {
  const int64_t kcMax = kern.kc;
  const int64_t run = streamRunCols(m);
  float* sums = tlsStreamSums.get(streamSumsFloats(m, run));
  for (int64_t j = j0; j < j1; j += run) {
    const int64_t cols = minI(run, j1 - j);
    for (int64_t pc = 0; pc < k; pc += kcMax) {
      kern.stream(minI(kcMax, k - pc), packedA + kern.mr * pc, b + pc * ldb + j, ldb, c + j, ldc, alpha,
                  pc == 0 ? beta : 1.0f, static_cast<int>(m), cols, sums);
    }
  }
}

namespace {

// One product on up to `maxThreads` threads; packing buffers come from the calling thread.
void gemmOne(const GemmCall& g, int maxThreads) {
  if (g.m == 0 || g.n == 0) return;
  if (g.k == 0 || g.alpha == 0.0f) {
    scaleRows(g.c, g.m, g.n, g.ldc, g.beta);
    return;
  }
  const GemmKernel& kern = currentIsa().gemm;
  int nt = threadsFor(productWork(g.m, g.n, g.k, sizeof(float)), kMinFlopsPerThread);
  if (nt > maxThreads) nt = maxThreads;
  if (fewRowsRoute(g, kern)) {
    gemmFewRows(g, operandsOf(g), nt, kern);
    return;
  }

  const int64_t kBlocks = ceilDiv(g.k, kern.kc);
  const int64_t kPadded = kBlocks * kern.kc;
  // Column block: the packed B (all of k) stays within the budget, and at most 256 panels per block.
  int64_t ncMax = (kPackedBBudget / kPadded) / kern.nr * kern.nr;
  ncMax = minI(ncMax < kern.nr ? kern.nr : ncMax, minI(256 * kern.nr, ceilDiv(g.n, kern.nr) * kern.nr));
  const int64_t jcBlocks = ceilDiv(g.n, ncMax);
  const int64_t nPanels = ceilDiv(ncMax, kern.nr);
  float* packB = tlsPackB.get(kPadded * nPanels * kern.nr);
  const int64_t states = jcBlocks * kBlocks * ceilDiv(nPanels, kChunkPanels);
  auto* chunkState = reinterpret_cast<std::atomic<uint8_t>*>(tlsChunkState.get(ceilDiv(states, 4)));
  auto* nextUnit = reinterpret_cast<std::atomic<int64_t>*>(tlsUnitCounters.get(jcBlocks * 2));
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

void scaleRows(float* c, int64_t rows, int64_t cols, int64_t ldc, float beta) {
  if (beta == 1.0f) return;
  for (int64_t i = 0; i < rows; i++) {
    float* row = c + i * ldc;
    if (beta == 0.0f) {
      std::memset(row, 0, static_cast<size_t>(cols) * sizeof(float));
    } else {
      for (int64_t j = 0; j < cols; j++) row[j] *= beta;
    }
  }
}

void sgemmStridedBatched(const GemmCall& call, int64_t strideA, int64_t strideB, int64_t strideC, int64_t batch) {
  if (batch <= 0) return;
  const double itemFlops =
      2.0 * static_cast<double>(call.m) * static_cast<double>(call.n) * static_cast<double>(call.k);
  const int pool = poolThreads();
  // Whole items per thread when there are enough of them, else each item on all threads. Whole items need
  // no shared state, so a batch worth one thread's minimum is enough (the causal blocks of attention:
  // 8 heads x 64 x 64 x 32 is 2.1 MFLOP).
  const bool perItem = pool > 1 && batch >= pool &&
                       (batch % pool == 0 || batch >= 4 * pool || itemFlops < 4.0 * kMinFlopsPerThread) &&
                       itemFlops * static_cast<double>(batch) >= kMinFlopsPerThread;
  forEachBatchItem(call, strideA, strideB, strideC, batch, perItem, gemmOne);
}

}  // namespace glam
