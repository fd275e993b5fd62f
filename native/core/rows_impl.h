// Element-wise and row kernels, written once as plain loops and compiled into each ISA translation unit,
// where the compiler vectorises them for that unit's instruction set (`omp simd` via -fopenmp-simd lets it
// vectorise reductions without -ffast-math). Include inside an anonymous namespace.
//
// Accuracy: exp is a Cephes-style minimax polynomial after range reduction (<= 2 ulp); long sums are
// accumulated in double. The including unit provides <math.h> and <string.h> (outside the namespace);
// only C library calls are used from them, so no inline library code is shared between units built for
// different instruction sets.

#define GLAM_SIMD _Pragma("omp simd")
#define GLAM_INLINE inline __attribute__((always_inline))

#include "vecmath_impl.h"

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluCubic = 0.044715f;

// gelu(x) = 0.5x(1 + tanh(u)) = x·s with s = sigmoid(2u) = 1/(1 + e), e = exp(-2u): one exp, and no
// cancellation in 1 + tanh for negative x. e may be 0 or inf; s is then 1 or 0, as it should be.
GLAM_INLINE float geluExpTerm(float x) {
  const float u = kSqrt2OverPi * (x + kGeluCubic * x * x * x);
  return expApprox(-2.0f * u);
}

// gelu'(x) = s + 2x·s(1-s)·sqrt(2/pi)·(1 + 3·0.044715x²) with s(1-s) = s/(1 + 1/e): exact for s near 0
// or 1 and 0 (not inf·0) when e is 0 or inf. Beyond |x| = 50, s(1-s) is 0, so clamping x in the
// polynomial changes nothing but keeps x² finite.
GLAM_INLINE float geluGradFrom(float x, float e, float s) {
  const float sOneMinusS = s / (1.0f + 1.0f / e);
  float xp = x > 50.0f ? 50.0f : x;
  xp = xp < -50.0f ? -50.0f : xp;
  return s + 2.0f * xp * sOneMinusS * kSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * xp * xp);
}

void addKernel(const float* a, const float* b, float* out, int64_t n) {
  GLAM_SIMD
  for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void axpyKernel(float alpha, const float* x, float* y, int64_t n) {
  GLAM_SIMD
  for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

void geluKernel(const float* x, float* out, int64_t n) {
  GLAM_SIMD
  for (int64_t i = 0; i < n; i++) {
    const float v = x[i];
    out[i] = v / (1.0f + geluExpTerm(v));
  }
}

void geluBackwardKernel(const float* x, const float* dy, float* dx, int64_t n) {
  GLAM_SIMD
  for (int64_t i = 0; i < n; i++) {
    const float v = x[i];
    const float e = geluExpTerm(v);
    const float s = 1.0f / (1.0f + e);
    dx[i] = dy[i] * geluGradFrom(v, e, s);
  }
}

void gatedGeluKernel(const float* a, const float* b, float* out, int64_t n) {
  GLAM_SIMD
  for (int64_t i = 0; i < n; i++) {
    const float v = a[i];
    out[i] = v / (1.0f + geluExpTerm(v)) * b[i];
  }
}

void gatedGeluBackwardKernel(const float* a, const float* b, const float* dy, float* da, float* db, int64_t n) {
  GLAM_SIMD
  for (int64_t i = 0; i < n; i++) {
    const float v = a[i];
    const float g = dy[i];
    const float bv = b[i];
    const float e = geluExpTerm(v);
    const float s = 1.0f / (1.0f + e);
    da[i] = g * bv * geluGradFrom(v, e, s);
    db[i] = g * (v * s);
  }
}

// Max of a row; NaN when the row holds a NaN (so the whole row becomes NaN, as in the reference).
float rowMax(const float* x, int64_t n) {
  float m = -HUGE_VALF;
  int nan = 0;
#pragma omp simd reduction(max : m) reduction(| : nan)
  for (int64_t j = 0; j < n; j++) {
    m = x[j] > m ? x[j] : m;
    nan |= x[j] != x[j];
  }
  return nan ? NAN : m;
}

// out[j] = exp(x[j] - m); returns the sum in double.
double expShiftSum(const float* x, float m, int64_t n, float* out) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < n; j++) {
    const float e = expApprox(x[j] - m);
    out[j] = e;
    s += e;
  }
  return s;
}

double expShiftSumOnly(const float* x, float m, int64_t n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < n; j++) s += expApprox(x[j] - m);
  return s;
}

void scaleInPlace(float* x, float f, int64_t n) {
  GLAM_SIMD
  for (int64_t j = 0; j < n; j++) x[j] *= f;
}

double dotF64(const float* a, const float* b, int64_t n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < n; j++) s += static_cast<double>(a[j]) * b[j];
  return s;
}

void softmaxRowsKernel(const float* x, int64_t rows, int64_t cols, float* out) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * cols;
    float* orow = out + r * cols;
    const float m = rowMax(xr, cols);
    const double s = expShiftSum(xr, m, cols, orow);
    scaleInPlace(orow, static_cast<float>(1.0 / s), cols);
  }
}

void softmaxRowsBackwardKernel(const float* y, const float* dy, int64_t rows, int64_t cols, float* dx) {
  for (int64_t r = 0; r < rows; r++) {
    const float* yr = y + r * cols;
    const float* gr = dy + r * cols;
    float* dr = dx + r * cols;
    const float dot = static_cast<float>(dotF64(gr, yr, cols));
    GLAM_SIMD
    for (int64_t j = 0; j < cols; j++) dr[j] = yr[j] * (gr[j] - dot);
  }
}

void causalSoftmaxKernel(float* scores, const float* bias, int64_t rowBegin, int64_t rowEnd, int64_t heads,
                         int64_t t, float scale) {
  for (int64_t row = rowBegin; row < rowEnd; row++) {
    const int64_t bh = row / t;
    const int64_t i = row % t;
    const int64_t h = bh % heads;
    float* sr = scores + row * t;
    const float* br = bias + (h * t + i) * t;
    const int64_t len = i + 1;
    GLAM_SIMD
    for (int64_t j = 0; j < len; j++) sr[j] = scale * sr[j] + br[j];
    const float m = rowMax(sr, len);
    const double s = expShiftSum(sr, m, len, sr);
    scaleInPlace(sr, static_cast<float>(1.0 / s), len);
    for (int64_t j = len; j < t; j++) sr[j] = 0.0f;
  }
}

void crossEntropyKernel(const float* logits, const int32_t* targets, int64_t rows, int64_t cols, float* losses,
                        float* lse) {
  for (int64_t r = 0; r < rows; r++) {
    if (targets[r] < 0) {  // padding: no loss, no z-loss term
      lse[r] = 0.0f;
      losses[r] = 0.0f;
      continue;
    }
    const float* xr = logits + r * cols;
    const float m = rowMax(xr, cols);
    const double l = static_cast<double>(m) + ::log(expShiftSumOnly(xr, m, cols));
    lse[r] = static_cast<float>(l);
    losses[r] = static_cast<float>(l - xr[targets[r]]);
  }
}

void crossEntropyBackwardKernel(const float* logits, const float* lse, const int32_t* targets, int64_t rows,
                                int64_t cols, float ceScale, float zScale, float* dlogits) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = logits + r * cols;
    float* dr = dlogits + r * cols;
    if (targets[r] < 0) {  // padding: no gradient
      for (int64_t j = 0; j < cols; j++) dr[j] = 0.0f;
      continue;
    }
    const float l = lse[r];
    const float coef = static_cast<float>(static_cast<double>(ceScale) + 2.0 * zScale * l);
    GLAM_SIMD
    for (int64_t j = 0; j < cols; j++) dr[j] = coef * expApprox(xr[j] - l);
    dr[targets[r]] -= ceScale;
  }
}

void rmsnormKernel(const float* x, const float* scale, int64_t rows, int64_t cols, float eps, float* out,
                   float* invRms) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * cols;
    float* orow = out + r * cols;
    const double ms = dotF64(xr, xr, cols) / static_cast<double>(cols);
    const float inv = static_cast<float>(1.0 / ::sqrt(ms + eps));
    invRms[r] = inv;
    GLAM_SIMD
    for (int64_t j = 0; j < cols; j++) orow[j] = xr[j] * inv * scale[j];
  }
}

void rmsnormBackwardDxKernel(const float* x, const float* scale, const float* invRms, const float* dy,
                             int64_t rows, int64_t cols, float* dx) {
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * cols;
    const float* gr = dy + r * cols;
    float* dr = dx + r * cols;
    double dot = 0.0;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < cols; j++) dot += static_cast<double>(gr[j]) * scale[j] * xr[j];
    const double inv = invRms[r];
    const float inv32 = invRms[r];
    const float c = static_cast<float>(inv * inv * inv * dot / static_cast<double>(cols));
    GLAM_SIMD
    for (int64_t j = 0; j < cols; j++) dr[j] = inv32 * gr[j] * scale[j] - c * xr[j];
  }
}

void rmsnormBackwardScaleKernel(const float* x, const float* invRms, const float* dy, int64_t rows, int64_t cols,
                                int64_t colBegin, int64_t colEnd, float* dscale) {
  constexpr int64_t kBlock = 256;  // columns per pass: the double accumulators stay in L1
  double acc[kBlock];
  for (int64_t j0 = colBegin; j0 < colEnd; j0 += kBlock) {
    const int64_t w = colEnd - j0 < kBlock ? colEnd - j0 : kBlock;
    for (int64_t j = 0; j < w; j++) acc[j] = 0.0;
    for (int64_t r = 0; r < rows; r++) {
      const float* xr = x + r * cols + j0;
      const float* gr = dy + r * cols + j0;
      const double inv = invRms[r];
      GLAM_SIMD
      for (int64_t j = 0; j < w; j++) acc[j] += static_cast<double>(gr[j]) * xr[j] * inv;
    }
    for (int64_t j = 0; j < w; j++) dscale[j0 + j] = static_cast<float>(dscale[j0 + j] + acc[j]);
  }
}

void scatterAddRowsKernel(const float* src, const int32_t* idx, const float* weight, int64_t count, int64_t cols,
                          int64_t colBegin, int64_t colEnd, float* out) {
  for (int64_t i = 0; i < count; i++) {
    float* orow = out + static_cast<int64_t>(idx[i]) * cols;
    const float* sr = src + i * cols;
    const float w = weight[i];
    GLAM_SIMD
    for (int64_t j = colBegin; j < colEnd; j++) orow[j] += w * sr[j];
  }
}

void rowDotScaleKernel(float* a, const float* b, const float* scale, int64_t rows, int64_t cols, float* dot) {
  for (int64_t r = 0; r < rows; r++) {
    float* ar = a + r * cols;
    dot[r] = static_cast<float>(dotF64(ar, b + r * cols, cols));
    scaleInPlace(ar, scale[r], cols);
  }
}

// Four streams, each a contiguous quarter of the whole 256-byte blocks, read 64 bytes of each in turn: on
// this project's Zen 4 machines two threads read memory 1.08-1.10x as fast as with one stream each
// (bench/probe_placement.cc), about as fast as the logits product reads the embedding 16 rows at a time.
uint32_t sumWordsKernel(const unsigned char* p, int64_t bytes) {
  constexpr int kStreams = 4;
  const int64_t quarter = bytes / (64 * kStreams) * 64;
  uint32_t acc[kStreams][16] = {};
  for (int64_t i = 0; i < quarter; i += 64) {
    for (int s = 0; s < kStreams; s++) {
      uint32_t w[16];
      memcpy(w, p + s * quarter + i, 64);
      GLAM_SIMD
      for (int l = 0; l < 16; l++) acc[s][l] += w[l];
    }
  }
  uint32_t sum = 0;
  for (int s = 0; s < kStreams; s++)
    for (int l = 0; l < 16; l++) sum += acc[s][l];
  for (int64_t i = kStreams * quarter; i < bytes; i++) sum += p[i];
  return sum;
}

RowKernels makeRowKernels() {
  return RowKernels{addKernel,
                    axpyKernel,
                    geluKernel,
                    geluBackwardKernel,
                    gatedGeluKernel,
                    gatedGeluBackwardKernel,
                    rmsnormKernel,
                    rmsnormBackwardDxKernel,
                    rmsnormBackwardScaleKernel,
                    softmaxRowsKernel,
                    softmaxRowsBackwardKernel,
                    causalSoftmaxKernel,
                    crossEntropyKernel,
                    crossEntropyBackwardKernel,
                    scatterAddRowsKernel,
                    rowDotScaleKernel,
                    sumWordsKernel};
}
