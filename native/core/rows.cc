#include "rows.h"

#include <algorithm>
#include <cstring>

#include "isa.h"
#include "threadpool.h"

namespace glam {
namespace {

// Work (in element-operations) below which one thread does it all: a wake-up costs a few microseconds.
constexpr double kParallelWork = 1 << 16;
constexpr int64_t kChunkAlign = 16;  // floats: chunks start on cache-line multiples of the range

// Runs body(begin, end) over [0, total) in contiguous chunks (multiples of `align`), a few chunks per
// thread so a late or descheduled thread costs little.
template <typename Body>
void forRanges(int64_t total, double workPerItem, int64_t align, Body body) {
  const int nt = threadsFor(static_cast<double>(total) * workPerItem, kParallelWork);
  if (nt <= 1) {
    body(int64_t{0}, total);
    return;
  }
  const int64_t blocks = (total + align - 1) / align;
  const int64_t chunks = blocks < 4 * nt ? blocks : 4 * nt;
  forEachUnit(nt, chunks, [&](int64_t c) {
    int64_t b0, b1;
    splitRange(blocks, static_cast<int>(chunks), static_cast<int>(c), &b0, &b1);
    const int64_t begin = b0 * align;
    const int64_t end = b1 * align < total ? b1 * align : total;
    if (end > begin) body(begin, end);
  });
}

const RowKernels& k() { return currentIsa().rows; }

// Relative cost of one element for the transcendental kernels (exp + divide) against a plain add.
constexpr double kExpCost = 8.0;

}  // namespace

void add(const float* a, const float* b, float* out, int64_t n) {
  const auto f = k().add;
  forRanges(n, 1.0, kChunkAlign, [&](int64_t i0, int64_t i1) { f(a + i0, b + i0, out + i0, i1 - i0); });
}

void axpy(float alpha, const float* x, float* y, int64_t n) {
  const auto f = k().axpy;
  forRanges(n, 1.0, kChunkAlign, [&](int64_t i0, int64_t i1) { f(alpha, x + i0, y + i0, i1 - i0); });
}

void gelu(const float* x, float* out, int64_t n) {
  const auto f = k().gelu;
  forRanges(n, kExpCost, kChunkAlign, [&](int64_t i0, int64_t i1) { f(x + i0, out + i0, i1 - i0); });
}

void geluBackward(const float* x, const float* dy, float* dx, int64_t n) {
  const auto f = k().geluBackward;
  forRanges(n, kExpCost, kChunkAlign, [&](int64_t i0, int64_t i1) { f(x + i0, dy + i0, dx + i0, i1 - i0); });
}

void gatedGelu(const float* a, const float* b, float* out, int64_t n) {
  const auto f = k().gatedGelu;
  forRanges(n, kExpCost, kChunkAlign, [&](int64_t i0, int64_t i1) { f(a + i0, b + i0, out + i0, i1 - i0); });
}

void gatedGeluBackward(const float* a, const float* b, const float* dy, float* da, float* db, int64_t n) {
  const auto f = k().gatedGeluBackward;
  forRanges(n, kExpCost, kChunkAlign,
            [&](int64_t i0, int64_t i1) { f(a + i0, b + i0, dy + i0, da + i0, db + i0, i1 - i0); });
}

void rmsnorm(const float* x, const float* scale, int64_t rows, int64_t cols, float eps, float* out, float* invRms) {
  const auto f = k().rmsnorm;
  forRanges(rows, 2.0 * static_cast<double>(cols), 1, [&](int64_t r0, int64_t r1) {
    f(x + r0 * cols, scale, r1 - r0, cols, eps, out + r0 * cols, invRms + r0);
  });
}

void rmsnormBackward(const float* x, const float* scale, const float* invRms, const float* dy, int64_t rows,
                     int64_t cols, float* dx, float* dscale) {
  // dscale first, split by columns (each column summed over all rows by one thread, in row order, so the
  // result does not depend on the thread count); then dx by rows, which may overwrite dy.
  const auto fs = k().rmsnormBackwardScale;
  forRanges(cols, 2.0 * static_cast<double>(rows), kChunkAlign,
            [&](int64_t c0, int64_t c1) { fs(x, invRms, dy, rows, cols, c0, c1, dscale); });
  const auto fx = k().rmsnormBackwardDx;
  forRanges(rows, 3.0 * static_cast<double>(cols), 1, [&](int64_t r0, int64_t r1) {
    fx(x + r0 * cols, scale, invRms + r0, dy + r0 * cols, r1 - r0, cols, dx + r0 * cols);
  });
}

void softmaxRows(const float* x, int64_t rows, int64_t cols, float* out) {
  const auto f = k().softmaxRows;
  forRanges(rows, kExpCost * static_cast<double>(cols), 1,
            [&](int64_t r0, int64_t r1) { f(x + r0 * cols, r1 - r0, cols, out + r0 * cols); });
}

void softmaxRowsBackward(const float* y, const float* dy, int64_t rows, int64_t cols, float* dx) {
  const auto f = k().softmaxRowsBackward;
  forRanges(rows, 2.0 * static_cast<double>(cols), 1, [&](int64_t r0, int64_t r1) {
    f(y + r0 * cols, dy + r0 * cols, r1 - r0, cols, dx + r0 * cols);
  });
}

void causalSoftmax(float* scores, const float* bias, int64_t batchHeads, int64_t heads, int64_t t, float scale) {
  const auto f = k().causalSoftmax;
  // Row i holds i+1 live entries: about t/2 on average.
  forRanges(batchHeads * t, kExpCost * static_cast<double>(t) / 2.0, 1,
            [&](int64_t r0, int64_t r1) { f(scores, bias, r0, r1, heads, t, scale); });
}

void crossEntropy(const float* logits, const int32_t* targets, int64_t rows, int64_t cols, float* losses,
                  float* lse) {
  const auto f = k().crossEntropy;
  forRanges(rows, kExpCost * static_cast<double>(cols), 1, [&](int64_t r0, int64_t r1) {
    f(logits + r0 * cols, targets + r0, r1 - r0, cols, losses + r0, lse + r0);
  });
}

void crossEntropyBackward(const float* logits, const float* lse, const int32_t* targets, int64_t rows,
                          int64_t cols, float ceScale, float zScale, float* dlogits) {
  const auto f = k().crossEntropyBackward;
  forRanges(rows, kExpCost * static_cast<double>(cols), 1, [&](int64_t r0, int64_t r1) {
    f(logits + r0 * cols, lse + r0, targets + r0, r1 - r0, cols, ceScale, zScale, dlogits + r0 * cols);
  });
}

void gatherRows(const float* src, const int32_t* idx, int64_t count, int64_t cols, float* out) {
  const size_t rowBytes = static_cast<size_t>(cols) * sizeof(float);
  forRanges(count, 2.0 * static_cast<double>(cols), 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) std::memmove(out + i * cols, src + static_cast<int64_t>(idx[i]) * cols, rowBytes);
  });
}

void scatterAddRows(const float* src, const int32_t* idx, const float* weight, int64_t count, int64_t cols,
                    float* out) {
  // Split by destination rows: each range applies, in index order, the updates that land in it, so
  // repeated indices never race and each element sums in index order (the same bits on any thread
  // count), and every thread reads whole rows (a column split made 2 threads slower than 1: each chunk
  // walked all rows for a few hundred bytes of each).
  const auto f = k().scatterAddRows;
  const double work = 2.0 * static_cast<double>(count) * static_cast<double>(cols);
  if (threadsFor(work, kParallelWork) <= 1) {
    f(src, idx, weight, count, cols, 0, cols, out);
    return;
  }
  int64_t rowsOut = 0;
  for (int64_t i = 0; i < count; i++) rowsOut = idx[i] + 1 > rowsOut ? idx[i] + 1 : rowsOut;
  forRanges(rowsOut, work / static_cast<double>(rowsOut), 1, [&](int64_t r0, int64_t r1) {
    for (int64_t i = 0; i < count; i++) {
      if (idx[i] >= r0 && idx[i] < r1) f(src + i * cols, idx + i, weight + i, 1, cols, 0, cols, out);
    }
  });
}

void rowDotScale(float* a, const float* b, const float* scale, int64_t rows, int64_t cols, float* dot) {
  const auto f = k().rowDotScale;
  forRanges(rows, 3.0 * static_cast<double>(cols), 1, [&](int64_t r0, int64_t r1) {
    f(a + r0 * cols, b + r0 * cols, scale + r0, r1 - r0, cols, dot + r0);
  });
}

}  // namespace glam
