// The compute core's own tests, built and run without Node (`make -C native/core test`, part of
// `npm test`): the work-splitting rule, products against plain double loops on every path (few rows,
// few columns, blocked, transposed, batched, grouped), row kernels against scalar formulas, both ISA
// tables, and bitwise-identical results on 1 and 2 threads. The TypeScript tests cover every kernel
// against the reference backend in far more cases; this program checks that the core stands alone.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "blocking.h"
#include "gemm.h"
#include "gemm_bf16.h"
#include "grouped.h"
#include "infer.h"
#include "isa.h"
#include "ops.h"
#include "optim.h"
#include "rows.h"
#include "threadpool.h"

namespace {

int failures = 0;
int checks = 0;

void check(bool ok, const std::string& what) {
  checks++;
  if (!ok) {
    failures++;
    std::fprintf(stderr, "FAIL: %s\n", what.c_str());
  }
}

// Deterministic floats in [-1, 1).
std::vector<float> randomFloats(size_t n, uint32_t seed) {
  std::vector<float> v(n);
  uint32_t s = seed * 2654435761u + 1;
  for (auto& x : v) {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    x = static_cast<float>(s % 2000001) / 1000000.0f - 1.0f;
  }
  return v;
}

bool sameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// C = alpha·op(A)·op(B) + beta·C in double, with the classical float32 error bound per element.
void checkGemm(const glam::GemmCall& g, const std::vector<float>& c0, const std::vector<float>& c,
               const std::string& what) {
  const float u = std::ldexp(1.0f, -24);
  for (int64_t i = 0; i < g.m; i++) {
    for (int64_t j = 0; j < g.n; j++) {
      double s = 0, mag = 0;
      for (int64_t p = 0; p < g.k; p++) {
        const double av = g.transA ? g.a[p * g.lda + i] : g.a[i * g.lda + p];
        const double bv = g.transB ? g.b[j * g.ldb + p] : g.b[p * g.ldb + j];
        s += av * bv;
        mag += std::fabs(av * bv);
      }
      const double old = c0[i * g.ldc + j];
      const double want = g.alpha * s + (g.beta == 0 ? 0.0 : g.beta * old);
      const double bound = (g.k + 4) * u * (std::fabs(g.alpha) * mag + std::fabs(g.beta) * std::fabs(old)) + 1e-30;
      const double got = c[i * g.ldc + j];
      if (!(std::fabs(got - want) <= bound)) {
        check(false, what + ": element (" + std::to_string(i) + "," + std::to_string(j) + ") is " +
                         std::to_string(got) + ", expected " + std::to_string(want));
        return;
      }
    }
  }
  check(true, what);
}

void testThreadsFor() {
  glam::setPoolThreads(2);
  check(glam::threadsFor(10, 100) == 1, "threadsFor: below one thread's worth runs on 1");
  check(glam::threadsFor(199, 100) == 1, "threadsFor: 1.99 threads' worth runs on 1");
  check(glam::threadsFor(200, 100) == 2, "threadsFor: 2 threads' worth runs on 2");
  check(glam::threadsFor(1e9, 100) == 2, "threadsFor: capped by the pool");
  check(glam::threadsFor(1e9, 100, 1) == 1, "threadsFor: capped by the parts");
  using glam::blocking::kMinFlopsPerThread;
  using glam::blocking::productWork;
  check(glam::threadsFor(productWork(1, 768, 768, 4), kMinFlopsPerThread) == 2,
        "productWork: a one-row product against 768x768 float32 weights (2.4 MB) is worth both threads");
  check(glam::threadsFor(productWork(1, 64, 64, 4), kMinFlopsPerThread) == 1,
        "productWork: a one-row product against 64x64 weights stays on one thread");
  check(productWork(512, 512, 512, 4) == 2.0 * 512 * 512 * 512, "productWork: many rows count their flops");
  glam::setPoolThreads(1);
  check(glam::threadsFor(1e9, 100) == 1, "threadsFor: a pool of 1");
  glam::setPoolThreads(2);
  std::vector<int> seen(1000, 0);
  glam::forEachUnit(2, 1000, [&](int64_t u) { __atomic_add_fetch(&seen[u], 1, __ATOMIC_RELAXED); });
  bool once = true;
  for (int v : seen) once = once && v == 1;
  check(once, "forEachUnit: every unit runs exactly once on 2 threads");
}

// Every sgemm path on one ISA, checked against double loops and for identical bits on 1 and 2 threads.
void testGemm(const char* isa) {
  struct Shape {
    int64_t m, n, k;
  };
  const Shape shapes[] = {{1, 1, 1}, {3, 300, 70}, {7, 33, 257}, {200, 3, 40}, {257, 130, 300}, {64, 64, 64}};
  for (const Shape& sh : shapes) {
    for (int t = 0; t < 4; t++) {
      glam::GemmCall g{};
      g.transA = t & 1;
      g.transB = t & 2;
      g.m = sh.m, g.n = sh.n, g.k = sh.k;
      g.alpha = 0.75f;
      g.beta = t == 3 ? 0.5f : 0.0f;
      g.lda = (g.transA ? sh.m : sh.k) + 3;
      g.ldb = (g.transB ? sh.k : sh.n) + 1;
      g.ldc = sh.n + 2;
      const auto a = randomFloats(static_cast<size_t>((g.transA ? sh.k : sh.m) * g.lda), 1);
      const auto b = randomFloats(static_cast<size_t>((g.transB ? sh.n : sh.k) * g.ldb), 2);
      const auto c0 = randomFloats(static_cast<size_t>(sh.m * g.ldc), 3);
      g.a = a.data();
      g.b = b.data();
      std::vector<float> c1 = c0, c2 = c0;
      glam::setPoolThreads(1);
      g.c = c1.data();
      glam::sgemm(g);
      glam::setPoolThreads(2);
      g.c = c2.data();
      glam::sgemm(g);
      const std::string what = std::string(isa) + " sgemm " + std::to_string(sh.m) + "x" + std::to_string(sh.n) +
                               "x" + std::to_string(sh.k) + " case " + std::to_string(t);
      checkGemm(g, c0, c1, what);
      check(sameBits(c1, c2), what + ": same bits on 1 and 2 threads");
    }
  }
  // A batch of 4 equals 4 single calls, bit for bit.
  glam::GemmCall g{false, true, 9, 17, 33, 1.0f, nullptr, 33, nullptr, 33, 0.0f, nullptr, 17};
  const auto a = randomFloats(4 * 9 * 33, 4), b = randomFloats(4 * 17 * 33, 5);
  std::vector<float> batched(4 * 9 * 17), single(4 * 9 * 17);
  g.a = a.data(), g.b = b.data(), g.c = batched.data();
  glam::sgemmStridedBatched(g, 9 * 33, 17 * 33, 9 * 17, 4);
  for (int i = 0; i < 4; i++) {
    glam::GemmCall one = g;
    one.a += i * 9 * 33, one.b += i * 17 * 33, one.c = single.data() + i * 9 * 17;
    glam::sgemm(one);
  }
  check(sameBits(batched, single), std::string(isa) + " sgemmStridedBatched: equals single calls");
}

// Grouped products against one sgemm per group (bit for bit: same blocking and micro-kernel).
void testGrouped(const char* isa) {
  const int64_t E = 5, d = 40, n = 24;
  const std::vector<int32_t> offsets = {0, 7, 7, 30, 31, 60};
  const int64_t T = offsets[E];
  const auto x = randomFloats(static_cast<size_t>(T * d), 6);
  const auto w = randomFloats(static_cast<size_t>(E * d * n), 7);
  std::vector<float> y(T * n), want(T * n);
  glam::GroupedCall g{false, false, E, offsets.data(), d, n, 1.0f, x.data(), d, w.data(), n, d * n,
                      0.0f, y.data(), n, 0};
  glam::sgemmGrouped(g);
  for (int64_t e = 0; e < E; e++) {
    const int64_t r0 = offsets[e], rows = offsets[e + 1] - r0;
    if (rows == 0) continue;
    glam::GemmCall one{false, false, rows, n, d, 1.0f, x.data() + r0 * d, d, w.data() + e * d * n, n, 0.0f,
                       want.data() + r0 * n, n};
    glam::sgemm(one);
  }
  check(sameBits(y, want), std::string(isa) + " sgemmGrouped: equals one sgemm per group");
  // Weight gradients: C_e = x_eᵀ·y_e, an empty group gives zeros.
  std::vector<float> dw(E * d * n, 7.0f), dwWant(E * d * n, 0.0f);
  glam::GroupedCall gt{true, false, E, offsets.data(), d, n, 1.0f, x.data(), d, y.data(), n, 0,
                       0.0f, dw.data(), n, d * n};
  glam::sgemmGrouped(gt);
  for (int64_t e = 0; e < E; e++) {
    const int64_t r0 = offsets[e], rows = offsets[e + 1] - r0;
    if (rows == 0) continue;
    glam::GemmCall one{true, false, d, n, rows, 1.0f, x.data() + r0 * d, d, y.data() + r0 * n, n, 0.0f,
                       dwWant.data() + e * d * n, n};
    glam::sgemm(one);
  }
  check(sameBits(dw, dwWant), std::string(isa) + " sgemmGrouped transA: equals one sgemm per group");
}

void testRows(const char* isa) {
  const int64_t rows = 37, cols = 300;
  const auto x = randomFloats(static_cast<size_t>(rows * cols), 8);
  std::vector<float> p(rows * cols);
  glam::softmaxRows(x.data(), rows, cols, p.data());
  double worst = 0;
  for (int64_t r = 0; r < rows; r++) {
    double mx = -1e30, s = 0;
    for (int64_t j = 0; j < cols; j++) mx = std::fmax(mx, x[r * cols + j]);
    for (int64_t j = 0; j < cols; j++) s += std::exp(static_cast<double>(x[r * cols + j]) - mx);
    for (int64_t j = 0; j < cols; j++) {
      const double want = std::exp(static_cast<double>(x[r * cols + j]) - mx) / s;
      worst = std::fmax(worst, std::fabs(p[r * cols + j] - want) / want);
    }
  }
  check(worst < 1e-6, std::string(isa) + " softmaxRows: within 1e-6 relative of double (worst " +
                          std::to_string(worst) + ")");
  const auto scale = randomFloats(cols, 9);
  std::vector<float> out(rows * cols), inv(rows);
  glam::rmsnorm(x.data(), scale.data(), rows, cols, 1e-6f, out.data(), inv.data());
  worst = 0;
  for (int64_t r = 0; r < rows; r++) {
    double ss = 0;
    for (int64_t j = 0; j < cols; j++) ss += static_cast<double>(x[r * cols + j]) * x[r * cols + j];
    const double want = 1.0 / std::sqrt(ss / cols + 1e-6);
    for (int64_t j = 0; j < cols; j++) {
      worst = std::fmax(worst, std::fabs(out[r * cols + j] - x[r * cols + j] * want * scale[j]));
    }
  }
  check(worst < 2e-6, std::string(isa) + " rmsnorm: within 2e-6 of double");
  // Σ x² in double: the same bits on 1 and 2 threads (fixed units added in order).
  const auto big = randomFloats(1 << 20, 10);
  glam::setPoolThreads(1);
  const double s1 = glam::sumSquares(big.data(), static_cast<int64_t>(big.size()));
  glam::setPoolThreads(2);
  const double s2 = glam::sumSquares(big.data(), static_cast<int64_t>(big.size()));
  check(s1 == s2, std::string(isa) + " sumSquares: same bits on 1 and 2 threads");
  // The bandwidth probes' loop: every 32-bit word of the whole 256-byte blocks, then the tail's bytes, from
  // an odd address.
  const auto* bytes = reinterpret_cast<const unsigned char*>(big.data()) + 3;
  for (int64_t n : {0, 5, 64, 256, 1000, 4099}) {
    uint32_t want = 0;
    int64_t i = 0;
    for (; i < n / 256 * 256; i += 4) {
      uint32_t w;
      std::memcpy(&w, bytes + i, 4);
      want += w;
    }
    for (; i < n; i++) want += bytes[i];
    check(glam::currentIsa().rows.sumWords(bytes, n) == want,
          std::string(isa) + " sumWords: words and tail bytes, n = " + std::to_string(n));
  }
}

// The public API (ops.h): views, validation with a message instead of a crash, results equal to the drivers'.
void testOps() {
  auto a = randomFloats(6 * 5, 11), b = randomFloats(5 * 4, 12);
  std::vector<float> c(6 * 4), want(6 * 4);
  // Aᵀ stored [5, 6] read as a transposed view; C written through a view with an offset and ld.
  std::vector<float> at(5 * 6);
  for (int i = 0; i < 6; i++)
    for (int p = 0; p < 5; p++) at[p * 6 + i] = a[i * 5 + p];
  std::vector<float> padded(2 + 6 * 5, -1.0f);
  const glam::Mat av{at.data(), 30, 0, 6, 5, 6, true};
  const glam::Mat bv{b.data(), 20, 0, 5, 4, 4, false};
  const glam::Mat cv{padded.data(), static_cast<int64_t>(padded.size()), 2, 6, 4, 5, false};
  check(glam::ops::sgemm(1.0, av, bv, 0.0, cv).ok(), "ops::sgemm: a valid call succeeds");
  glam::GemmCall g{false, false, 6, 4, 5, 1.0f, a.data(), 5, b.data(), 4, 0.0f, want.data(), 4};
  glam::sgemm(g);
  bool same = true;
  for (int i = 0; i < 6; i++)
    for (int j = 0; j < 4; j++) same = same && padded[2 + i * 5 + j] == want[i * 4 + j];
  check(same, "ops::sgemm: a transposed view and an offset C give the driver's result");
  check(padded[0] == -1.0f && padded[1] == -1.0f && padded[2 + 4] == -1.0f, "ops::sgemm: padding untouched");

  const glam::Mat shortC{padded.data(), 20, 2, 6, 4, 5, false};
  const glam::Status s1 = glam::ops::sgemm(1.0, av, bv, 0.0, shortC);
  check(s1.error == "sgemm: c [6,4] (ld 5, offset 2) needs 31 elements, its buffer has 20",
        "ops::sgemm: a short buffer is refused by name: " + s1.error);
  const glam::Mat wrongB{b.data(), 20, 0, 4, 5, 5, false};
  const glam::Status s2 = glam::ops::sgemm(1.0, av, wrongB, 0.0, cv);
  check(s2.error == "sgemm: b.cols=5 must equal c.cols=4", "ops::sgemm: shapes that do not chain: " + s2.error);
  std::vector<int32_t> idx = {0, 7};
  std::vector<float> out(2 * 4);
  const glam::Status s3 = glam::ops::gatherRows(bv, glam::IVec{idx.data(), 2}, glam::Mat{out.data(), 8, 0, 2, 4, 4, false});
  check(s3.error == "gatherRows: index 7 at 1 outside [0, 5)", "ops::gatherRows: an index out of range: " + s3.error);
  // The step's bookkeeping: loss sums skip padding rows; a bucket out of range is refused by name.
  std::vector<float> losses = {1.0f, 2.0f, 4.0f}, lse = {3.0f, 1.0f, 2.0f};
  std::vector<int32_t> targets = {0, -1, 5};
  std::vector<double> sums(3);
  check(glam::ops::lossSums(glam::Vec{losses.data(), 3}, glam::Vec{lse.data(), 3}, glam::IVec{targets.data(), 3},
                            glam::DVec{sums.data(), 3})
                .ok() &&
            sums[0] == 5.0 && sums[1] == 13.0 && sums[2] == 2.0,
        "ops::lossSums: sums over the rows with a target");
  std::vector<float> dBias = {1, 0, 2, 3}, dRel(2);
  std::vector<int32_t> bucketOf = {0, 0, 1, 0};
  const glam::Mat dB{dBias.data(), 4, 0, 2, 2, 2, false};
  check(glam::ops::relBiasGrad(dB, glam::IVec{bucketOf.data(), 4}, glam::Vec{dRel.data(), 2}).ok() && dRel[0] == 4 &&
            dRel[1] == 2,
        "ops::relBiasGrad: the diagonal to bucket 0, distance 1 to bucket 1");
  bucketOf[2] = 7;
  const glam::Status s4 = glam::ops::relBiasGrad(dB, glam::IVec{bucketOf.data(), 4}, glam::Vec{dRel.data(), 2});
  check(s4.error == "relBiasGrad: bucket 7 at 2 outside [0, 2)", "ops::relBiasGrad: a bad bucket: " + s4.error);

  double sum = 0;
  std::vector<float> v = {3.0f, 4.0f};
  check(glam::ops::sumSquares(glam::Vec{v.data(), 2}, &sum).ok() && sum == 25.0, "ops::sumSquares returns its result");
}

// A row of C does not depend on how many rows the product has (nor on the thread count): products of
// the first m rows, for m across the few-rows and blocked routes, equal the full product's rows bit for
// bit, for every transpose case, and k spanning several KC blocks.
void testBatchInvariance(const char* isa) {
  const int64_t n = 77, k = 1100, full = 300;
  for (int t = 0; t < 4; t++) {
    const bool ta = t & 1, tb = t & 2;
    const int64_t lda = ta ? full : k, ldb = tb ? k : n;
    const auto a = randomFloats(static_cast<size_t>(full * k), 11);
    const auto b = randomFloats(static_cast<size_t>(k * n), 12);
    const auto c0 = randomFloats(static_cast<size_t>(full * n), 13);
    std::vector<float> want = c0;
    glam::GemmCall g{ta, tb, full, n, k, 1.5f, a.data(), lda, b.data(), ldb, 0.5f, want.data(), n};
    glam::setPoolThreads(2);
    glam::sgemm(g);
    bool same = true;
    for (int64_t m : {1, 2, 3, 6, 7, 13, 64, 130, 299}) {
      for (int threads = 1; threads <= 2; threads++) {
        glam::setPoolThreads(threads);
        std::vector<float> c(c0.begin(), c0.begin() + m * n);
        glam::GemmCall part = g;
        part.m = m;
        part.c = c.data();
        // The first m rows of op(A): with transA they are the first m columns of the stored [k, full] A.
        glam::sgemm(part);
        same = same && std::memcmp(c.data(), want.data(), c.size() * sizeof(float)) == 0;
      }
    }
    check(same, std::string(isa) + " sgemm case " + std::to_string(t) +
                    ": every row of an m-row product equals the 300-row product's, bit for bit");
  }
}

uint16_t toBf16(float x) {  // round to nearest even, as the kernels do
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

double fromBf16(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// bf16 products against double sums of bf16(A)·W (the float32 bound on the accumulation, plus a tiny
// absolute term for vdpbf16ps flushing subnormals), every transpose case, odd k over several KC blocks;
// rows independent of m and of the thread count; grouped equal to one product per group.
void testBf16(const std::string& isa) {
  const int64_t full = 150, n = 70, k = 1101;
  const float u = std::ldexp(1.0f, -24);
  for (int t = 0; t < 4; t++) {
    const bool ta = t & 1, tw = t & 2;
    const auto af = randomFloats(static_cast<size_t>(full * k), 21);
    const auto wf = randomFloats(static_cast<size_t>(k * n), 22);
    std::vector<uint16_t> w(wf.size());
    for (size_t i = 0; i < wf.size(); i++) w[i] = toBf16(wf[i]);
    const auto c0 = randomFloats(static_cast<size_t>(full * n), 23);
    auto call = [&](int64_t m, int64_t row0, float* c) {
      glam::Bf16Call g{m, n, k, 0.75f, af.data() + row0 * (ta ? 1 : k), ta ? 1 : k, ta ? full : 1, w.data(),
                       tw ? 1 : n, tw ? k : 1, 0.5f, c, n};
      glam::gemmBf16(g);
    };
    std::vector<float> all = c0;
    glam::setPoolThreads(2);
    call(full, 0, all.data());
    bool close = true;
    for (int64_t i = 0; i < full && close; i++) {
      for (int64_t j = 0; j < n; j++) {
        double s = 0, mag = 0;
        for (int64_t p = 0; p < k; p++) {
          const double av = fromBf16(toBf16(ta ? af[p * full + i] : af[i * k + p]));
          const double wv = fromBf16(tw ? w[j * k + p] : w[p * n + j]);
          s += av * wv;
          mag += std::fabs(av * wv);
        }
        const double want = 0.75 * s + 0.5 * c0[i * n + j];
        const double bound = (k + 4) * u * (0.75 * mag + 0.5 * std::fabs(c0[i * n + j])) + k * 1e-38;
        if (!(std::fabs(all[i * n + j] - want) <= bound)) {
          close = false;
          check(false, isa + " gemmBf16 case " + std::to_string(t) + ": element (" + std::to_string(i) + "," +
                           std::to_string(j) + ") is " + std::to_string(all[i * n + j]) + ", expected " +
                           std::to_string(want));
          break;
        }
      }
    }
    if (close) check(true, isa + " gemmBf16 case " + std::to_string(t) + " within the bound");
    bool same = true;
    for (int64_t m : {1, 2, 7, 64, 149}) {
      for (int threads = 1; threads <= 2; threads++) {
        glam::setPoolThreads(threads);
        std::vector<float> c(c0.begin(), c0.begin() + m * n);
        call(m, 0, c.data());
        same = same && std::memcmp(c.data(), all.data(), c.size() * sizeof(float)) == 0;
        std::vector<float> one(c0.begin() + (m - 1) * n, c0.begin() + m * n);  // the row alone
        if (!ta) {
          call(1, m - 1, one.data());
          same = same && std::memcmp(one.data(), all.data() + (m - 1) * n, n * sizeof(float)) == 0;
        }
      }
    }
    check(same, isa + " gemmBf16 case " + std::to_string(t) + ": rows independent of m and threads, bit for bit");
  }
  // Grouped: one product per group, bit for bit.
  const int64_t E = 4, d = 300, n2 = 90;
  const std::vector<int32_t> offsets = {0, 1, 1, 40, 43};
  const auto x = randomFloats(static_cast<size_t>(43 * d), 24);
  const auto wf = randomFloats(static_cast<size_t>(E * d * n2), 25);
  std::vector<uint16_t> w(wf.size());
  for (size_t i = 0; i < wf.size(); i++) w[i] = toBf16(wf[i]);
  std::vector<float> y(43 * n2, 1.0f), want(43 * n2, 1.0f);
  glam::gemmGroupedBf16(glam::Bf16GroupedCall{offsets.data(), E, d, n2, 1.0f, x.data(), d, w.data(), n2, 1, d * n2,
                                              0.0f, y.data(), n2, 0});
  for (int64_t e = 0; e < E; e++) {
    const int64_t r0 = offsets[e], rows = offsets[e + 1] - r0;
    glam::gemmBf16(glam::Bf16Call{rows, n2, d, 1.0f, x.data() + r0 * d, d, 1, w.data() + e * d * n2, n2, 1, 0.0f,
                                  want.data() + r0 * n2, n2});
  }
  check(sameBits(y, want), isa + " gemmGroupedBf16: equals one gemmBf16 per group");
}

}  // namespace

// Attention over a paged cache against a double loop over the unpaged keys, bitwise the same on 1 and 2
// threads; top-k against a full sort.
void testInfer() {
  const int64_t heads = 3, dHead = 20, width = heads * dHead, bs = 4, blocks = 9, maxBlocks = 4;
  const auto q = randomFloats(static_cast<size_t>(2 * width), 21);
  const auto k = randomFloats(static_cast<size_t>(blocks * bs * width), 22);
  const auto v = randomFloats(static_cast<size_t>(blocks * bs * width), 23);
  const auto bias = randomFloats(static_cast<size_t>(5 * heads), 24);
  const std::vector<int32_t> table = {7, 2, 5, 0, 3, 8, 1, 6};
  const std::vector<int32_t> rowSeq = {0, 1}, rowPos = {13, 6};
  std::vector<int32_t> bucketOf(16);
  for (int n = 0; n < 16; n++) bucketOf[n] = n < 4 ? n : 4;
  std::vector<std::vector<float>> outs;
  for (int threads : {1, 2}) {
    glam::setPoolThreads(threads);
    std::vector<float> out(2 * width);
    glam::pagedAttention(glam::PagedAttentionCall{q.data(), k.data(), v.data(), table.data(), maxBlocks, bs,
                                                  rowSeq.data(), rowPos.data(), 2, bias.data(), bucketOf.data(),
                                                  heads, dHead, 0.25f, out.data()});
    outs.push_back(out);
  }
  check(sameBits(outs[0], outs[1]), "pagedAttention: same bits on 1 and 2 threads");
  bool close = true;
  for (int r = 0; r < 2; r++) {
    for (int64_t h = 0; h < heads; h++) {
      std::vector<double> s(rowPos[r] + 1);
      double mx = -1e300, sum = 0;
      for (int j = 0; j <= rowPos[r]; j++) {
        const int64_t slot = table[rowSeq[r] * maxBlocks + j / bs] * bs + j % bs;
        double d = 0;
        for (int64_t t = 0; t < dHead; t++) d += q[r * width + h * dHead + t] * k[slot * width + h * dHead + t];
        s[j] = 0.25 * d + bias[bucketOf[rowPos[r] - j] * heads + h];
        mx = s[j] > mx ? s[j] : mx;
      }
      for (auto& x : s) sum += (x = std::exp(x - mx));
      for (int64_t t = 0; t < dHead; t++) {
        double o = 0;
        for (int j = 0; j <= rowPos[r]; j++) {
          o += s[j] / sum * v[(table[rowSeq[r] * maxBlocks + j / bs] * bs + j % bs) * width + h * dHead + t];
        }
        close = close && std::fabs(outs[0][r * width + h * dHead + t] - o) < 1e-5;
      }
    }
  }
  check(close, "pagedAttention: matches a double loop over the unpaged keys");
  const auto x = randomFloats(500, 25);
  for (int64_t kk : {3, 100}) {
    std::vector<int32_t> idx(kk);
    std::vector<float> val(kk);
    glam::topkRows(x.data(), 1, 500, kk, idx.data(), val.data());
    std::vector<float> sorted(x);
    std::sort(sorted.begin(), sorted.end(), [](float a, float b) { return a > b; });
    bool ok = true;
    for (int64_t t = 0; t < kk; t++) ok = ok && val[t] == sorted[t] && x[idx[t]] == val[t];
    check(ok, "topkRows: the k largest in descending order, k = " + std::to_string(kk));
  }
  // The weights probe: the bytes of ragged ranges (empty ones too), and the passes asked for.
  glam::setPoolThreads(2);
  const glam::ByteRange ranges[] = {{x.data(), 1}, {x.data() + 1, 4 * 300 + 3}, {x.data() + 400, 0}, {x.data() + 7, 65}};
  const glam::BandwidthResult r = glam::readBandwidthOf(2, ranges, 4, 3);
  check(r.bytes == 1 + 1203 + 65 && r.trials == 3 && r.best > 0 && r.median <= r.best,
        "readBandwidthOf: the bytes of ragged ranges, three passes");
  check(glam::readBandwidthOf(2, ranges + 2, 1, 3).trials == 0, "readBandwidthOf: no bytes, no passes");
}

int main() {
  testThreadsFor();
  testOps();
  std::string isas;
  for (int i = 0; i < glam::kIsaCount; i++) {
    const auto id = static_cast<glam::IsaId>(i);
    if (!glam::cpuHas(id)) continue;
    check(glam::selectIsa(glam::isaKey(id)), std::string("selectIsa(") + glam::isaKey(id) + ")");
    const char* isa = glam::currentIsa().name;
    isas += (isas.empty() ? "" : ", ") + std::string(isa);
    testGemm(isa);
    testBatchInvariance(isa);
    testGrouped(isa);
    testRows(isa);
    glam::selectBf16Widening(true);
    testBf16(std::string(isa) + " " + glam::currentBf16().name);
    glam::selectBf16Widening(false);
    if (std::strcmp(glam::currentBf16().name, "widening") != 0) {
      testBf16(std::string(isa) + " " + glam::currentBf16().name);
    }
  }
  glam::selectIsa(nullptr);
  testInfer();
  std::printf("native core: %d checks, %d failed (ISAs: %s)\n", checks, failures, isas.c_str());
  return failures == 0 ? 0 : 1;
}
