#include "optim.h"

#include <cmath>
#include <vector>

#include "threadpool.h"

namespace glam {
namespace {

// Work (element operations) below which one thread does it all, as in rows.cc.
constexpr double kParallelWork = 1 << 16;
// Elements per unit of work. Units depend only on the shape, never on the thread count.
constexpr int64_t kUnit = 1 << 14;
// Elements per unit of the factored passes (each unit also keeps 2 float64 column sums per column).
constexpr int64_t kRowUnit = 1 << 15;

// Runs body(u) for every u in [0, units), each unit worth about `workPerUnit` element operations.
template <typename Body>
void forUnits(int64_t units, double workPerUnit, Body body) {
  forEachUnit(threadsFor(static_cast<double>(units) * workPerUnit, kParallelWork, units), units, body);
}

// Per-unit partial results, reused across calls (one buffer per calling thread).
double* scratch(std::vector<double>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}
thread_local std::vector<double> tlPartials;
thread_local std::vector<double> tlColumns;
thread_local std::vector<double> tlFactors;

double sumSquaresRange(const float* x, int64_t n) {
  double acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; i++) {
    const double v = x[i];
    acc += v * v;
  }
  return acc;
}

// Rows per unit of a factored pass over matrices with `cols` columns.
int64_t rowsPerUnit(int64_t cols) {
  const int64_t r = cols > 0 ? kRowUnit / cols : kRowUnit;
  return r < 1 ? 1 : r;
}

// rowTotal[s] = Σ_i R[s,i] (in row order), colFactor[s,j] = 1/sqrt(C[s,j]).
void prepareFactors(const float* vRow, const float* vCol, int64_t slices, int64_t rows, int64_t cols,
                    double* rowTotal, double* colFactor) {
  for (int64_t s = 0; s < slices; s++) {
    double t = 0;
    for (int64_t i = 0; i < rows; i++) t += vRow[s * rows + i];
    rowTotal[s] = t;
    for (int64_t j = 0; j < cols; j++) colFactor[s * cols + j] = 1.0 / std::sqrt(static_cast<double>(vCol[s * cols + j]));
  }
}

}  // namespace

double sumSquares(const float* x, int64_t n) {
  const int64_t units = (n + kUnit - 1) / kUnit;
  if (units <= 1) return sumSquaresRange(x, n);
  double* part = scratch(tlPartials, units);
  forUnits(units, static_cast<double>(kUnit), [&](int64_t u) {
    const int64_t b = u * kUnit, e = b + kUnit < n ? b + kUnit : n;
    part[u] = sumSquaresRange(x + b, e - b);
  });
  double acc = 0;
  for (int64_t u = 0; u < units; u++) acc += part[u];
  return acc;
}

void fillValue(float* x, int64_t n, float value) {
  const int64_t units = (n + kUnit - 1) / kUnit;
  forUnits(units, static_cast<double>(kUnit) / 4, [&](int64_t u) {
    const int64_t b = u * kUnit, e = b + kUnit < n ? b + kUnit : n;
    for (int64_t i = b; i < e; i++) x[i] = value;
  });
}

void adafactorFactoredStats(const float* g, float* vRow, float* vCol, int64_t slices, int64_t rows, int64_t cols,
                            double beta2, double mix, double eps1, double* sumSq) {
  // One pass over g. Σ U² = Σ_ij g²·ΣR/(R_i·C_j) = ΣR · Σ_j (1/C_j)·Σ_i g_ij²/R_i, and R_i is final as soon as
  // row i is summed, so each unit also accumulates W_j = Σ_i g_ij²/R_i over its rows (the row is still in
  // L1), and Σ U² follows from W, C and ΣR without reading g again. This is the reference's sum with the
  // factors regrouped: it differs from it by float64 rounding only.
  const int64_t rpu = rowsPerUnit(cols);
  const int64_t perSlice = (rows + rpu - 1) / rpu;
  const int64_t units = slices * perSlice;
  const double unitWork = static_cast<double>(rpu * cols);
  // Per unit: column partial sums of g² + ε1 (cols), then of g²/R_i (cols).
  double* colPart = scratch(tlColumns, units * 2 * cols);
  forUnits(units, 3 * unitWork, [&](int64_t u) {
    const int64_t s = u / perSlice, i0 = (u % perSlice) * rpu, i1 = i0 + rpu < rows ? i0 + rpu : rows;
    double* acc = colPart + u * 2 * cols;
    double* accW = acc + cols;
    for (int64_t j = 0; j < 2 * cols; j++) acc[j] = 0;
    for (int64_t i = i0; i < i1; i++) {
      const float* row = g + (s * rows + i) * cols;
      double rowSum = 0;
#pragma omp simd reduction(+ : rowSum)
      for (int64_t j = 0; j < cols; j++) {
        const double gj = row[j];
        const double q = gj * gj + eps1;
        rowSum += q;
        acc[j] += q;
      }
      float& r = vRow[s * rows + i];
      r = static_cast<float>(beta2 * r + mix * rowSum);
      const double invR = 1.0 / static_cast<double>(r);
#pragma omp simd
      for (int64_t j = 0; j < cols; j++) {
        const double gj = row[j];
        accW[j] += gj * gj * invR;
      }
    }
  });
  // Column statistics and Σ_j W_j/C_j per chunk of columns: the unit partials of a slice added in unit order.
  constexpr int64_t kColChunk = 256;
  const int64_t colChunks = (cols + kColChunk - 1) / kColChunk;
  double* part = scratch(tlPartials, slices * colChunks);
  forUnits(slices * colChunks, static_cast<double>(2 * perSlice * kColChunk), [&](int64_t u) {
    const int64_t s = u / colChunks, j0 = (u % colChunks) * kColChunk;
    const int64_t j1 = j0 + kColChunk < cols ? j0 + kColChunk : cols;
    double chunk = 0;
    for (int64_t j = j0; j < j1; j++) {
      double c = 0, w = 0;
      for (int64_t b = 0; b < perSlice; b++) {
        const double* acc = colPart + (s * perSlice + b) * 2 * cols;
        c += acc[j];
        w += acc[cols + j];
      }
      float& v = vCol[s * cols + j];
      v = static_cast<float>(beta2 * v + mix * c);
      chunk += w == 0 ? 0.0 : w / static_cast<double>(v);  // an all-zero column adds 0 (also with no rows)
    }
    part[u] = chunk;
  });
  for (int64_t s = 0; s < slices; s++) {
    double rowTotal = 0;
    for (int64_t i = 0; i < rows; i++) rowTotal += vRow[s * rows + i];
    double w = 0;
    for (int64_t c = 0; c < colChunks; c++) w += part[s * colChunks + c];
    sumSq[s] = rowTotal * w;
  }
}

void adafactorFactoredApply(const float* g, const float* vRow, const float* vCol, float* p, int64_t slices,
                            int64_t rows, int64_t cols, const double* step, double decay) {
  const int64_t rpu = rowsPerUnit(cols);
  const int64_t perSlice = (rows + rpu - 1) / rpu;
  double* rowTotal = scratch(tlFactors, slices + slices * cols);
  double* colFactor = rowTotal + slices;
  prepareFactors(vRow, vCol, slices, rows, cols, rowTotal, colFactor);
  forUnits(slices * perSlice, 3.0 * static_cast<double>(rpu * cols), [&](int64_t u) {
    const int64_t s = u / perSlice, i0 = (u % perSlice) * rpu, i1 = i0 + rpu < rows ? i0 + rpu : rows;
    const double* cf = colFactor + s * cols;
    const double st = step[s];
    for (int64_t i = i0; i < i1; i++) {
      const int64_t off = (s * rows + i) * cols;
      const float* row = g + off;
      float* pr = p + off;
      const double rf = std::sqrt(rowTotal[s] / static_cast<double>(vRow[s * rows + i]));
#pragma omp simd
      for (int64_t j = 0; j < cols; j++) {
        const double x = static_cast<double>(row[j]) * rf * cf[j];
        const double pk = pr[j];
        pr[j] = static_cast<float>(pk - decay * pk - st * x);
      }
    }
  });
}

void adafactorFullStats(const float* g, float* v, int64_t slices, int64_t size, double beta2, double mix,
                        double eps1, double* sumSq) {
  const int64_t perSlice = (size + kUnit - 1) / kUnit;
  double* part = scratch(tlPartials, slices * perSlice);
  forUnits(slices * perSlice, 8.0 * static_cast<double>(kUnit), [&](int64_t u) {
    const int64_t s = u / perSlice, b = (u % perSlice) * kUnit, e = b + kUnit < size ? b + kUnit : size;
    const float* gs = g + s * size;
    float* vs = v + s * size;
    double acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int64_t k = b; k < e; k++) {
      const double gk = gs[k];
      const float vk = static_cast<float>(beta2 * static_cast<double>(vs[k]) + mix * (gk * gk + eps1));
      vs[k] = vk;
      const double x = gk / std::sqrt(static_cast<double>(vk));
      acc += x * x;
    }
    part[u] = acc;
  });
  for (int64_t s = 0; s < slices; s++) {
    double acc = 0;
    for (int64_t b = 0; b < perSlice; b++) acc += part[s * perSlice + b];
    sumSq[s] = acc;
  }
}

void adafactorFullApply(const float* g, const float* v, float* p, int64_t slices, int64_t size, const double* step,
                        double decay) {
  const int64_t perSlice = (size + kUnit - 1) / kUnit;
  forUnits(slices * perSlice, 8.0 * static_cast<double>(kUnit), [&](int64_t u) {
    const int64_t s = u / perSlice, b = (u % perSlice) * kUnit, e = b + kUnit < size ? b + kUnit : size;
    const float* gs = g + s * size;
    const float* vs = v + s * size;
    float* ps = p + s * size;
    const double st = step[s];
#pragma omp simd
    for (int64_t k = b; k < e; k++) {
      const double x = static_cast<double>(gs[k]) / std::sqrt(static_cast<double>(vs[k]));
      const double pk = ps[k];
      ps[k] = static_cast<float>(pk - decay * pk - st * x);
    }
  });
}

}  // namespace glam
