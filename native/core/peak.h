// The machine's multiply-add peak, measured: what `glam bench peak` reports and MFU is computed against.
#pragma once

namespace glam {

struct PeakResult {
  // GFLOP/s of the fastest trial, each thread's chains timed in its own CPU time and the threads' rates
  // added: the machine's capability on that many cores, whatever else runs on the machine.
  double best;
  // GFLOP/s of the median trial by the wall clock: lower when other processes share the cores.
  double median;
  int threads;  // threads actually used: at most the cores this process may run on
  int trials;
};

// Aggregate GFLOP/s of independent multiply-add chains on `threads` threads (capped at the available
// cores), in trials of about 20 ms repeated for about `seconds`.
PeakResult peakGflops(int threads, double seconds);

}  // namespace glam
