// Node-API bindings of the grouped sgemm and the optimizer kernels: each validates its arguments on its own.
#include "bindings.h"

#include <string>

#include "../core/grouped.h"
#include "../core/optim.h"
#include "args.h"

namespace glam {

namespace {

bool spanOf(int64_t rows, int64_t cols, int64_t ld, int64_t* out) {
  if (rows == 0 || cols == 0) {
    *out = 0;
    return true;
  }
  int64_t body;
  if (!mulFits(rows - 1, ld, &body)) return false;
  *out = body + cols;
  return true;
}

bool batchSpanOf(int64_t one, int64_t stride, int64_t batch, int64_t* out) {
  if (one == 0 || batch == 0) {
    *out = 0;
    return true;
  }
  int64_t body;
  if (!mulFits(batch - 1, stride, &body)) return false;
  *out = body + one;
  return true;
}

}  // namespace

// sgemmGrouped(transA, transB, groups, offsets, d, n, alpha, a, lda, b, ldb, strideB, beta, c, ldc, strideC)
napi_value SgemmGroupedBinding(napi_env env, napi_callback_info info) {
  Args args(env, info, "sgemmGrouped", 16);
  GroupedCall g{};
  I32View offsets{};
  F32View a{}, b{}, c{};
  args.boolean(0, "transA", &g.transA);
  args.boolean(1, "transB", &g.transB);
  args.size(2, "groups", &g.groups);
  args.i32(3, "offsets", &offsets);
  args.size(4, "d", &g.d);
  args.size(5, "n", &g.n);
  args.number(6, "alpha", &g.alpha);
  args.f32(7, "a", &a);
  args.size(8, "lda", &g.lda);
  args.f32(9, "b", &b);
  args.size(10, "ldb", &g.ldb);
  args.size(11, "strideB", &g.strideB);
  args.number(12, "beta", &g.beta);
  args.f32(13, "c", &c);
  args.size(14, "ldc", &g.ldc);
  args.size(15, "strideC", &g.strideC);
  if (!args.ok()) return nullptr;
  if (offsets.length < g.groups + 1) {
    args.fail(fmt("offsets has %lld elements, needs groups + 1 = %lld", (long long)offsets.length,
                  (long long)(g.groups + 1)));
    return nullptr;
  }
  if (offsets.data[0] < 0) {
    args.fail(fmt("offsets[0]=%d is negative", offsets.data[0]));
    return nullptr;
  }
  for (int64_t i = 0; i < g.groups; i++) {
    if (offsets.data[i + 1] < offsets.data[i]) {
      args.fail(fmt("offsets must be non-decreasing: offsets[%lld]=%d > offsets[%lld]=%d", (long long)i,
                    offsets.data[i], (long long)(i + 1), offsets.data[i + 1]));
      return nullptr;
    }
  }
  const int64_t T = offsets.data[g.groups];
  const long long G = g.groups, D = g.d, N = g.n, TT = T;
  const std::string shapes =
      g.transA ? fmt("A=[%lld,%lld] B=[%lld,%lld] C_g=[%lld,%lld], %lld groups", TT, D, TT, N, D, N, G)
               : fmt("A=[%lld,%lld] op(B_g)=[%lld,%lld] C=[%lld,%lld], %lld groups", TT, D, D, N, TT, N, G);
  if (g.transA && g.transB) {
    args.fail("transB must be false when transA is true (" + shapes + ")");
    return nullptr;
  }
  const int64_t bCols = g.transA ? g.n : (g.transB ? g.d : g.n);
  const int64_t bRows = g.transA ? T : (g.transB ? g.n : g.d);
  if (g.lda < g.d) {
    args.fail(fmt("lda=%lld < %lld columns of A (%s)", (long long)g.lda, D, shapes.c_str()));
    return nullptr;
  }
  if (g.ldb < bCols) {
    args.fail(fmt("ldb=%lld < %lld columns of B (%s)", (long long)g.ldb, (long long)bCols, shapes.c_str()));
    return nullptr;
  }
  if (g.ldc < g.n) {
    args.fail(fmt("ldc=%lld < %lld columns of C (%s)", (long long)g.ldc, N, shapes.c_str()));
    return nullptr;
  }
  int64_t oneB, oneC, na, nb, nc;
  if (!spanOf(T, g.d, g.lda, &na) || !spanOf(bRows, bCols, g.ldb, &oneB) ||
      !spanOf(g.transA ? g.d : T, g.n, g.ldc, &oneC) || !batchSpanOf(oneB, g.strideB, g.groups, &nb) ||
      !batchSpanOf(oneC, g.strideC, g.groups, &nc)) {
    args.fail("sizes overflow (" + shapes + ")");
    return nullptr;
  }
  if (g.transA && g.groups > 1 && oneC > 0 && g.strideC < oneC) {
    args.fail(fmt("strideC=%lld < %lld: the C_g overlap (%s)", (long long)g.strideC, (long long)oneC,
                  shapes.c_str()));
    return nullptr;
  }
  if (!args.needs("A", a.length, na, shapes) || !args.needs("B", b.length, nb, shapes) ||
      !args.needs("C", c.length, nc, shapes)) {
    return nullptr;
  }
  g.offsets = offsets.data;
  g.a = a.data;
  g.b = b.data;
  g.c = c.data;
  sgemmGrouped(g);
  return nullptr;
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
