// Inference kernels (see infer.h). Plain C++ compiled once for the baseline instruction set: the
// attention over a cache streams keys and values from memory (a few flops per float loaded), so it
// runs at the memory's pace without wider vectors, and one build keeps its results the same on every
// machine path.
#include "infer.h"

#include <math.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "isa.h"
#include "threadpool.h"

namespace glam {
namespace {

#define GLAM_SIMD _Pragma("omp simd")
#define GLAM_INLINE inline __attribute__((always_inline))
#include "vecmath_impl.h"

// Work (in multiply-adds) below which one thread does it all (the pool's rule, threadsFor).
constexpr double kMinWorkPerThread = 1 << 16;

GLAM_INLINE float dot(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t d = 0; d < n; d++) s += a[d] * b[d];
  return s;
}

// Heads one attention unit takes at most (their maxima and sums sit on the stack).
constexpr int64_t kMaxHeadsPerUnit = 64;

thread_local std::vector<float> tlsScores;
thread_local std::vector<float> tlsAcc;

// Heads [h0, h1) of row r. The row's cached key and value rows are read once each, whole runs of the
// heads' columns in order, instead of once per head: the heads' columns of one row are contiguous, so
// memory sees a few sequential streams rather than a 256-byte read every `width` floats. Each head's
// sums keep their order over j (the scores, the max, the float64 sum, the weighted values), as the
// one-head-at-a-time loop had them.
void attendHeads(const PagedAttentionCall& c, int64_t r, int64_t h0, int64_t h1) {
  const int64_t width = c.heads * c.dHead;
  const int64_t nh = h1 - h0;
  const int64_t pos = c.rowPos[r];
  const int64_t n = pos + 1;
  if (static_cast<int64_t>(tlsScores.size()) < nh * n) tlsScores.resize(static_cast<size_t>(nh * n));
  if (static_cast<int64_t>(tlsAcc.size()) < nh * c.dHead) tlsAcc.resize(static_cast<size_t>(nh * c.dHead));
  float* s = tlsScores.data();  // head h's scores at s + (h - h0)·n
  float* acc = tlsAcc.data();   // head h's weighted values at acc + (h - h0)·dHead
  const float* q = c.q + r * width;
  const int32_t* table = c.blockTable + static_cast<int64_t>(c.rowSeq[r]) * c.maxBlocks;
  const int64_t bs = c.blockSize;
  float mx[kMaxHeadsPerUnit];
  for (int64_t h = 0; h < nh; h++) mx[h] = -INFINITY;
  for (int64_t j0 = 0; j0 < n; j0 += bs) {
    const int64_t slot0 = static_cast<int64_t>(table[j0 / bs]) * bs;
    const int64_t cnt = n - j0 < bs ? n - j0 : bs;
    for (int64_t t = 0; t < cnt; t++) {
      const int64_t j = j0 + t;
      const float* kr = c.kCache + (slot0 + t) * width;
      const float* bias = c.relBias + c.bucketOf[pos - j] * c.heads;
      for (int64_t h = h0; h < h1; h++) {
        const float v = c.scale * dot(q + h * c.dHead, kr + h * c.dHead, c.dHead) + bias[h];
        s[(h - h0) * n + j] = v;
        mx[h - h0] = v > mx[h - h0] ? v : mx[h - h0];
      }
    }
  }
  double sum[kMaxHeadsPerUnit];
  for (int64_t h = 0; h < nh; h++) {
    float* sh = s + h * n;
    const float m = mx[h];
    GLAM_SIMD
    for (int64_t j = 0; j < n; j++) sh[j] = expApprox(sh[j] - m);
    double total = 0.0;
    for (int64_t j = 0; j < n; j++) total += sh[j];
    sum[h] = total;
  }
  for (int64_t i = 0; i < nh * c.dHead; i++) acc[i] = 0.0f;
  for (int64_t j0 = 0; j0 < n; j0 += bs) {
    const int64_t slot0 = static_cast<int64_t>(table[j0 / bs]) * bs;
    const int64_t cnt = n - j0 < bs ? n - j0 : bs;
    for (int64_t t = 0; t < cnt; t++) {
      const float* vr = c.vCache + (slot0 + t) * width;
      for (int64_t h = 0; h < nh; h++) {
        const float p = s[h * n + j0 + t];
        const float* vh = vr + (h0 + h) * c.dHead;
        float* ah = acc + h * c.dHead;
        GLAM_SIMD
        for (int64_t d = 0; d < c.dHead; d++) ah[d] += p * vh[d];
      }
    }
  }
  for (int64_t h = 0; h < nh; h++) {
    const float inv = static_cast<float>(1.0 / sum[h]);
    const float* ah = acc + h * c.dHead;
    float* o = c.out + r * width + (h0 + h) * c.dHead;
    GLAM_SIMD
    for (int64_t d = 0; d < c.dHead; d++) o[d] = ah[d] * inv;
  }
}

// Descending by value, then ascending by index; NaN below every number.
GLAM_INLINE bool ranksBefore(float va, int32_t ia, float vb, int32_t ib) {
  const bool na = va != va, nb = vb != vb;
  if (na || nb) return !na && nb ? true : (na && nb ? ia < ib : false);
  return va > vb || (va == vb && ia < ib);
}

struct Entry {
  float v;
  int32_t i;
};

GLAM_INLINE bool entryBefore(const Entry& a, const Entry& b) { return ranksBefore(a.v, a.i, b.v, b.i); }

thread_local std::vector<Entry> tlsEntries;

void topkRow(const float* x, int64_t cols, int64_t k, int32_t* idx, float* val) {
  if (k == 0) return;
  std::vector<Entry>& e = tlsEntries;
  if (k <= 64) {
    // A sorted buffer of the best k so far; most values fall below its last entry and cost one compare.
    e.resize(static_cast<size_t>(k));
    int64_t held = 0;
    for (int64_t j = 0; j < cols; j++) {
      // Once the buffer is full, a later value enters only if it is a number above the last entry (ties
      // lose to the lower index held): a block of 16 with none above it is passed over with one vector
      // compare. A NaN last entry (every number enters) takes the one-by-one path.
      if (held == k && (j & 15) == 0 && j + 16 <= cols) {
        const float last = e[k - 1].v;
        if (last == last) {
          int above = 0;
#pragma omp simd reduction(| : above)
          for (int l = 0; l < 16; l++) above |= x[j + l] > last ? 1 : 0;
          if (above == 0) {
            j += 15;
            continue;
          }
        }
      }
      const float v = x[j];
      const int32_t i = static_cast<int32_t>(j);
      if (held == k && !ranksBefore(v, i, e[k - 1].v, e[k - 1].i)) continue;
      int64_t p = held < k ? held++ : k - 1;
      while (p > 0 && ranksBefore(v, i, e[p - 1].v, e[p - 1].i)) {
        e[p] = e[p - 1];
        p--;
      }
      e[p] = Entry{v, i};
    }
  } else {
    e.resize(static_cast<size_t>(cols));
    for (int64_t j = 0; j < cols; j++) e[j] = Entry{x[j], static_cast<int32_t>(j)};
    std::nth_element(e.begin(), e.begin() + (k - 1), e.end(), entryBefore);
    std::sort(e.begin(), e.begin() + k, entryBefore);
  }
  for (int64_t t = 0; t < k; t++) {
    idx[t] = e[t].i;
    val[t] = e[t].v;
  }
}

}  // namespace

void pagedAttention(const PagedAttentionCall& c) {
  double work = 0;
  for (int64_t r = 0; r < c.rows; r++) work += static_cast<double>(c.rowPos[r] + 1);
  work *= 2.0 * static_cast<double>(c.heads * c.dHead);
  // Units are a row's heads together, claimed one at a time, so rows of very different lengths share out
  // evenly; with few rows each row's heads are cut into groups (at least 4 units per thread), and no group
  // holds more than kMaxHeadsPerUnit heads.
  const int nt = threadsFor(work, kMinWorkPerThread, c.rows * c.heads);
  int64_t groups = (4 * nt + c.rows - 1) / c.rows;
  groups = std::max(groups, (c.heads + kMaxHeadsPerUnit - 1) / kMaxHeadsPerUnit);
  groups = std::min(groups, c.heads);
  forEachUnit(nt, c.rows * groups, [&](int64_t u) {
    const int64_t g = u % groups;
    attendHeads(c, u / groups, g * c.heads / groups, (g + 1) * c.heads / groups);
  });
}

void topkRows(const float* x, int64_t rows, int64_t cols, int64_t k, int32_t* idx, float* val) {
  forEachUnit(threadsFor(static_cast<double>(rows) * static_cast<double>(cols), kMinWorkPerThread, rows), rows,
              [&](int64_t r) { topkRow(x + r * cols, cols, k, idx + r * k, val + r * k); });
}

namespace {

// Where the probes' sums go, so that the reads are not optimised away.
volatile uint32_t probeSink = 0;

// One pass of the bandwidth probes: `threads` threads read the ranges laid end to end, each an equal
// contiguous share, with the current ISA's sumWords (as wide as its vectors). Returns the seconds it took.
double readPass(int threads, const ByteRange* ranges, int64_t count, int64_t total, int* used) {
  uint32_t partial[1024] = {0};
  const auto sumWords = currentIsa().rows.sumWords;
  const auto t0 = std::chrono::steady_clock::now();
  auto job = [&](int tid, int nt) {
    if (tid == 0) *used = nt;
    int64_t begin, end;
    splitRange(total, nt, tid, &begin, &end);
    uint32_t s = 0;
    int64_t at = 0;  // offset of range r's first byte in the whole
    for (int64_t r = 0; r < count && at < end; at += ranges[r].bytes, r++) {
      const int64_t b0 = std::max(begin, at) - at;
      const int64_t b1 = std::min(end, at + ranges[r].bytes) - at;
      if (b0 < b1) s += sumWords(static_cast<const unsigned char*>(ranges[r].data) + b0, b1 - b0);
    }
    partial[tid] = s;
  };
  parallelFor(threads, job, /*waitForAll=*/true);
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  uint32_t sum = 0;
  for (int t = 0; t < *used; t++) sum += partial[t];
  probeSink = sum;
  return dt;
}

BandwidthResult summarizeRates(std::vector<double>& rates, int used, int64_t bytes) {
  std::sort(rates.begin(), rates.end());
  return BandwidthResult{rates.back(), rates[rates.size() / 2], used, static_cast<int>(rates.size()), bytes};
}

}  // namespace

BandwidthResult readBandwidth(int threads, int64_t bytes, double seconds) {
  const int64_t floats = bytes / static_cast<int64_t>(sizeof(float)) / 64 * 64;
  float* buf = static_cast<float*>(std::aligned_alloc(64, static_cast<size_t>(floats) * sizeof(float)));
  if (buf == nullptr) return BandwidthResult{0, 0, 0, 0, 0};
  for (int64_t i = 0; i < floats; i++) buf[i] = static_cast<float>(i & 1023);
  const ByteRange range{buf, floats * static_cast<int64_t>(sizeof(float))};
  std::vector<double> rates;
  int used = 1;
  const auto start = std::chrono::steady_clock::now();
  do {
    rates.push_back(static_cast<double>(range.bytes) / readPass(threads, &range, 1, range.bytes, &used) / 1e9);
  } while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds ||
           rates.size() < 3);
  std::free(buf);
  return summarizeRates(rates, used, range.bytes);
}

BandwidthResult readBandwidthOf(int threads, const ByteRange* ranges, int64_t count, int trials) {
  int64_t total = 0;
  for (int64_t r = 0; r < count; r++) total += ranges[r].bytes;
  if (total == 0 || trials < 1) return BandwidthResult{0, 0, 0, 0, 0};
  std::vector<double> rates;
  int used = 1;
  for (int t = 0; t < trials; t++)
    rates.push_back(static_cast<double>(total) / readPass(threads, ranges, count, total, &used) / 1e9);
  return summarizeRates(rates, used, total);
}

}  // namespace glam
