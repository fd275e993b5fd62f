// The machine's multiply-add peak, measured: what `glam bench peak` reports and MFU is computed against.
#pragma once

namespace glam {

struct PeakResult {
  double best;    // GFLOP/s of the fastest trial: the machine's capability (noise only slows trials down)
  double median;  // GFLOP/s of the median trial
  int threads;    // threads actually used
  int trials;
};

// Aggregate GFLOP/s of independent multiply-add chains on `threads` threads, in trials of about 20 ms
// repeated for about `seconds`.
PeakResult peakGflops(int threads, double seconds);

}  // namespace glam
