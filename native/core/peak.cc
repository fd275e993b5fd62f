#include "peak.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "isa.h"
#include "threadpool.h"

namespace glam {
namespace {

// CPU time of the calling thread, in seconds.
double threadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

}  // namespace

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
  // Each thread times its own chains in CPU time (CLOCK_THREAD_CPUTIME_ID): time another process holds
  // the core does not count, so a trial measures what the cores do while they run our chains even when
  // the machine is shared (wall-clock trials then often catch one thread descheduled and report one
  // core's rate for two). More threads than the cores this process may use would be time-sliced, and
  // each would count a whole core: they are not run.
  const int maxThreads = availableCores();
  const int wanted = threads < maxThreads ? threads : maxThreads;
  std::vector<double> rates, wallRates;
  int used = 1;
  const auto start = std::chrono::steady_clock::now();
  do {
    double flops[1024] = {0};
    double cpu[1024] = {0};
    const auto t0 = std::chrono::steady_clock::now();
    auto job = [&](int tid, int nt) {
      if (tid == 0) used = nt;
      const double c0 = threadCpuSeconds();
      flops[tid] = loop(iterations);
      cpu[tid] = threadCpuSeconds() - c0;
    };
    parallelFor(wanted, job, /*waitForAll=*/true);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double total = 0, rate = 0;
    for (int t = 0; t < used; t++) {
      total += flops[t];
      rate += cpu[t] > 0 ? flops[t] / cpu[t] : 0;
    }
    rates.push_back(rate / 1e9);
    wallRates.push_back(total / dt / 1e9);
  } while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds ||
           rates.size() < 3);
  std::sort(rates.begin(), rates.end());
  std::sort(wallRates.begin(), wallRates.end());
  return PeakResult{rates.back(), wallRates[wallRates.size() / 2], used, static_cast<int>(rates.size())};
}

}  // namespace glam
