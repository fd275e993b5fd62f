#include "peak.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "isa.h"
#include "threadpool.h"

namespace glam {

PeakResult peakGflops(int threads, double seconds) {
  const auto loop = currentIsa().peakLoop;
  loop(100000);  // warm up: clocks ramp and the code is paged in
  // Calibrate a trial of about 20 ms on one thread, then run trials on all threads at once.
  constexpr double kTrialSeconds = 0.02;
  int64_t iterations = 1 << 14;
  for (;;) {
    const auto t0 = std::chrono::steady_clock::now();
    loop(iterations);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (dt > kTrialSeconds / 4 || iterations > (int64_t{1} << 40)) {
      iterations = static_cast<int64_t>(static_cast<double>(iterations) * kTrialSeconds / dt) + 1;
      break;
    }
    iterations *= 2;
  }
  std::vector<double> rates;
  int used = 1;
  const auto start = std::chrono::steady_clock::now();
  do {
    double flops[1024] = {0};
    const auto t0 = std::chrono::steady_clock::now();
    auto job = [&](int tid, int nt) {
      if (tid == 0) used = nt;
      flops[tid] = loop(iterations);
    };
    parallelFor(threads, job, /*waitForAll=*/true);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double total = 0;
    for (int t = 0; t < used; t++) total += flops[t];
    rates.push_back(total / dt / 1e9);
  } while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds ||
           rates.size() < 3);
  std::sort(rates.begin(), rates.end());
  return PeakResult{rates.back(), rates[rates.size() / 2], used, static_cast<int>(rates.size())};
}

}  // namespace glam
