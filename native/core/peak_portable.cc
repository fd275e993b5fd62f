// Multiply-add throughput probe for the portable path (separate multiply and add on the baseline ISA).
#include <cstdint>

namespace glam {

double portablePeakLoop(int64_t iterations) {
  constexpr int kLanes = 40;  // 10 chains of 4-wide vectors once vectorised
  float acc[kLanes];
  for (int i = 0; i < kLanes; i++) acc[i] = static_cast<float>(i);
  for (int64_t it = 0; it < iterations; it++) {
    for (int i = 0; i < kLanes; i++) acc[i] = acc[i] * 0.999999f + 1e-6f;
  }
  float sum = 0.0f;
  for (int i = 0; i < kLanes; i++) sum += acc[i];
  volatile float sink = sum;
  (void)sink;
  return static_cast<double>(iterations) * kLanes * 2;
}

}  // namespace glam
