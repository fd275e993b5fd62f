// How fast the one-row stream kernel (GemmKernel::stream, gemm_avx512.cc) reads weights from memory when
// each thread reads whole 512-row blocks of [3072 x 768] matrices (the layout a k-split of a one-row product
// would give each thread), against the read-bandwidth probe's loop, on 4 KiB pages and on 2 MiB pages
// (madvise(MADV_HUGEPAGE), which this machine's transparent huge pages honour), side by side in one process:
//
//   probe            each thread sums its matrices (what `glam bench decode` probes; 4 KiB pages there)
//   stream, per row  the kernel's loop: 8 rows per pass, the rows 8 on fetched towards L2 a line of each
//                    row per vector summed (as built)
//   stream, in order the same, the rows ahead fetched in address order (8 lines per vector summed)
//
// Every pattern runs in every round on both page sizes, and each round's figures are compared only with
// each other (this machine's bandwidth moves with its neighbours from second to second): the ratios printed
// are medians of per-round ratios.
//
// Not part of the build: g++ -O3 -march=native -pthread bench/stream_fetch.cc -o /tmp/stream_fetch &&
// nice -n -10 /tmp/stream_fetch [threads, default 2] [rounds, default 15]. Needs AVX-512 and 1.9 GB.
#include <immintrin.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "sum_range.h"

namespace {

// The kernels' lane masks.
#include "../native/core/simd_impl.h"

constexpr int64_t kRows = 3072, kCols = 768, kCopies = 100, kBlock = 512;  // 944 MB of float32 per buffer
constexpr int MR = 6;

// One KC block of a one-row stream call: the kernel's loop (Q = 8 rows per pass over the sums).
template <bool kInOrder>
void streamBlock(const float* a, const float* b, int64_t ldb, int64_t cols, float* sums) {
  constexpr int Q = 8;
  constexpr int64_t kAhead = 8;
  const int64_t vecs = (cols + 15) / 16;
  const __mmask16 last = laneMask(static_cast<int>(cols - 16 * (vecs - 1)));
  for (int64_t i = 0; i < vecs * 16; i += 16) _mm512_store_ps(sums + i, _mm512_setzero_ps());
  for (int64_t p = 0; p + Q <= kBlock; p += Q, b += Q * ldb, a += Q * MR) {
    const int64_t aheadRows = p + kAhead < kBlock ? std::min<int64_t>(Q, kBlock - p - kAhead) : 0;
    const float* ahead = b + kAhead * ldb;
    __m512 av[Q];
    for (int q = 0; q < Q; q++) av[q] = _mm512_set1_ps(a[q * MR]);
    for (int64_t v = 0; v < vecs; v++) {
      const __mmask16 m = v == vecs - 1 ? last : static_cast<__mmask16>(0xFFFF);
      __m512 bv[Q];
      for (int q = 0; q < Q; q++) bv[q] = _mm512_maskz_loadu_ps(m, b + q * ldb + 16 * v);
      for (int64_t q = 0; q < aheadRows; q++) {
        // Whole rows are one address range: in order, line v·aheadRows + q of the rows ahead.
        const float* line = kInOrder ? ahead + 16 * (v * aheadRows + q) : ahead + q * ldb + 16 * v;
        _mm_prefetch(reinterpret_cast<const char*>(line), _MM_HINT_T1);
      }
      float* s = sums + 16 * v;
      __m512 t = _mm512_load_ps(s);
      for (int q = 0; q < Q; q++) t = _mm512_fmadd_ps(av[q], bv[q], t);
      _mm512_store_ps(s, t);
    }
  }
}

float* weights(bool huge) {
  const size_t bytes = static_cast<size_t>(kRows * kCols * kCopies) * sizeof(float);
  const size_t rounded = (bytes + (2u << 20) - 1) / (2u << 20) * (2u << 20);
  float* p = static_cast<float*>(std::aligned_alloc(2u << 20, rounded));
  if (p == nullptr) {
    std::fprintf(stderr, "stream_fetch: out of memory\n");
    std::exit(1);
  }
  if (huge && madvise(p, rounded, MADV_HUGEPAGE) != 0) std::fprintf(stderr, "stream_fetch: madvise failed\n");
  for (int64_t i = 0; i < kRows * kCols * kCopies; i++) p[i] = 1e-3f * static_cast<float>(i & 255);
  return p;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

float sink[64];

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 15;
  float* buffers[2] = {weights(false), weights(true)};
  alignas(64) static float a[MR * kBlock];
  for (float& x : a) x = 0.5f;
  const char* names[3] = {"probe", "stream, per row", "stream, in order"};
  // rate[page][pattern][round], GB/s
  std::vector<double> rate[2][3];
  for (int r = 0; r < rounds; r++) {
    for (int page = 0; page < 2; page++) {
      for (int pattern = 0; pattern < 3; pattern++) {
        const float* buf = buffers[page];
        auto part = [&](int t) {
          alignas(64) float sums[kCols + 16];
          // Each thread its own matrices, each matrix block by block (whole rows, in address order).
          for (int64_t cp = t; cp < kCopies; cp += threads) {
            const float* w = buf + cp * kRows * kCols;
            for (int64_t pc = 0; pc < kRows; pc += kBlock) {
              if (pattern == 0) {
                sink[t] += sumRange(w + pc * kCols, kBlock * kCols);
              } else if (pattern == 1) {
                streamBlock<false>(a, w + pc * kCols, kCols, kCols, sums);
              } else {
                streamBlock<true>(a, w + pc * kCols, kCols, kCols, sums);
              }
            }
          }
          sink[t] += sums[0];
        };
        const auto t0 = std::chrono::steady_clock::now();
        std::vector<std::thread> pool;
        for (int t = 1; t < threads; t++) pool.emplace_back(part, t);
        part(0);
        for (auto& th : pool) th.join();
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        rate[page][pattern].push_back(static_cast<double>(kRows * kCols * kCopies) * sizeof(float) / dt / 1e9);
      }
    }
  }
  std::printf("%d thread(s), %d rounds: GB/s, median [min-max]\n", threads, rounds);
  for (int page = 0; page < 2; page++) {
    for (int pattern = 0; pattern < 3; pattern++) {
      auto v = rate[page][pattern];
      std::sort(v.begin(), v.end());
      std::printf("  %-8s %-17s %5.1f [%.1f-%.1f]\n", page == 0 ? "4 KiB" : "2 MiB", names[pattern], median(v),
                  v.front(), v.back());
    }
  }
  auto ratio = [&](int p1, int q1, int p0, int q0) {
    std::vector<double> v;
    for (int r = 0; r < rounds; r++) v.push_back(rate[p1][q1][r] / rate[p0][q0][r]);
    std::sort(v.begin(), v.end());
    return std::make_tuple(median(v), v.front(), v.back());
  };
  const struct {
    const char* what;
    int p1, q1, p0, q0;
  } pairs[] = {{"stream per row / probe, 4 KiB", 0, 1, 0, 0},   {"stream in order / per row, 4 KiB", 0, 2, 0, 1},
               {"probe 2 MiB / 4 KiB", 1, 0, 0, 0},             {"stream per row 2 MiB / 4 KiB", 1, 1, 0, 1},
               {"stream per row / probe, 2 MiB", 1, 1, 1, 0},   {"stream in order / per row, 2 MiB", 1, 2, 1, 1}};
  std::printf("per-round ratios, median [min-max]:\n");
  for (const auto& p : pairs) {
    const auto [m, lo, hi] = ratio(p.p1, p.q1, p.p0, p.q0);
    std::printf("  %-34s %.3f [%.3f-%.3f]\n", p.what, m, lo, hi);
  }
  float check = 0;
  for (float s : sink) check += s;
  std::printf("(checksum %g)\n", static_cast<double>(check));
  return 0;
}
