// AVX-512 FMA throughput probe: independent multiply-add chains in zmm registers, no memory traffic.
#include <immintrin.h>

#include <cstdint>

namespace glam {

double avx512PeakLoop(int64_t iterations) {
  // 16 chains: more than FMA latency x pipes on every AVX-512 core we know (4 x 2 on Zen 4/5 and Ice
  // Lake..Sapphire Rapids); 512-bit FMAs count 32 flops whether a core runs them at full or half width.
  __m512 acc[16];
  for (int i = 0; i < 16; i++) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  const __m512 mul = _mm512_set1_ps(0.999999f);
  const __m512 add = _mm512_set1_ps(1e-6f);
  for (int64_t it = 0; it < iterations; it++) {
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) acc[i] = _mm512_fmadd_ps(acc[i], mul, add);
  }
  __m512 sum = acc[0];
  for (int i = 1; i < 16; i++) sum = _mm512_add_ps(sum, acc[i]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, sum);
  volatile float sink = lanes[0] + lanes[15];  // keeps the chains alive
  (void)sink;
  return static_cast<double>(iterations) * 16 * 16 * 2;
}

}  // namespace glam
