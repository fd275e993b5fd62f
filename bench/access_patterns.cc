// How fast two threads read weights from memory in the access patterns of a batch-1 decode step, side by
// side in one process (the machine's bandwidth moves between levels for seconds at a time, so every
// pattern runs in every round and each round's figures are comparable only with each other):
//
//   probe         each thread sums a contiguous half of the buffer (what `glam bench decode` probes)
//   column halves each thread reads its half of every row of a [3072 x 768] matrix, 24 copies in turn
//                 (how the stream route splits a one-row product's columns between threads)
//   row halves    each thread reads a contiguous half of the rows of the same matrices
//   16 rows       the logits x·Eᵀ (E 256000 x 768) as the transposed stream route reads E: 16 rows at a time,
//                 64 bytes of each in turn, transposed in registers, one FMA chain per column, the next
//                 16 rows fetched towards L2 spread over the block
//   row by row    the same product reading one embedding row after another (a dot product per row, four
//                 partial sums: a different order of additions than the kernels' column chains)
//
// Not part of the build: g++ -O3 -march=native -pthread bench/access_patterns.cc -o /tmp/access_patterns
// && nice -n -10 /tmp/access_patterns [rounds]. Needs AVX-512 and about 1.2 GB of memory.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "sum_range.h"

namespace {

// The kernels' own register transpose and next-group fetch.
#include "../native/core/simd_impl.h"

constexpr int kThreads = 2;
constexpr int64_t kVocab = 256000, kModel = 768, kFf = 3072, kCopies = 24, kBlock = 512;
// Every pattern's result lands here and is printed at the end, so no read can be optimised away.
float sink[kThreads * 16];

// Runs part(t) on kThreads threads `reps` times (a spinning pool: no thread start in the timing), returns
// GB/s for `bytes` read per repetition.
template <typename Part>
double gbs(int reps, double bytes, Part part) {
  std::atomic<int> go{0}, done{0};
  std::vector<std::thread> pool;
  for (int t = 1; t < kThreads; t++) {
    pool.emplace_back([&, t] {
      for (int i = 0; i < reps; i++) {
        while (go.load() <= i) {
        }
        part(t, i);
        done++;
      }
    });
  }
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; i++) {
    go++;
    part(0, i);
    done++;
    while (done.load() < kThreads * (i + 1)) {
    }
  }
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (auto& th : pool) th.join();
  return reps * bytes / dt / 1e9;
}

// y[j] = x · E[j] for rows [j0, j1) of E, 16 rows at a time as the transposed stream route reads them.
void logits16Rows(const float* e, const float* x, float* y, int64_t j0, int64_t j1) {
  const int64_t groupBytes = 16 * kModel * static_cast<int64_t>(sizeof(float));
  for (int64_t j = j0; j < j1; j += 16) {
    const float* rows = e + j * kModel;
    for (int64_t pc = 0; pc < kModel; pc += kBlock) {
      const int64_t end = std::min(kModel, pc + kBlock);
      NextGroupFetch fetch(j + 32 <= j1 ? rows + 16 * kModel : nullptr, groupBytes, pc, end, kModel);
      __m512 acc = _mm512_setzero_ps();
      for (int64_t p = pc; p < end; p += 16) {
        fetch.step();
        __m512 col[16];
        for (int i = 0; i < 16; i++) col[i] = _mm512_loadu_ps(rows + i * kModel + p);
        transpose16x16(col);
        for (int q = 0; q < 16; q++) acc = _mm512_fmadd_ps(_mm512_set1_ps(x[p + q]), col[q], acc);
      }
      _mm512_storeu_ps(y + j, pc == 0 ? acc : _mm512_add_ps(acc, _mm512_loadu_ps(y + j)));
    }
  }
}

// The same product, one embedding row after another.
void logitsRowByRow(const float* e, const float* x, float* y, int64_t j0, int64_t j1) {
  for (int64_t j = j0; j < j1; j++) {
    const float* w = e + j * kModel;
    __m512 a = _mm512_setzero_ps(), b = a, c = a, d = a;
    for (int64_t k = 0; k < kModel; k += 64) {
      a = _mm512_fmadd_ps(_mm512_load_ps(w + k), _mm512_load_ps(x + k), a);
      b = _mm512_fmadd_ps(_mm512_load_ps(w + k + 16), _mm512_load_ps(x + k + 16), b);
      c = _mm512_fmadd_ps(_mm512_load_ps(w + k + 32), _mm512_load_ps(x + k + 32), c);
      d = _mm512_fmadd_ps(_mm512_load_ps(w + k + 48), _mm512_load_ps(x + k + 48), d);
    }
    y[j] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a, b), _mm512_add_ps(c, d)));
  }
}

float* filled(int64_t n) {
  float* p = static_cast<float*>(std::aligned_alloc(64, static_cast<size_t>(n) * sizeof(float)));
  if (p == nullptr) {
    std::fprintf(stderr, "access_patterns: out of memory\n");
    std::exit(1);
  }
  for (int64_t i = 0; i < n; i++) p[i] = 1e-3f * static_cast<float>(i & 255);
  return p;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 8;
  const int64_t matFloats = kFf * kModel;
  float* mats = filled(kCopies * matFloats);
  float* emb = filled(kVocab * kModel);
  float* x = filled(kModel);
  float* y = filled(kVocab);
  const double matBytes = 4.0 * matFloats;
  const double embBytes = 4.0 * kVocab * kModel;
  std::printf("GB/s, two threads, median of 5 per round: probe | column halves | row halves | 16 rows | row by row\n");
  for (int r = 0; r < rounds; r++) {
    std::vector<double> m[5];
    for (int i = 0; i < 5; i++) {
      m[0].push_back(gbs(1, embBytes, [&](int t, int) {
        sink[16 * t] = sumRange(emb + t * (kVocab / kThreads) * kModel, (kVocab / kThreads) * kModel);
      }));
      m[1].push_back(gbs(2 * kCopies, matBytes, [&](int t, int rep) {
        const float* w = mats + (rep % kCopies) * matFloats;
        float s = 0;
        for (int64_t row = 0; row < kFf; row++) s += sumRange(w + row * kModel + t * (kModel / 2), kModel / 2);
        sink[16 * t] = s;
      }));
      m[2].push_back(gbs(2 * kCopies, matBytes, [&](int t, int rep) {
        const float* w = mats + (rep % kCopies) * matFloats;
        sink[16 * t] = sumRange(w + t * (matFloats / 2), matFloats / 2);
      }));
      m[3].push_back(gbs(1, embBytes, [&](int t, int) {
        logits16Rows(emb, x, y, t * (kVocab / kThreads), (t + 1) * (kVocab / kThreads));
      }));
      m[4].push_back(gbs(1, embBytes, [&](int t, int) {
        logitsRowByRow(emb, x, y, t * (kVocab / kThreads), (t + 1) * (kVocab / kThreads));
      }));
    }
    std::printf("round %d: %.1f | %.1f | %.1f | %.1f | %.1f\n", r + 1, median(m[0]), median(m[1]), median(m[2]),
                median(m[3]), median(m[4]));
  }
  float check = y[kVocab - 1];
  for (float v : sink) check += v;
  std::printf("(checksum %g)\n", static_cast<double>(check));
  return 0;
}
