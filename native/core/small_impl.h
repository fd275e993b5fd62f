// Products with few rows (m <= kSmallRows; the driver maps few columns onto this by transposing):
// packing B would cost more than the product, so B is read in place, once. Written as plain loops and
// compiled into each ISA translation unit (include inside an anonymous namespace).
//
// C'[i, j] = alpha * sum_p A'[i, p] * B'[p, j] + beta * C'[i, j] for i < m, j in [j0, j1), where A' is
// m x k contiguous, B'[p, j] = b[p*rsB + j*csB] with csB == 1 or rsB == 1, C'[i, j] = c[i*rsC + j*csC].
// Each element is summed over p in one fixed order, so the column split across threads never changes it.

constexpr int kSmallRows = kSmallGemmRows;
constexpr int64_t kSmallAccFloats = 2048;  // sums kept per pass when B' is row-major (8 KiB, in L1)

inline void smallStore(float acc, float alpha, float beta, float* c) {
  *c = beta == 0.0f ? alpha * acc : alpha * acc + beta * *c;
}

// C'[0:R, j] for one column j of a transposed B' (contiguous in p): R dot products sharing each load
// of the column, 16 independent partial sums per row (two 8-wide accumulators once vectorised) so the
// FMA latency never stalls the loop.
template <int R>
void dotColumn(const float* a, const float* bj, int64_t k, float* out) {
  constexpr int kLanes = 16;
  float part[R][kLanes] = {};
  const int64_t body = k - k % kLanes;
  for (int64_t p = 0; p < body; p += kLanes) {
    for (int i = 0; i < R; i++) {
      for (int l = 0; l < kLanes; l++) part[i][l] += a[i * k + p + l] * bj[p + l];
    }
  }
  for (int i = 0; i < R; i++) {
    for (int l = 0; l < k - body; l++) part[i][l] += a[i * k + body + l] * bj[body + l];
    float s = 0.0f;
    for (int l = 0; l < kLanes; l++) s += part[i][l];
    out[i] = s;
  }
}

void dotColumnRows(int m, const float* a, const float* bj, int64_t k, float* out) {
  int i = 0;
  for (; i + 4 <= m; i += 4) dotColumn<4>(a + i * k, bj, k, out + i);
  switch (m - i) {
    case 3:
      dotColumn<3>(a + i * k, bj, k, out + i);
      break;
    case 2:
      dotColumn<2>(a + i * k, bj, k, out + i);
      break;
    case 1:
      dotColumn<1>(a + i * k, bj, k, out + i);
      break;
    default:
      break;
  }
}

void smallRowsKernel(int m, int64_t k, float alpha, const float* a, const float* b, int64_t rsB, int64_t csB,
                     float beta, float* c, int64_t rsC, int64_t csC, int64_t j0, int64_t j1) {
  if (csB == 1) {
    // B' row-major: sweep its rows once per column block (long contiguous runs, the next rows
    // prefetched: they are far apart), broadcasting A' values.
    const int64_t width = kSmallAccFloats / m;
    constexpr int64_t kAhead = 8;
    for (int64_t jb = j0; jb < j1; jb += width) {
      const int64_t w = j1 - jb < width ? j1 - jb : width;
      alignas(64) float acc[kSmallAccFloats];
      for (int64_t i = 0; i < m * w; i++) acc[i] = 0.0f;
      // Four rows of B' per pass over the sums (a quarter of their loads and stores); each sum still
      // adds the rows in order.
      int64_t p = 0;
      for (; p + 4 <= k; p += 4) {
        const float* b0 = b + p * rsB + jb;
        const float* b1 = b0 + rsB;
        const float* b2 = b1 + rsB;
        const float* b3 = b2 + rsB;
        if (p + kAhead + 4 <= k) {
          for (int64_t r = 0; r < 4; r++) {
            for (int64_t j = 0; j < w; j += 16) __builtin_prefetch(b0 + (kAhead + r) * rsB + j);
          }
        }
        for (int i = 0; i < m; i++) {
          const float a0 = a[i * k + p], a1 = a[i * k + p + 1], a2 = a[i * k + p + 2], a3 = a[i * k + p + 3];
          float* ai = acc + i * w;
#pragma omp simd
          for (int64_t j = 0; j < w; j++) ai[j] = ai[j] + a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j];
        }
      }
      for (; p < k; p++) {
        const float* brow = b + p * rsB + jb;
        for (int i = 0; i < m; i++) {
          const float av = a[i * k + p];
          float* ai = acc + i * w;
#pragma omp simd
          for (int64_t j = 0; j < w; j++) ai[j] += av * brow[j];
        }
      }
      for (int i = 0; i < m; i++) {
        for (int64_t j = 0; j < w; j++) smallStore(acc[i * w + j], alpha, beta, c + i * rsC + (jb + j) * csC);
      }
    }
    return;
  }
  // B' stored transposed: column j of B' is contiguous; m dot products per column.
  for (int64_t j = j0; j < j1; j++) {
    float dots[kSmallRows];
    dotColumnRows(m, a, b + j * csB, k, dots);
    for (int i = 0; i < m; i++) smallStore(dots[i], alpha, beta, c + i * rsC + j * csC);
  }
}
