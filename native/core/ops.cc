// The validated entry points of ops.h: every argument check of the core, written once, then the call into
// the drivers (gemm.cc, grouped.cc, rows.cc, optim.cc), which trust what they are given.
#include "ops.h"

#include <cstdarg>
#include <cstdio>

#include "gemm.h"
#include "gemm_bf16.h"
#include "grouped.h"
#include "infer.h"
#include "moe.h"
#include "optim.h"
#include "rows.h"

namespace glam {
namespace {

std::string fmt(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* format, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, format);
  std::vsnprintf(buf, sizeof buf, format, ap);
  va_end(ap);
  return buf;
}

using ll = long long;

// a·b, or false when it exceeds 2^62 (no buffer is that large, so such sizes are errors).
bool mulFits(int64_t a, int64_t b, int64_t* out) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r) || r > (int64_t{1} << 62)) return false;
  *out = r;
  return true;
}

bool addFits(int64_t a, int64_t b, int64_t* out) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r) || r > (int64_t{1} << 62)) return false;
  *out = r;
  return true;
}

template <typename M>
std::string shapeOf(const M& m) {
  return fmt("[%lld,%lld]%s", (ll)m.rows, (ll)m.cols, m.trans ? " transposed" : "");
}

// Collects the first failure of one call as "op: message".
class Check {
 public:
  explicit Check(const char* op) : op_(op) {}
  bool ok() const { return status_.ok(); }
  Status status() const { return status_; }

  bool fail(const std::string& message) {
    if (status_.ok()) status_.error = std::string(op_) + ": " + message;
    return false;
  }

  // A well-formed view (float32 or bf16), `count` of them `stride` elements apart, all inside the buffer.
  template <typename M>
  bool mat(const char* name, const M& m, int64_t stride = 0, int64_t count = 1) {
    if (!ok()) return false;
    const int64_t storedRows = m.trans ? m.cols : m.rows;
    const int64_t storedCols = m.trans ? m.rows : m.cols;
    if (m.ld < storedCols) {
      return fail(fmt("%s %s has ld %lld < %lld stored columns", name, shapeOf(m).c_str(), (ll)m.ld,
                      (ll)storedCols));
    }
    int64_t need = 0;
    if (storedRows > 0 && storedCols > 0 && count > 0) {
      int64_t body, reach;
      if (!mulFits(storedRows - 1, m.ld, &body) || !mulFits(count - 1, stride, &reach) ||
          !addFits(body + storedCols, reach, &need) || !addFits(need, m.offset, &need)) {
        return fail(fmt("%s %s: sizes overflow", name, shapeOf(m).c_str()));
      }
    }
    if (need > m.size) {
      const std::string stack = count > 1 ? fmt(", %lld of them %lld apart", (ll)count, (ll)stride) : "";
      return fail(fmt("%s %s (ld %lld, offset %lld%s) needs %lld elements, its buffer has %lld", name,
                      shapeOf(m).c_str(), (ll)m.ld, (ll)m.offset, stack.c_str(), (ll)need, (ll)m.size));
    }
    return true;
  }

  // Outputs of a batch must not all be the same view (stride 0): each product would overwrite the last, and
  // nothing would bound the batch. With a stride of 1 or more, mat() bounds the count by the output buffer,
  // so the work is bounded by the buffers the call touches.
  bool outputsApart(const Mat& m, int64_t stride, int64_t count) {
    if (!ok() || count <= 1 || m.rows == 0 || m.cols == 0 || stride > 0) return ok();
    return fail(fmt("strideC is 0 with batch %lld: every product would write the same c %s", (ll)count,
                    shapeOf(m).c_str()));
  }

  // A view whose rows are contiguous (not transposed, ld = cols): what the row kernels read.
  bool rowMajor(const char* name, const Mat& m) {
    if (!mat(name, m)) return false;
    if (m.trans) return fail(fmt("%s must not be transposed", name));
    if (m.ld != m.cols) {
      return fail(fmt("%s %s must have contiguous rows (ld = cols = %lld), got ld %lld", name, shapeOf(m).c_str(),
                      (ll)m.cols, (ll)m.ld));
    }
    return true;
  }

  template <typename M>
  bool notTransposed(const char* name, const M& m) {
    return ok() && (!m.trans || fail(fmt("%s must not be transposed", name)));
  }

  // "x.rows=3 must equal out.rows=4".
  bool equal(const char* what, int64_t x, const char* other, int64_t y) {
    return ok() && (x == y || fail(fmt("%s=%lld must equal %s=%lld", what, (ll)x, other, (ll)y)));
  }

  bool sameShape(const char* a, const Mat& x, const char* b, const Mat& y) {
    return ok() && ((x.rows == y.rows && x.cols == y.cols) ||
                    fail(fmt("%s %s and %s %s must have the same shape", a, shapeOf(x).c_str(), b,
                             shapeOf(y).c_str())));
  }

  // A buffer that must hold at least `need` elements.
  bool holds(const char* name, int64_t size, int64_t need, const std::string& where = "") {
    if (!ok() || size >= need) return ok();
    std::string msg = fmt("%s has %lld elements, needs %lld", name, (ll)size, (ll)need);
    if (!where.empty()) msg += " (" + where + ")";
    return fail(msg);
  }

  // The group boundaries of a grouped product: groups + 1 offsets, the first >= 0, non-decreasing.
  bool groupOffsets(const IVec& offsets) {
    if (!ok()) return false;
    if (offsets.size < 1) return fail("offsets needs at least 1 element (groups + 1)");
    if (offsets.data[0] < 0) return fail(fmt("offsets[0]=%d is negative", offsets.data[0]));
    for (int64_t i = 0; i + 1 < offsets.size; i++) {
      if (offsets.data[i + 1] < offsets.data[i]) {
        return fail(fmt("offsets must be non-decreasing: offsets[%lld]=%d > offsets[%lld]=%d", (ll)i, offsets.data[i],
                        (ll)(i + 1), offsets.data[i + 1]));
      }
    }
    return true;
  }

  // Every index in [0, limit) (or negative, when `negativeOk`: an ignored row); `what` is "index" or
  // "target", `at` names the position ("at 3", "at row 3").
  bool indices(const IVec& idx, int64_t count, int64_t limit, const char* what, const char* at,
               bool negativeOk = false) {
    if (!ok()) return false;
    for (int64_t i = 0; i < count; i++) {
      const int32_t v = idx.data[i];
      if ((v < 0 && !negativeOk) || v >= limit) {
        return fail(fmt("%s %d %s %lld outside [0, %lld)", what, v, at, (ll)i, (ll)limit));
      }
    }
    return true;
  }

 private:
  const char* op_;
  Status status_;
};

float* at(const Mat& m) { return m.data + m.offset; }

GemmCall gemmCall(double alpha, const Mat& a, const Mat& b, double beta, const Mat& c) {
  return GemmCall{a.trans, b.trans, c.rows,     c.cols, a.cols, static_cast<float>(alpha),
                  at(a),   a.ld,    at(b),      b.ld,   static_cast<float>(beta), at(c), c.ld};
}

bool checkProduct(Check& ck, const Mat& a, const Mat& b, const Mat& c) {
  return ck.notTransposed("c", c) && ck.equal("a.rows", a.rows, "c.rows", c.rows) &&
         ck.equal("b.cols", b.cols, "c.cols", c.cols) && ck.equal("a.cols", a.cols, "b.rows", b.rows);
}

std::string stackShape(int64_t slices, int64_t rows, int64_t cols) {
  return fmt("slices=%lld rows=%lld cols=%lld", (ll)slices, (ll)rows, (ll)cols);
}

// Elements of a stack of `slices` matrices [rows, cols] and of its row and column statistics.
bool stackSizes(Check& ck, int64_t slices, int64_t rows, int64_t cols, int64_t* n, int64_t* nRow, int64_t* nCol) {
  if (!mulFits(slices, rows, nRow) || !mulFits(*nRow, cols, n) || !mulFits(slices, cols, nCol)) {
    return ck.fail("sizes overflow (" + stackShape(slices, rows, cols) + ")");
  }
  return true;
}

// The float32 products and their bf16-operand twins share their checks; `bf16` picks the driver.
Status gemmOp(const char* name, bool bf16, double alpha, const Mat& a, const Mat& b, double beta, const Mat& c) {
  Check ck(name);
  if (ck.mat("a", a) && ck.mat("b", b) && ck.mat("c", c) && checkProduct(ck, a, b, c)) {
    if (bf16) {
      glam::sgemmBf16(gemmCall(alpha, a, b, beta, c));
    } else {
      glam::sgemm(gemmCall(alpha, a, b, beta, c));
    }
  }
  return ck.status();
}

Status batchedOp(const char* name, bool bf16, int64_t batch, double alpha, const Mat& a, int64_t strideA,
                 const Mat& b, int64_t strideB, double beta, const Mat& c, int64_t strideC) {
  Check ck(name);
  if (ck.mat("a", a, strideA, batch) && ck.mat("b", b, strideB, batch) && ck.mat("c", c, strideC, batch) &&
      checkProduct(ck, a, b, c) && ck.outputsApart(c, strideC, batch) && c.rows > 0 && c.cols > 0) {
    if (bf16) {
      glam::sgemmStridedBatchedBf16(gemmCall(alpha, a, b, beta, c), strideA, strideB, strideC, batch);
    } else {
      glam::sgemmStridedBatched(gemmCall(alpha, a, b, beta, c), strideA, strideB, strideC, batch);
    }
  }
  return ck.status();
}

Status groupedOp(const char* name, bool bf16, const IVec& offsets, double alpha, const Mat& a, const Mat& b,
                 int64_t strideB, double beta, const Mat& c, int64_t strideC) {
  Check ck(name);
  if (!ck.groupOffsets(offsets)) return ck.status();
  const int64_t groups = offsets.size - 1;
  const int64_t T = offsets.data[groups];
  GroupedCall g{};
  if (!a.trans) {
    // Rows of group g of C = (rows of g of A)·B_g.
    if (ck.mat("a", a) && ck.mat("b", b, strideB, groups) && ck.mat("c", c, strideC, groups) &&
        ck.notTransposed("c", c) && ck.equal("a.rows", a.rows, "offsets[groups]", T) &&
        ck.equal("c.rows", c.rows, "offsets[groups]", T) && ck.equal("a.cols", a.cols, "b.rows", b.rows) &&
        ck.equal("b.cols", b.cols, "c.cols", c.cols)) {
      g = GroupedCall{false, b.trans, groups, offsets.data, a.cols, c.cols, static_cast<float>(alpha), at(a), a.ld,
                      at(b), b.ld, strideB, static_cast<float>(beta), at(c), c.ld, strideC};
    }
  } else {
    // C_g = (columns of g of A)·(rows of g of B_g): the weight gradients.
    if (ck.mat("a", a) && ck.mat("b", b, strideB, groups) && ck.mat("c", c, strideC, groups) &&
        ck.notTransposed("b", b) && ck.notTransposed("c", c) && ck.equal("a.cols", a.cols, "offsets[groups]", T) &&
        ck.equal("b.rows", b.rows, "offsets[groups]", T) && ck.equal("a.rows", a.rows, "c.rows", c.rows) &&
        ck.equal("b.cols", b.cols, "c.cols", c.cols)) {
      const int64_t oneC = c.rows == 0 || c.cols == 0 ? 0 : (c.rows - 1) * c.ld + c.cols;
      if (groups > 1 && oneC > 0 && strideC < oneC) {
        ck.fail(fmt("strideC=%lld < %lld: the C_g overlap", (ll)strideC, (ll)oneC));
      } else {
        g = GroupedCall{true, false, groups, offsets.data, a.rows, c.cols, static_cast<float>(alpha), at(a), a.ld,
                        at(b), b.ld, strideB, static_cast<float>(beta), at(c), c.ld, strideC};
      }
    }
  }
  if (ck.ok() && bf16) {
    glam::sgemmGroupedBf16(g);
  } else if (ck.ok()) {
    glam::sgemmGrouped(g);
  }
  return ck.status();
}

}  // namespace

namespace ops {

Status sgemm(double alpha, const Mat& a, const Mat& b, double beta, const Mat& c) {
  return gemmOp("sgemm", false, alpha, a, b, beta, c);
}

Status sgemmStridedBatched(int64_t batch, double alpha, const Mat& a, int64_t strideA, const Mat& b,
                           int64_t strideB, double beta, const Mat& c, int64_t strideC) {
  return batchedOp("sgemmStridedBatched", false, batch, alpha, a, strideA, b, strideB, beta, c, strideC);
}

Status sgemmGrouped(const IVec& offsets, double alpha, const Mat& a, const Mat& b, int64_t strideB, double beta,
                    const Mat& c, int64_t strideC) {
  return groupedOp("sgemmGrouped", false, offsets, alpha, a, b, strideB, beta, c, strideC);
}

Status sgemmBf16(double alpha, const Mat& a, const Mat& b, double beta, const Mat& c) {
  return gemmOp("sgemmBf16", true, alpha, a, b, beta, c);
}

Status sgemmStridedBatchedBf16(int64_t batch, double alpha, const Mat& a, int64_t strideA, const Mat& b,
                               int64_t strideB, double beta, const Mat& c, int64_t strideC) {
  return batchedOp("sgemmStridedBatchedBf16", true, batch, alpha, a, strideA, b, strideB, beta, c, strideC);
}

Status sgemmGroupedBf16(const IVec& offsets, double alpha, const Mat& a, const Mat& b, int64_t strideB,
                        double beta, const Mat& c, int64_t strideC) {
  return groupedOp("sgemmGroupedBf16", true, offsets, alpha, a, b, strideB, beta, c, strideC);
}

Status gemmBf16(double alpha, const Mat& a, const BMat& w, double beta, const Mat& c) {
  Check ck("gemmBf16");
  if (ck.mat("a", a) && ck.mat("w", w) && ck.mat("c", c) && ck.notTransposed("c", c) &&
      ck.equal("a.rows", a.rows, "c.rows", c.rows) && ck.equal("w.cols", w.cols, "c.cols", c.cols) &&
      ck.equal("a.cols", a.cols, "w.rows", w.rows)) {
    glam::gemmBf16(Bf16Call{c.rows, c.cols, a.cols, static_cast<float>(alpha), at(a), a.trans ? 1 : a.ld,
                            a.trans ? a.ld : 1, w.data + w.offset, w.trans ? 1 : w.ld, w.trans ? w.ld : 1,
                            static_cast<float>(beta), at(c), c.ld});
  }
  return ck.status();
}

Status gemmGroupedBf16(const IVec& offsets, double alpha, const Mat& a, const BMat& w, int64_t strideW, double beta,
                       const Mat& c, int64_t strideC) {
  Check ck("gemmGroupedBf16");
  if (!ck.groupOffsets(offsets)) return ck.status();
  const int64_t groups = offsets.size - 1;
  const int64_t T = offsets.data[groups];
  if (ck.mat("a", a) && ck.mat("w", w, strideW, groups) && ck.mat("c", c, strideC, groups) &&
      ck.notTransposed("a", a) && ck.notTransposed("c", c) && ck.equal("a.rows", a.rows, "offsets[groups]", T) &&
      ck.equal("c.rows", c.rows, "offsets[groups]", T) && ck.equal("a.cols", a.cols, "w.rows", w.rows) &&
      ck.equal("w.cols", w.cols, "c.cols", c.cols)) {
    glam::gemmGroupedBf16(Bf16GroupedCall{offsets.data, groups, a.cols, c.cols, static_cast<float>(alpha), at(a), a.ld,
                                          w.data + w.offset, w.trans ? 1 : w.ld, w.trans ? w.ld : 1, strideW,
                                          static_cast<float>(beta), at(c), c.ld, strideC});
  }
  return ck.status();
}

Status add(const Vec& a, const Vec& b, const Vec& out) {
  Check ck("add");
  if (ck.holds("b", b.size, a.size) && ck.holds("out", out.size, a.size)) glam::add(a.data, b.data, out.data, a.size);
  return ck.status();
}

Status axpy(double alpha, const Vec& x, const Vec& y) {
  Check ck("axpy");
  if (ck.holds("y", y.size, x.size)) glam::axpy(static_cast<float>(alpha), x.data, y.data, x.size);
  return ck.status();
}

Status gelu(const Vec& x, const Vec& out) {
  Check ck("gelu");
  if (ck.holds("out", out.size, x.size)) glam::gelu(x.data, out.data, x.size);
  return ck.status();
}

Status geluBackward(const Vec& x, const Vec& dy, const Vec& dx) {
  Check ck("geluBackward");
  if (ck.holds("dy", dy.size, x.size) && ck.holds("dx", dx.size, x.size)) {
    glam::geluBackward(x.data, dy.data, dx.data, x.size);
  }
  return ck.status();
}

Status gatedGelu(const Vec& a, const Vec& b, const Vec& out) {
  Check ck("gatedGelu");
  if (ck.holds("b", b.size, a.size) && ck.holds("out", out.size, a.size)) {
    glam::gatedGelu(a.data, b.data, out.data, a.size);
  }
  return ck.status();
}

Status gatedGeluBackward(const Vec& a, const Vec& b, const Vec& dy, const Vec& da, const Vec& db) {
  Check ck("gatedGeluBackward");
  const int64_t n = a.size;
  if (ck.holds("b", b.size, n) && ck.holds("dy", dy.size, n) && ck.holds("da", da.size, n) &&
      ck.holds("db", db.size, n)) {
    glam::gatedGeluBackward(a.data, b.data, dy.data, da.data, db.data, n);
  }
  return ck.status();
}

Status rmsnorm(const Mat& x, const Vec& scale, double eps, const Mat& out, const Vec& invRms) {
  Check ck("rmsnorm");
  if (ck.rowMajor("x", x) && ck.rowMajor("out", out) && ck.sameShape("x", x, "out", out) &&
      ck.holds("scale", scale.size, x.cols) && ck.holds("invRms", invRms.size, x.rows)) {
    glam::rmsnorm(at(x), scale.data, x.rows, x.cols, static_cast<float>(eps), at(out), invRms.data);
  }
  return ck.status();
}

Status rmsnormBackward(const Mat& x, const Vec& scale, const Vec& invRms, const Mat& dy, const Mat& dx,
                       const Vec& dscale) {
  Check ck("rmsnormBackward");
  if (ck.rowMajor("x", x) && ck.rowMajor("dy", dy) && ck.rowMajor("dx", dx) && ck.sameShape("x", x, "dy", dy) &&
      ck.sameShape("x", x, "dx", dx) && ck.holds("scale", scale.size, x.cols) &&
      ck.holds("dscale", dscale.size, x.cols) && ck.holds("invRms", invRms.size, x.rows)) {
    glam::rmsnormBackward(at(x), scale.data, invRms.data, at(dy), x.rows, x.cols, at(dx), dscale.data);
  }
  return ck.status();
}

Status softmaxRows(const Mat& x, const Mat& out) {
  Check ck("softmaxRows");
  if (ck.rowMajor("x", x) && ck.rowMajor("out", out) && ck.sameShape("x", x, "out", out)) {
    glam::softmaxRows(at(x), x.rows, x.cols, at(out));
  }
  return ck.status();
}

Status softmaxRowsBackward(const Mat& y, const Mat& dy, const Mat& dx) {
  Check ck("softmaxRowsBackward");
  if (ck.rowMajor("y", y) && ck.rowMajor("dy", dy) && ck.rowMajor("dx", dx) && ck.sameShape("y", y, "dy", dy) &&
      ck.sameShape("y", y, "dx", dx)) {
    glam::softmaxRowsBackward(at(y), at(dy), y.rows, y.cols, at(dx));
  }
  return ck.status();
}

Status causalSoftmax(const Mat& scores, const Mat& bias, int64_t heads, double scale) {
  Check ck("causalSoftmax");
  if (!ck.rowMajor("scores", scores) || !ck.rowMajor("bias", bias)) return ck.status();
  const int64_t t = scores.cols;
  if (t == 0 ? scores.rows != 0 : scores.rows % t != 0) {
    ck.fail(fmt("scores.rows=%lld must be a multiple of scores.cols=%lld", (ll)scores.rows, (ll)t));
  } else if (scores.rows > 0 && heads == 0) {
    ck.fail("heads must be positive");
  }
  int64_t ht = 0;
  if (ck.ok() && !mulFits(heads, t, &ht)) ck.fail("sizes overflow");
  if (ck.equal("bias.cols", bias.cols, "scores.cols", t) && ck.equal("bias.rows", bias.rows, "heads·t", ht)) {
    glam::causalSoftmax(at(scores), at(bias), t == 0 ? 0 : scores.rows / t, heads, t, static_cast<float>(scale));
  }
  return ck.status();
}

Status crossEntropy(const Mat& logits, const IVec& targets, const Vec& losses, const Vec& lse) {
  Check ck("crossEntropy");
  if (ck.rowMajor("logits", logits) && ck.holds("targets", targets.size, logits.rows) &&
      ck.holds("losses", losses.size, logits.rows) && ck.holds("lse", lse.size, logits.rows) &&
      ck.indices(targets, logits.rows, logits.cols, "target", "at row", true)) {
    glam::crossEntropy(at(logits), targets.data, logits.rows, logits.cols, losses.data, lse.data);
  }
  return ck.status();
}

Status crossEntropyBackward(const Mat& logits, const Vec& lse, const IVec& targets, double ceScale, double zScale,
                            const Mat& dlogits) {
  Check ck("crossEntropyBackward");
  if (ck.rowMajor("logits", logits) && ck.rowMajor("dlogits", dlogits) &&
      ck.sameShape("logits", logits, "dlogits", dlogits) && ck.holds("targets", targets.size, logits.rows) &&
      ck.holds("lse", lse.size, logits.rows) &&
      ck.indices(targets, logits.rows, logits.cols, "target", "at row", true)) {
    glam::crossEntropyBackward(at(logits), lse.data, targets.data, logits.rows, logits.cols,
                               static_cast<float>(ceScale), static_cast<float>(zScale), at(dlogits));
  }
  return ck.status();
}

Status gatherRows(const Mat& src, const IVec& idx, const Mat& out) {
  Check ck("gatherRows");
  if (ck.rowMajor("src", src) && ck.rowMajor("out", out) && ck.equal("out.rows", out.rows, "idx.size", idx.size) &&
      ck.equal("out.cols", out.cols, "src.cols", src.cols) && ck.indices(idx, idx.size, src.rows, "index", "at")) {
    glam::gatherRows(at(src), idx.data, idx.size, src.cols, at(out));
  }
  return ck.status();
}

Status scatterAddRows(const Mat& src, const IVec& idx, const Vec& weight, const Mat& out) {
  Check ck("scatterAddRows");
  if (ck.rowMajor("src", src) && ck.rowMajor("out", out) && ck.equal("src.rows", src.rows, "idx.size", idx.size) &&
      ck.equal("src.cols", src.cols, "out.cols", out.cols) && ck.holds("weight", weight.size, idx.size) &&
      ck.indices(idx, idx.size, out.rows, "index", "at")) {
    glam::scatterAddRows(at(src), idx.data, weight.data, idx.size, src.cols, at(out));
  }
  return ck.status();
}

Status rowDotScale(const Mat& a, const Mat& b, const Vec& scale, const Vec& dot) {
  Check ck("rowDotScale");
  if (ck.rowMajor("a", a) && ck.rowMajor("b", b) && ck.sameShape("a", a, "b", b) &&
      ck.holds("scale", scale.size, a.rows) && ck.holds("dot", dot.size, a.rows)) {
    glam::rowDotScale(at(a), at(b), scale.data, a.rows, a.cols, dot.data);
  }
  return ck.status();
}

Status pagedAttention(const Mat& q, const Mat& kCache, const Mat& vCache, const IVec& blockTable, int64_t maxBlocks,
                      int64_t blockSize, const IVec& rowSeq, const IVec& rowPos, const Mat& relBias,
                      const IVec& bucketOf, double scale, const Mat& out) {
  Check ck("pagedAttention");
  if (!(ck.rowMajor("q", q) && ck.rowMajor("kCache", kCache) && ck.rowMajor("vCache", vCache) &&
        ck.rowMajor("relBias", relBias) && ck.rowMajor("out", out) && ck.sameShape("q", q, "out", out) &&
        ck.equal("kCache.cols", kCache.cols, "q.cols", q.cols) && ck.sameShape("kCache", kCache, "vCache", vCache))) {
    return ck.status();
  }
  const int64_t heads = relBias.cols;
  if (heads < 1 || q.cols % heads != 0) {
    return ck.fail(fmt("q.cols=%lld must be a positive multiple of relBias.cols=%lld (the heads)", (ll)q.cols,
                       (ll)heads)),
           ck.status();
  }
  if (maxBlocks < 1 || blockSize < 1) return ck.fail("maxBlocks and blockSize must be positive"), ck.status();
  if (!(ck.equal("rowSeq.size", rowSeq.size, "q.rows", q.rows) && ck.holds("rowPos", rowPos.size, q.rows))) {
    return ck.status();
  }
  if (blockTable.size % maxBlocks != 0) {
    return ck.fail(fmt("blockTable has %lld entries, not a multiple of maxBlocks=%lld", (ll)blockTable.size,
                       (ll)maxBlocks)),
           ck.status();
  }
  if (!ck.indices(bucketOf, bucketOf.size, relBias.rows, "bucket", "at")) return ck.status();
  const int64_t sequences = blockTable.size / maxBlocks;
  const int64_t cacheBlocks = kCache.rows / blockSize;
  for (int64_t r = 0; r < q.rows; r++) {
    const int64_t s = rowSeq.data[r];
    const int64_t pos = rowPos.data[r];
    if (s < 0 || s >= sequences) {
      return ck.fail(fmt("rowSeq[%lld]=%lld outside [0, %lld)", (ll)r, (ll)s, (ll)sequences)), ck.status();
    }
    if (pos < 0 || pos >= bucketOf.size) {
      return ck.fail(fmt("rowPos[%lld]=%lld outside [0, %lld) (the distances bucketOf covers)", (ll)r, (ll)pos,
                         (ll)bucketOf.size)),
             ck.status();
    }
    const int64_t blocks = pos / blockSize + 1;
    if (blocks > maxBlocks) {
      return ck.fail(fmt("rowPos[%lld]=%lld needs %lld blocks, over maxBlocks=%lld", (ll)r, (ll)pos, (ll)blocks,
                         (ll)maxBlocks)),
             ck.status();
    }
    for (int64_t b = 0; b < blocks; b++) {
      const int64_t id = blockTable.data[s * maxBlocks + b];
      if (id < 0 || id >= cacheBlocks) {
        return ck.fail(fmt("blockTable[%lld]=%lld outside the cache's [0, %lld) blocks", (ll)(s * maxBlocks + b),
                           (ll)id, (ll)cacheBlocks)),
               ck.status();
      }
    }
  }
  glam::pagedAttention(PagedAttentionCall{at(q), at(kCache), at(vCache), blockTable.data, maxBlocks, blockSize,
                                          rowSeq.data, rowPos.data, q.rows, at(relBias), bucketOf.data, heads,
                                          q.cols / heads, static_cast<float>(scale), at(out)});
  return ck.status();
}

Status topkRows(const Mat& x, int64_t k, const IVec& idx, const Vec& val) {
  Check ck("topkRows");
  if (!ck.rowMajor("x", x)) return ck.status();
  if (k > x.cols) return ck.fail(fmt("k=%lld exceeds x.cols=%lld", (ll)k, (ll)x.cols)), ck.status();
  if (x.cols > INT32_MAX) return ck.fail("x.cols exceeds 2^31 - 1"), ck.status();
  int64_t n = 0;
  if (!mulFits(x.rows, k, &n)) return ck.fail("sizes overflow"), ck.status();
  if (ck.holds("idx", idx.size, n) && ck.holds("val", val.size, n)) {
    glam::topkRows(at(x), x.rows, x.cols, k, idx.data, val.data);
  }
  return ck.status();
}

Status top2Route(const Mat& p, const Mat& logits, int64_t groups, int64_t capacity, const DVec& coins,
                 const IVec& first, const IVec& second, const Vec& gate1, const Vec& gate2, const IVec& slot1,
                 const IVec& slot2, const IVec& offsets, const IVec& token, const Vec& gate, const IVec& load,
                 const IVec& routed, const IVec& firstCounts, const DVec& stats) {
  Check ck("top2Route");
  const int64_t N = p.rows, E = p.cols;
  int64_t ge = 0;
  if (!ck.rowMajor("p", p) || !ck.rowMajor("logits", logits) || !ck.sameShape("p", p, "logits", logits)) {
    return ck.status();
  }
  if (E < 2) return ck.fail(fmt("p has %lld columns: top-2 routing needs at least 2 experts", (ll)E)), ck.status();
  if (groups < 1 || N % groups != 0) {
    return ck.fail(fmt("groups=%lld must be >= 1 and divide the %lld rows", (ll)groups, (ll)N)), ck.status();
  }
  if (!mulFits(groups, E, &ge)) return ck.fail("sizes overflow"), ck.status();
  if (coins.size != 0 && coins.size < N) {
    return ck.fail(fmt("coins has %lld elements, needs 0 or %lld", (ll)coins.size, (ll)N)), ck.status();
  }
  if (ck.holds("first", first.size, N) && ck.holds("second", second.size, N) && ck.holds("gate1", gate1.size, N) &&
      ck.holds("gate2", gate2.size, N) && ck.holds("slot1", slot1.size, N) && ck.holds("slot2", slot2.size, N) &&
      ck.holds("offsets", offsets.size, E + 1) && ck.holds("token", token.size, 2 * N) &&
      ck.holds("gate", gate.size, 2 * N) && ck.holds("load", load.size, E) && ck.holds("routed", routed.size, E) &&
      ck.holds("firstCounts", firstCounts.size, ge) && ck.holds("stats", stats.size, 4)) {
    glam::top2Route(at(p), at(logits), N, E, groups, capacity, coins.size == 0 ? nullptr : coins.data, first.data,
                    second.data, gate1.data, gate2.data, slot1.data, slot2.data, offsets.data, token.data, gate.data,
                    load.data, routed.data, firstCounts.data, stats.data);
  }
  return ck.status();
}

Status routerGrad(const Mat& p, const IVec& first, const IVec& second, const IVec& slot1, const IVec& slot2,
                  const Vec& dGate, const IVec& firstCounts, int64_t groups, double auxGrad, const Mat& dp) {
  Check ck("routerGrad");
  const int64_t N = p.rows, E = p.cols;
  int64_t ge = 0;
  if (!ck.rowMajor("p", p) || !ck.rowMajor("dp", dp) || !ck.sameShape("p", p, "dp", dp)) return ck.status();
  if (groups < 1 || N % groups != 0) {
    return ck.fail(fmt("groups=%lld must be >= 1 and divide the %lld rows", (ll)groups, (ll)N)), ck.status();
  }
  if (!mulFits(groups, E, &ge)) return ck.fail("sizes overflow"), ck.status();
  if (ck.holds("first", first.size, N) && ck.holds("second", second.size, N) && ck.holds("slot1", slot1.size, N) &&
      ck.holds("slot2", slot2.size, N) && ck.holds("firstCounts", firstCounts.size, ge) &&
      ck.indices(first, N, E, "expert", "in first at") && ck.indices(second, N, E, "expert", "in second at") &&
      ck.indices(slot1, N, dGate.size, "slot", "in slot1 at", true) &&
      ck.indices(slot2, N, dGate.size, "slot", "in slot2 at", true)) {
    glam::routerGrad(at(p), N, E, first.data, second.data, slot1.data, slot2.data, dGate.data, firstCounts.data,
                     groups, auxGrad, at(dp));
  }
  return ck.status();
}

Status lossSums(const Vec& losses, const Vec& lse, const IVec& targets, const DVec& sums) {
  Check ck("lossSums");
  const int64_t n = losses.size;
  if (ck.holds("lse", lse.size, n) && ck.holds("targets", targets.size, n) && ck.holds("sums", sums.size, 3)) {
    glam::lossSums(losses.data, lse.data, targets.data, n, sums.data);
  }
  return ck.status();
}

Status relBiasGrad(const Mat& dBias, const IVec& bucketOf, const Vec& dRelBias) {
  Check ck("relBiasGrad");
  if (!ck.rowMajor("dBias", dBias)) return ck.status();
  const int64_t t = dBias.cols;
  if (t == 0 ? dBias.rows != 0 : dBias.rows % t != 0) {
    return ck.fail(fmt("dBias.rows=%lld must be a multiple of dBias.cols=%lld", (ll)dBias.rows, (ll)t)), ck.status();
  }
  const int64_t heads = t == 0 ? 0 : dBias.rows / t;
  int64_t tt = 0;
  if (!mulFits(t, t, &tt)) return ck.fail("sizes overflow"), ck.status();
  if (heads > 0 && dRelBias.size % heads != 0) {
    return ck.fail(fmt("dRelBias has %lld elements, not a multiple of the %lld heads", (ll)dRelBias.size,
                       (ll)heads)),
           ck.status();
  }
  const int64_t buckets = heads == 0 ? 0 : dRelBias.size / heads;
  if (!ck.holds("bucketOf", bucketOf.size, tt)) return ck.status();
  for (int64_t i = 0; i < t; i++) {  // only the entries j <= i are read
    for (int64_t j = 0; j <= i; j++) {
      const int32_t b = bucketOf.data[i * t + j];
      if (b < 0 || b >= buckets) {
        return ck.fail(fmt("bucket %d at %lld outside [0, %lld)", b, (ll)(i * t + j), (ll)buckets)), ck.status();
      }
    }
  }
  glam::relBiasGrad(at(dBias), bucketOf.data, heads, t, dRelBias.data);
  return ck.status();
}

Status sumSquares(const Vec& x, double* result) {
  *result = glam::sumSquares(x.data, x.size);
  return Status{};
}

Status fill(const Vec& x, double value) {
  glam::fillValue(x.data, x.size, static_cast<float>(value));
  return Status{};
}

Status adafactorFactoredStats(const Vec& g, const Vec& vRow, const Vec& vCol, int64_t slices, int64_t rows,
                              int64_t cols, double beta2, double mix, double eps1, const DVec& sumSq) {
  Check ck("adafactorFactoredStats");
  int64_t n = 0, nRow = 0, nCol = 0;
  const std::string shape = stackShape(slices, rows, cols);
  if (stackSizes(ck, slices, rows, cols, &n, &nRow, &nCol) && ck.holds("g", g.size, n, shape) &&
      ck.holds("vRow", vRow.size, nRow, shape) && ck.holds("vCol", vCol.size, nCol, shape) &&
      ck.holds("sumSq", sumSq.size, slices, shape)) {
    glam::adafactorFactoredStats(g.data, vRow.data, vCol.data, slices, rows, cols, beta2, mix, eps1, sumSq.data);
  }
  return ck.status();
}

Status adafactorFactoredApply(const Vec& g, const Vec& vRow, const Vec& vCol, const Vec& p, int64_t slices,
                              int64_t rows, int64_t cols, const DVec& stepSizes, double decay) {
  Check ck("adafactorFactoredApply");
  int64_t n = 0, nRow = 0, nCol = 0;
  const std::string shape = stackShape(slices, rows, cols);
  if (stackSizes(ck, slices, rows, cols, &n, &nRow, &nCol) && ck.holds("g", g.size, n, shape) &&
      ck.holds("p", p.size, n, shape) && ck.holds("vRow", vRow.size, nRow, shape) &&
      ck.holds("vCol", vCol.size, nCol, shape) && ck.holds("stepSizes", stepSizes.size, slices, shape)) {
    glam::adafactorFactoredApply(g.data, vRow.data, vCol.data, p.data, slices, rows, cols, stepSizes.data, decay);
  }
  return ck.status();
}

Status adafactorFullStats(const Vec& g, const Vec& v, int64_t slices, int64_t size, double beta2, double mix,
                          double eps1, const DVec& sumSq) {
  Check ck("adafactorFullStats");
  int64_t n = 0, nRow = 0, nCol = 0;
  const std::string shape = stackShape(slices, 1, size);
  if (stackSizes(ck, slices, 1, size, &n, &nRow, &nCol) && ck.holds("g", g.size, n, shape) &&
      ck.holds("v", v.size, n, shape) && ck.holds("sumSq", sumSq.size, slices, shape)) {
    glam::adafactorFullStats(g.data, v.data, slices, size, beta2, mix, eps1, sumSq.data);
  }
  return ck.status();
}

Status adafactorFullApply(const Vec& g, const Vec& v, const Vec& p, int64_t slices, int64_t size,
                          const DVec& stepSizes, double decay) {
  Check ck("adafactorFullApply");
  int64_t n = 0, nRow = 0, nCol = 0;
  const std::string shape = stackShape(slices, 1, size);
  if (stackSizes(ck, slices, 1, size, &n, &nRow, &nCol) && ck.holds("g", g.size, n, shape) &&
      ck.holds("v", v.size, n, shape) && ck.holds("p", p.size, n, shape) &&
      ck.holds("stepSizes", stepSizes.size, slices, shape)) {
    glam::adafactorFullApply(g.data, v.data, p.data, slices, size, stepSizes.data, decay);
  }
  return ck.status();
}

}  // namespace ops
}  // namespace glam
