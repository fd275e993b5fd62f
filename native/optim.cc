#include "optim.h"

#include <atomic>
#include <cmath>
#include <string>
#include <vector>

#include "args.h"
#include "threadpool.h"

namespace glam {
namespace {

// Work (element operations) below which one thread does it all, as in rows.cc.
constexpr int64_t kParallelWork = 1 << 16;
// Elements per unit of work. Units depend only on the shape, never on the thread count.
constexpr int64_t kUnit = 1 << 14;
// Elements per unit of the factored passes (each unit also keeps 2 float64 column sums per column).
constexpr int64_t kRowUnit = 1 << 15;

int threadsFor(double work, int64_t units) {
  if (work < static_cast<double>(kParallelWork) || units < 2) return 1;
  const double byWork = work / static_cast<double>(kParallelWork);
  int nt = poolThreads();
  if (byWork < nt) nt = static_cast<int>(byWork);
  if (units < nt) nt = static_cast<int>(units);
  return nt < 1 ? 1 : nt;
}

// Runs body(u) for every u in [0, units), units claimed one at a time from a counter by whichever threads
// run (a descheduled thread costs at most the unit it holds).
template <typename Body>
void forUnits(int64_t units, double workPerUnit, Body body) {
  const int nt = threadsFor(static_cast<double>(units) * workPerUnit, units);
  if (nt <= 1) {
    for (int64_t u = 0; u < units; u++) body(u);
    return;
  }
  std::atomic<int64_t> next{0};
  auto job = [&](int, int) {
    for (int64_t u = next.fetch_add(1); u < units; u = next.fetch_add(1)) body(u);
  };
  parallelFor(nt, job);
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

// ---- Node-API bindings -------------------------------------------------------------------------------

namespace {

napi_value numberValue(napi_env env, double x) {
  napi_value v;
  napi_create_double(env, x, &v);
  return v;
}

std::string stackShape(int64_t slices, int64_t rows, int64_t cols) {
  return fmt("slices=%lld rows=%lld cols=%lld", (long long)slices, (long long)rows, (long long)cols);
}

// Elements of `slices` matrices [rows, cols], their row and column statistics; false on overflow.
bool stackSizes(Args& args, int64_t slices, int64_t rows, int64_t cols, int64_t* n, int64_t* nRow, int64_t* nCol) {
  int64_t sr;
  if (!mulFits(slices, rows, &sr) || !mulFits(sr, cols, n) || !mulFits(slices, cols, nCol)) {
    return args.fail("sizes overflow (" + stackShape(slices, rows, cols) + ")");
  }
  *nRow = sr;
  return true;
}

}  // namespace

napi_value SumSquaresBinding(napi_env env, napi_callback_info info) {
  Args args(env, info, "sumSquares", 1);
  F32View x{};
  if (!args.f32(0, "x", &x)) return nullptr;
  return numberValue(env, sumSquares(x.data, x.length));
}

napi_value FillBinding(napi_env env, napi_callback_info info) {
  Args args(env, info, "fill", 2);
  F32View x{};
  float value = 0;
  args.f32(0, "x", &x);
  args.number(1, "value", &value);
  if (args.ok()) fillValue(x.data, x.length, value);
  return nullptr;
}

napi_value AdafactorFactoredStatsBinding(napi_env env, napi_callback_info info) {
  Args args(env, info, "adafactorFactoredStats", 10);
  F32View g{}, vRow{}, vCol{};
  F64View sumSq{};
  int64_t slices = 0, rows = 0, cols = 0, n = 0, nRow = 0, nCol = 0;
  double beta2 = 0, mix = 0, eps1 = 0;
  args.f32(0, "g", &g);
  args.f32(1, "vRow", &vRow);
  args.f32(2, "vCol", &vCol);
  args.size(3, "slices", &slices);
  args.size(4, "rows", &rows);
  args.size(5, "cols", &cols);
  args.number(6, "beta2", &beta2);
  args.number(7, "mix", &mix);
  args.number(8, "eps1", &eps1);
  args.f64(9, "sumSq", &sumSq);
  if (!args.ok() || !stackSizes(args, slices, rows, cols, &n, &nRow, &nCol)) return nullptr;
  const std::string shape = stackShape(slices, rows, cols);
  if (args.needs("g", g.length, n, shape) && args.needs("vRow", vRow.length, nRow, shape) &&
      args.needs("vCol", vCol.length, nCol, shape) && args.needs("sumSq", sumSq.length, slices, shape)) {
    adafactorFactoredStats(g.data, vRow.data, vCol.data, slices, rows, cols, beta2, mix, eps1, sumSq.data);
  }
  return nullptr;
}

napi_value AdafactorFactoredApplyBinding(napi_env env, napi_callback_info info) {
  Args args(env, info, "adafactorFactoredApply", 9);
  F32View g{}, vRow{}, vCol{}, p{};
  F64View step{};
  int64_t slices = 0, rows = 0, cols = 0, n = 0, nRow = 0, nCol = 0;
  double decay = 0;
  args.f32(0, "g", &g);
  args.f32(1, "vRow", &vRow);
  args.f32(2, "vCol", &vCol);
  args.f32(3, "p", &p);
  args.size(4, "slices", &slices);
  args.size(5, "rows", &rows);
  args.size(6, "cols", &cols);
  args.f64(7, "stepSizes", &step);
  args.number(8, "decay", &decay);
  if (!args.ok() || !stackSizes(args, slices, rows, cols, &n, &nRow, &nCol)) return nullptr;
  const std::string shape = stackShape(slices, rows, cols);
  if (args.needs("g", g.length, n, shape) && args.needs("vRow", vRow.length, nRow, shape) &&
      args.needs("vCol", vCol.length, nCol, shape) && args.needs("p", p.length, n, shape) &&
      args.needs("stepSizes", step.length, slices, shape)) {
    adafactorFactoredApply(g.data, vRow.data, vCol.data, p.data, slices, rows, cols, step.data, decay);
  }
  return nullptr;
}

napi_value AdafactorFullStatsBinding(napi_env env, napi_callback_info info) {
  Args args(env, info, "adafactorFullStats", 8);
  F32View g{}, v{};
  F64View sumSq{};
  int64_t slices = 0, size = 0, n = 0, nRow = 0, nCol = 0;
  double beta2 = 0, mix = 0, eps1 = 0;
  args.f32(0, "g", &g);
  args.f32(1, "v", &v);
  args.size(2, "slices", &slices);
  args.size(3, "size", &size);
  args.number(4, "beta2", &beta2);
  args.number(5, "mix", &mix);
  args.number(6, "eps1", &eps1);
  args.f64(7, "sumSq", &sumSq);
  if (!args.ok() || !stackSizes(args, slices, 1, size, &n, &nRow, &nCol)) return nullptr;
  const std::string shape = stackShape(slices, 1, size);
  if (args.needs("g", g.length, n, shape) && args.needs("v", v.length, n, shape) &&
      args.needs("sumSq", sumSq.length, slices, shape)) {
    adafactorFullStats(g.data, v.data, slices, size, beta2, mix, eps1, sumSq.data);
  }
  return nullptr;
}

napi_value AdafactorFullApplyBinding(napi_env env, napi_callback_info info) {
  Args args(env, info, "adafactorFullApply", 7);
  F32View g{}, v{}, p{};
  F64View step{};
  int64_t slices = 0, size = 0, n = 0, nRow = 0, nCol = 0;
  double decay = 0;
  args.f32(0, "g", &g);
  args.f32(1, "v", &v);
  args.f32(2, "p", &p);
  args.size(3, "slices", &slices);
  args.size(4, "size", &size);
  args.f64(5, "stepSizes", &step);
  args.number(6, "decay", &decay);
  if (!args.ok() || !stackSizes(args, slices, 1, size, &n, &nRow, &nCol)) return nullptr;
  const std::string shape = stackShape(slices, 1, size);
  if (args.needs("g", g.length, n, shape) && args.needs("v", v.length, n, shape) &&
      args.needs("p", p.length, n, shape) && args.needs("stepSizes", step.length, slices, shape)) {
    adafactorFullApply(g.data, v.data, p.data, slices, size, step.data, decay);
  }
  return nullptr;
}

}  // namespace glam
