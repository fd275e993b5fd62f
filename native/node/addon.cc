// The Node-API surface of the kernel core. Each binding validates its arguments on its own (types, sizes,
// lengths, index ranges) before any memory is touched, so a bad direct call throws instead of crashing.
#include <node_api.h>

#include <cstdint>
#include <string>

#include "../core/gemm.h"
#include "../core/isa.h"
#include "../core/peak.h"
#include "../core/rows.h"
#include "../core/threadpool.h"
#include "args.h"
#include "bindings.h"

namespace glam {
namespace {

napi_value numberValue(napi_env env, double x) {
  napi_value v;
  napi_create_double(env, x, &v);
  return v;
}

// Elements a [rows, cols] matrix with leading dimension ld spans; false on overflow.
bool span(int64_t rows, int64_t cols, int64_t ld, int64_t* out) {
  if (rows == 0 || cols == 0) {
    *out = 0;
    return true;
  }
  int64_t body;
  if (!mulFits(rows - 1, ld, &body)) return false;
  *out = body + cols;
  return true;
}

// Elements `batch` matrices `stride` apart span, each `one` long.
bool batchSpan(int64_t one, int64_t stride, int64_t batch, int64_t* out) {
  if (one == 0 || batch == 0) {
    *out = 0;
    return true;
  }
  int64_t body;
  if (!mulFits(batch - 1, stride, &body)) return false;
  *out = body + one;
  return true;
}

// Shared by sgemm and sgemmStridedBatched: the checks of checks.ts, repeated here independently.
bool checkGemm(Args& args, const GemmCall& g, const F32View& a, const F32View& b, const F32View& c, int64_t sa,
               int64_t sb, int64_t sc, int64_t batch) {
  const int64_t ar = g.transA ? g.k : g.m, ac = g.transA ? g.m : g.k;
  const int64_t br = g.transB ? g.n : g.k, bc = g.transB ? g.k : g.n;
  const std::string shapes = fmt("op(A)=[%lld,%lld] op(B)=[%lld,%lld] C=[%lld,%lld]", (long long)g.m,
                                 (long long)g.k, (long long)g.k, (long long)g.n, (long long)g.m, (long long)g.n);
  if (g.lda < ac) return args.fail(fmt("lda=%lld < %lld columns of A (%s)", (long long)g.lda, (long long)ac,
                                       shapes.c_str()));
  if (g.ldb < bc) return args.fail(fmt("ldb=%lld < %lld columns of B (%s)", (long long)g.ldb, (long long)bc,
                                       shapes.c_str()));
  if (g.ldc < g.n) return args.fail(fmt("ldc=%lld < %lld columns of C (%s)", (long long)g.ldc, (long long)g.n,
                                        shapes.c_str()));
  int64_t oneA, oneB, oneC, na, nb, nc;
  if (!span(ar, ac, g.lda, &oneA) || !span(br, bc, g.ldb, &oneB) || !span(g.m, g.n, g.ldc, &oneC) ||
      !batchSpan(oneA, sa, batch, &na) || !batchSpan(oneB, sb, batch, &nb) || !batchSpan(oneC, sc, batch, &nc)) {
    return args.fail("sizes overflow (" + shapes + ")");
  }
  const std::string where = fmt("%s, batch %lld", shapes.c_str(), (long long)batch);
  return args.needs("A", a.length, na, where) && args.needs("B", b.length, nb, where) &&
         args.needs("C", c.length, nc, where);
}

bool readGemm(Args& args, GemmCall* g, F32View* a, F32View* b, F32View* c, bool batched, int64_t* sa,
              int64_t* sb, int64_t* sc, int64_t* batch) {
  size_t i = 0;
  args.boolean(i++, "transA", &g->transA);
  args.boolean(i++, "transB", &g->transB);
  args.size(i++, "m", &g->m);
  args.size(i++, "n", &g->n);
  args.size(i++, "k", &g->k);
  args.number(i++, "alpha", &g->alpha);
  args.f32(i++, "a", a);
  args.size(i++, "lda", &g->lda);
  if (batched) args.size(i++, "strideA", sa);
  args.f32(i++, "b", b);
  args.size(i++, "ldb", &g->ldb);
  if (batched) args.size(i++, "strideB", sb);
  args.number(i++, "beta", &g->beta);
  args.f32(i++, "c", c);
  args.size(i++, "ldc", &g->ldc);
  if (batched) {
    args.size(i++, "strideC", sc);
    args.size(i++, "batch", batch);
  }
  if (!args.ok()) return false;
  g->a = a->data;
  g->b = b->data;
  g->c = c->data;
  return checkGemm(args, *g, *a, *b, *c, *sa, *sb, *sc, *batch);
}

napi_value Sgemm(napi_env env, napi_callback_info info) {
  Args args(env, info, "sgemm", 13);
  GemmCall g{};
  F32View a{}, b{}, c{};
  int64_t sa = 0, sb = 0, sc = 0, batch = 1;
  if (readGemm(args, &g, &a, &b, &c, false, &sa, &sb, &sc, &batch)) sgemm(g);
  return nullptr;
}

napi_value SgemmStridedBatched(napi_env env, napi_callback_info info) {
  Args args(env, info, "sgemmStridedBatched", 17);
  GemmCall g{};
  F32View a{}, b{}, c{};
  int64_t sa = 0, sb = 0, sc = 0, batch = 0;
  if (readGemm(args, &g, &a, &b, &c, true, &sa, &sb, &sc, &batch)) sgemmStridedBatched(g, sa, sb, sc, batch);
  return nullptr;
}

napi_value Add(napi_env env, napi_callback_info info) {
  Args args(env, info, "add", 3);
  F32View a{}, b{}, out{};
  args.f32(0, "a", &a);
  args.f32(1, "b", &b);
  args.f32(2, "out", &out);
  if (args.needs("b", b.length, a.length) && args.needs("out", out.length, a.length)) {
    add(a.data, b.data, out.data, a.length);
  }
  return nullptr;
}

napi_value Axpy(napi_env env, napi_callback_info info) {
  Args args(env, info, "axpy", 3);
  float alpha = 0;
  F32View x{}, y{};
  args.number(0, "alpha", &alpha);
  args.f32(1, "x", &x);
  args.f32(2, "y", &y);
  if (args.needs("y", y.length, x.length)) axpy(alpha, x.data, y.data, x.length);
  return nullptr;
}

napi_value Gelu(napi_env env, napi_callback_info info) {
  Args args(env, info, "gelu", 2);
  F32View x{}, out{};
  args.f32(0, "x", &x);
  args.f32(1, "out", &out);
  if (args.needs("out", out.length, x.length)) gelu(x.data, out.data, x.length);
  return nullptr;
}

napi_value GeluBackward(napi_env env, napi_callback_info info) {
  Args args(env, info, "geluBackward", 3);
  F32View x{}, dy{}, dx{};
  args.f32(0, "x", &x);
  args.f32(1, "dy", &dy);
  args.f32(2, "dx", &dx);
  if (args.needs("dy", dy.length, x.length) && args.needs("dx", dx.length, x.length)) {
    geluBackward(x.data, dy.data, dx.data, x.length);
  }
  return nullptr;
}

napi_value GatedGelu(napi_env env, napi_callback_info info) {
  Args args(env, info, "gatedGelu", 3);
  F32View a{}, b{}, out{};
  args.f32(0, "a", &a);
  args.f32(1, "b", &b);
  args.f32(2, "out", &out);
  if (args.needs("b", b.length, a.length) && args.needs("out", out.length, a.length)) {
    gatedGelu(a.data, b.data, out.data, a.length);
  }
  return nullptr;
}

napi_value GatedGeluBackward(napi_env env, napi_callback_info info) {
  Args args(env, info, "gatedGeluBackward", 5);
  F32View a{}, b{}, dy{}, da{}, db{};
  args.f32(0, "a", &a);
  args.f32(1, "b", &b);
  args.f32(2, "dy", &dy);
  args.f32(3, "da", &da);
  args.f32(4, "db", &db);
  const int64_t n = a.length;
  if (args.needs("b", b.length, n) && args.needs("dy", dy.length, n) && args.needs("da", da.length, n) &&
      args.needs("db", db.length, n)) {
    gatedGeluBackward(a.data, b.data, dy.data, da.data, db.data, n);
  }
  return nullptr;
}

std::string rowsShape(int64_t rows, int64_t cols) {
  return fmt("rows=%lld cols=%lld", (long long)rows, (long long)cols);
}

napi_value Rmsnorm(napi_env env, napi_callback_info info) {
  Args args(env, info, "rmsnorm", 7);
  F32View x{}, scale{}, out{}, inv{};
  int64_t rows = 0, cols = 0, n = 0;
  float eps = 0;
  args.f32(0, "x", &x);
  args.f32(1, "scale", &scale);
  args.size(2, "rows", &rows);
  args.size(3, "cols", &cols);
  args.number(4, "eps", &eps);
  args.f32(5, "out", &out);
  args.f32(6, "invRms", &inv);
  if (!args.ok()) return nullptr;
  if (!mulFits(rows, cols, &n)) return args.fail("rows * cols overflows"), nullptr;
  const std::string shape = rowsShape(rows, cols);
  if (args.needs("x", x.length, n, shape) && args.needs("out", out.length, n, shape) &&
      args.needs("scale", scale.length, cols, shape) && args.needs("invRms", inv.length, rows, shape)) {
    rmsnorm(x.data, scale.data, rows, cols, eps, out.data, inv.data);
  }
  return nullptr;
}

napi_value RmsnormBackward(napi_env env, napi_callback_info info) {
  Args args(env, info, "rmsnormBackward", 8);
  F32View x{}, scale{}, inv{}, dy{}, dx{}, dscale{};
  int64_t rows = 0, cols = 0, n = 0;
  args.f32(0, "x", &x);
  args.f32(1, "scale", &scale);
  args.f32(2, "invRms", &inv);
  args.f32(3, "dy", &dy);
  args.size(4, "rows", &rows);
  args.size(5, "cols", &cols);
  args.f32(6, "dx", &dx);
  args.f32(7, "dscale", &dscale);
  if (!args.ok()) return nullptr;
  if (!mulFits(rows, cols, &n)) return args.fail("rows * cols overflows"), nullptr;
  const std::string shape = rowsShape(rows, cols);
  if (args.needs("x", x.length, n, shape) && args.needs("dy", dy.length, n, shape) &&
      args.needs("dx", dx.length, n, shape) && args.needs("scale", scale.length, cols, shape) &&
      args.needs("dscale", dscale.length, cols, shape) && args.needs("invRms", inv.length, rows, shape)) {
    rmsnormBackward(x.data, scale.data, inv.data, dy.data, rows, cols, dx.data, dscale.data);
  }
  return nullptr;
}

napi_value SoftmaxRows(napi_env env, napi_callback_info info) {
  Args args(env, info, "softmaxRows", 4);
  F32View x{}, out{};
  int64_t rows = 0, cols = 0, n = 0;
  args.f32(0, "x", &x);
  args.size(1, "rows", &rows);
  args.size(2, "cols", &cols);
  args.f32(3, "out", &out);
  if (!args.ok()) return nullptr;
  if (!mulFits(rows, cols, &n)) return args.fail("rows * cols overflows"), nullptr;
  const std::string shape = rowsShape(rows, cols);
  if (args.needs("x", x.length, n, shape) && args.needs("out", out.length, n, shape)) {
    softmaxRows(x.data, rows, cols, out.data);
  }
  return nullptr;
}

napi_value SoftmaxRowsBackward(napi_env env, napi_callback_info info) {
  Args args(env, info, "softmaxRowsBackward", 5);
  F32View y{}, dy{}, dx{};
  int64_t rows = 0, cols = 0, n = 0;
  args.f32(0, "y", &y);
  args.f32(1, "dy", &dy);
  args.size(2, "rows", &rows);
  args.size(3, "cols", &cols);
  args.f32(4, "dx", &dx);
  if (!args.ok()) return nullptr;
  if (!mulFits(rows, cols, &n)) return args.fail("rows * cols overflows"), nullptr;
  const std::string shape = rowsShape(rows, cols);
  if (args.needs("y", y.length, n, shape) && args.needs("dy", dy.length, n, shape) &&
      args.needs("dx", dx.length, n, shape)) {
    softmaxRowsBackward(y.data, dy.data, rows, cols, dx.data);
  }
  return nullptr;
}

napi_value CausalSoftmax(napi_env env, napi_callback_info info) {
  Args args(env, info, "causalSoftmax", 6);
  F32View scores{}, bias{};
  int64_t batchHeads = 0, heads = 0, t = 0, tt = 0, ns = 0, nb = 0;
  float scale = 0;
  args.f32(0, "scores", &scores);
  args.f32(1, "bias", &bias);
  args.size(2, "batchHeads", &batchHeads);
  args.size(3, "heads", &heads);
  args.size(4, "t", &t);
  args.number(5, "scale", &scale);
  if (!args.ok()) return nullptr;
  if (heads == 0 && batchHeads > 0) return args.fail("heads must be positive"), nullptr;
  if (!mulFits(t, t, &tt) || !mulFits(batchHeads, tt, &ns) || !mulFits(heads, tt, &nb)) {
    return args.fail("sizes overflow"), nullptr;
  }
  const std::string shape =
      fmt("batchHeads=%lld heads=%lld t=%lld", (long long)batchHeads, (long long)heads, (long long)t);
  if (args.needs("scores", scores.length, ns, shape) && args.needs("bias", bias.length, nb, shape)) {
    causalSoftmax(scores.data, bias.data, batchHeads, heads, t, scale);
  }
  return nullptr;
}

// Every target in [0, cols); the message matches the reference kernels'.
bool checkTargets(Args& args, const I32View& targets, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; r++) {
    const int32_t tgt = targets.data[r];
    if (tgt < 0 || tgt >= cols) {
      return args.fail(fmt("target %d at row %lld outside [0, %lld)", tgt, (long long)r, (long long)cols));
    }
  }
  return true;
}

napi_value CrossEntropy(napi_env env, napi_callback_info info) {
  Args args(env, info, "crossEntropy", 6);
  F32View logits{}, losses{}, lse{};
  I32View targets{};
  int64_t rows = 0, cols = 0, n = 0;
  args.f32(0, "logits", &logits);
  args.i32(1, "targets", &targets);
  args.size(2, "rows", &rows);
  args.size(3, "cols", &cols);
  args.f32(4, "losses", &losses);
  args.f32(5, "lse", &lse);
  if (!args.ok()) return nullptr;
  if (!mulFits(rows, cols, &n)) return args.fail("rows * cols overflows"), nullptr;
  const std::string shape = rowsShape(rows, cols);
  if (args.needs("logits", logits.length, n, shape) && args.needs("targets", targets.length, rows, shape) &&
      args.needs("losses", losses.length, rows, shape) && args.needs("lse", lse.length, rows, shape) &&
      checkTargets(args, targets, rows, cols)) {
    crossEntropy(logits.data, targets.data, rows, cols, losses.data, lse.data);
  }
  return nullptr;
}

napi_value CrossEntropyBackward(napi_env env, napi_callback_info info) {
  Args args(env, info, "crossEntropyBackward", 8);
  F32View logits{}, lse{}, dlogits{};
  I32View targets{};
  int64_t rows = 0, cols = 0, n = 0;
  float ceScale = 0, zScale = 0;
  args.f32(0, "logits", &logits);
  args.f32(1, "lse", &lse);
  args.i32(2, "targets", &targets);
  args.size(3, "rows", &rows);
  args.size(4, "cols", &cols);
  args.number(5, "ceScale", &ceScale);
  args.number(6, "zScale", &zScale);
  args.f32(7, "dlogits", &dlogits);
  if (!args.ok()) return nullptr;
  if (!mulFits(rows, cols, &n)) return args.fail("rows * cols overflows"), nullptr;
  const std::string shape = rowsShape(rows, cols);
  if (args.needs("logits", logits.length, n, shape) && args.needs("dlogits", dlogits.length, n, shape) &&
      args.needs("targets", targets.length, rows, shape) && args.needs("lse", lse.length, rows, shape) &&
      checkTargets(args, targets, rows, cols)) {
    crossEntropyBackward(logits.data, lse.data, targets.data, rows, cols, ceScale, zScale, dlogits.data);
  }
  return nullptr;
}

// Every index in [0, rows); the message matches the reference kernels'.
bool checkIndices(Args& args, const I32View& idx, int64_t rows) {
  for (int64_t i = 0; i < idx.length; i++) {
    const int32_t r = idx.data[i];
    if (r < 0 || r >= rows) {
      return args.fail(fmt("index %d at %lld outside [0, %lld)", r, (long long)i, (long long)rows));
    }
  }
  return true;
}

napi_value GatherRows(napi_env env, napi_callback_info info) {
  Args args(env, info, "gatherRows", 4);
  F32View src{}, out{};
  I32View idx{};
  int64_t cols = 0, n = 0;
  args.f32(0, "src", &src);
  args.i32(1, "idx", &idx);
  args.size(2, "cols", &cols);
  args.f32(3, "out", &out);
  if (!args.ok()) return nullptr;
  if (!mulFits(idx.length, cols, &n)) return args.fail("idx.length * cols overflows"), nullptr;
  const int64_t srcRows = cols == 0 ? 0 : src.length / cols;
  if (args.needs("out", out.length, n) && checkIndices(args, idx, srcRows)) {
    gatherRows(src.data, idx.data, idx.length, cols, out.data);
  }
  return nullptr;
}

napi_value ScatterAddRows(napi_env env, napi_callback_info info) {
  Args args(env, info, "scatterAddRows", 5);
  F32View src{}, weight{}, out{};
  I32View idx{};
  int64_t cols = 0, n = 0;
  args.f32(0, "src", &src);
  args.i32(1, "idx", &idx);
  args.f32(2, "weight", &weight);
  args.size(3, "cols", &cols);
  args.f32(4, "out", &out);
  if (!args.ok()) return nullptr;
  if (!mulFits(idx.length, cols, &n)) return args.fail("idx.length * cols overflows"), nullptr;
  const int64_t outRows = cols == 0 ? 0 : out.length / cols;
  if (args.needs("src", src.length, n) && args.needs("weight", weight.length, idx.length) &&
      checkIndices(args, idx, outRows)) {
    scatterAddRows(src.data, idx.data, weight.data, idx.length, cols, out.data);
  }
  return nullptr;
}

napi_value RowDotScale(napi_env env, napi_callback_info info) {
  Args args(env, info, "rowDotScale", 6);
  F32View a{}, b{}, scale{}, dot{};
  int64_t rows = 0, cols = 0, n = 0;
  args.f32(0, "a", &a);
  args.f32(1, "b", &b);
  args.f32(2, "scale", &scale);
  args.size(3, "rows", &rows);
  args.size(4, "cols", &cols);
  args.f32(5, "dot", &dot);
  if (!args.ok()) return nullptr;
  if (!mulFits(rows, cols, &n)) return args.fail("rows * cols overflows"), nullptr;
  const std::string shape = rowsShape(rows, cols);
  if (args.needs("a", a.length, n, shape) && args.needs("b", b.length, n, shape) &&
      args.needs("scale", scale.length, rows, shape) && args.needs("dot", dot.length, rows, shape)) {
    rowDotScale(a.data, b.data, scale.data, rows, cols, dot.data);
  }
  return nullptr;
}

napi_value SetThreads(napi_env env, napi_callback_info info) {
  Args args(env, info, "setThreads", 1);
  int64_t n = 0;
  if (!args.size(0, "n", &n)) return nullptr;
  if (n < 1 || n > 1024) return args.fail(fmt("n must be in [1, 1024], got %lld", (long long)n)), nullptr;
  return numberValue(env, setPoolThreads(static_cast<int>(n)));
}

napi_value GetThreads(napi_env env, napi_callback_info) { return numberValue(env, poolThreads()); }

napi_value ForcePortable(napi_env env, napi_callback_info info) {
  Args args(env, info, "forcePortable", 1);
  bool on = false;
  if (!args.boolean(0, "on", &on)) return nullptr;
  napi_value v;
  napi_get_boolean(env, forcePortable(on), &v);
  return v;
}

void setString(napi_env env, napi_value obj, const char* key, const char* value) {
  napi_value v;
  napi_create_string_utf8(env, value, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, key, v);
}

napi_value Info(napi_env env, napi_callback_info) {
  napi_value obj;
  napi_create_object(env, &obj);
  setString(env, obj, "isa", currentIsa().name);
  setString(env, obj, "reason", isaReason());
  napi_set_named_property(env, obj, "threads", numberValue(env, poolThreads()));
  napi_set_named_property(env, obj, "cores", numberValue(env, availableCores()));
  napi_value avx2;
  napi_get_boolean(env, cpuHasAvx2Fma(), &avx2);
  napi_set_named_property(env, obj, "avx2Fma", avx2);
  return obj;
}

napi_value Peak(napi_env env, napi_callback_info info) {
  Args args(env, info, "peak", 2);
  int64_t threads = 0;
  float seconds = 0;
  args.size(0, "threads", &threads);
  args.number(1, "seconds", &seconds);
  if (!args.ok()) return nullptr;
  if (threads < 1 || threads > 1024) return args.fail("threads must be in [1, 1024]"), nullptr;
  if (!(seconds > 0 && seconds <= 60)) return args.fail("seconds must be in (0, 60]"), nullptr;
  const PeakResult r = peakGflops(static_cast<int>(threads), seconds);
  napi_value obj;
  napi_create_object(env, &obj);
  napi_set_named_property(env, obj, "gflops", numberValue(env, r.best));
  napi_set_named_property(env, obj, "median", numberValue(env, r.median));
  napi_set_named_property(env, obj, "trials", numberValue(env, r.trials));
  napi_set_named_property(env, obj, "threads", numberValue(env, r.threads));
  setString(env, obj, "isa", currentIsa().name);
  return obj;
}

// Address of an ArrayBuffer's data modulo 64, so JavaScript can place a view on a cache-line boundary.
// ArrayBuffer backing stores never move, so the answer stays valid.
napi_value AddressMod64(napi_env env, napi_callback_info info) {
  Args args(env, info, "addressMod64", 1);
  if (!args.ok()) return nullptr;
  size_t argc = 1;
  napi_value arg;
  napi_get_cb_info(env, info, &argc, &arg, nullptr, nullptr);
  bool isBuffer = false;
  void* data = nullptr;
  size_t length = 0;
  if (napi_is_arraybuffer(env, arg, &isBuffer) != napi_ok || !isBuffer) {
    return args.fail("buffer must be an ArrayBuffer"), nullptr;
  }
  napi_get_arraybuffer_info(env, arg, &data, &length);
  return numberValue(env, static_cast<double>(reinterpret_cast<uintptr_t>(data) % 64));
}

struct Export {
  const char* name;
  napi_callback fn;
};

constexpr Export kExports[] = {
    {"sgemm", Sgemm},
    {"sgemmStridedBatched", SgemmStridedBatched},
    {"sgemmGrouped", SgemmGroupedBinding},
    {"add", Add},
    {"axpy", Axpy},
    {"gelu", Gelu},
    {"geluBackward", GeluBackward},
    {"gatedGelu", GatedGelu},
    {"gatedGeluBackward", GatedGeluBackward},
    {"rmsnorm", Rmsnorm},
    {"rmsnormBackward", RmsnormBackward},
    {"softmaxRows", SoftmaxRows},
    {"softmaxRowsBackward", SoftmaxRowsBackward},
    {"causalSoftmax", CausalSoftmax},
    {"crossEntropy", CrossEntropy},
    {"crossEntropyBackward", CrossEntropyBackward},
    {"gatherRows", GatherRows},
    {"rowDotScale", RowDotScale},
    {"scatterAddRows", ScatterAddRows},
    {"setThreads", SetThreads},
    {"getThreads", GetThreads},
    {"forcePortable", ForcePortable},
    {"info", Info},
    {"peak", Peak},
    {"addressMod64", AddressMod64},
    {"sumSquares", SumSquaresBinding},
    {"fill", FillBinding},
    {"adafactorFactoredStats", AdafactorFactoredStatsBinding},
    {"adafactorFactoredApply", AdafactorFactoredApplyBinding},
    {"adafactorFullStats", AdafactorFullStatsBinding},
    {"adafactorFullApply", AdafactorFullApplyBinding},
};

void ensurePool() {
  static const bool started = [] {
    setPoolThreads(defaultThreadCount());
    return true;
  }();
  (void)started;
}

}  // namespace
}  // namespace glam

NAPI_MODULE_INIT() {
  glam::ensurePool();
  for (const auto& e : glam::kExports) {
    napi_value fn;
    napi_create_function(env, e.name, NAPI_AUTO_LENGTH, e.fn, nullptr, &fn);
    napi_set_named_property(env, exports, e.name, fn);
  }
  return exports;
}
