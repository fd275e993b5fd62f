// FMA throughput probe: independent multiply-add chains held in registers, no memory traffic.
#include <immintrin.h>

#include <cstdint>

namespace glam {

double avx2PeakLoop(int64_t iterations) {
  // 10 chains: more than FMA latency x pipes (4 x 2 on Zen 3, 4 x 2 on Haswell..Ice Lake).
  __m256 acc[10];
  for (int i = 0; i < 10; i++) acc[i] = _mm256_set1_ps(static_cast<float>(i));
  const __m256 mul = _mm256_set1_ps(0.999999f);
  const __m256 add = _mm256_set1_ps(1e-6f);
  for (int64_t it = 0; it < iterations; it++) {
#pragma GCC unroll 10
    for (int i = 0; i < 10; i++) acc[i] = _mm256_fmadd_ps(acc[i], mul, add);
  }
  __m256 sum = acc[0];
  for (int i = 1; i < 10; i++) sum = _mm256_add_ps(sum, acc[i]);
  volatile float sink = _mm256_cvtss_f32(sum);  // keeps the chains alive
  (void)sink;
  return static_cast<double>(iterations) * 10 * 8 * 2;
}

}  // namespace glam
