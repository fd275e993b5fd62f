// Persistent worker pool: one job at a time runs on `threads` threads (the caller is thread 0).
#pragma once

#include <atomic>
#include <cstdint>

namespace glam {

// A job receives its thread index and the number of threads running it.
using JobFn = void (*)(void* ctx, int tid, int nthreads);

// Cores this process may run on (affinity mask), at least 1.
int availableCores();

// Threads to use at start-up: GLAM_THREADS when set to a positive integer, else availableCores().
int defaultThreadCount();

// Sets the pool size (1 = everything runs on the caller). Returns the size in effect.
int setPoolThreads(int n);
int poolThreads();

// Runs fn on up to min(nthreads, poolThreads()) threads (the caller is thread 0) and returns when all
// that started are done. Unless waitForAll, a worker that has not started by the time the caller's own
// call returns is withdrawn, so jobs must share their work dynamically (claiming pieces from a counter)
// and be correct on any subset of the threads; the caller always runs. With waitForAll every thread
// runs (for measurements that need them all at once).
// A second caller arriving while a job runs (e.g. from a worker_thread) runs its job on 1 thread.
void parallelRun(int nthreads, JobFn fn, void* ctx, bool waitForAll = false);

template <typename F>
void parallelFor(int nthreads, F& body, bool waitForAll = false) {
  parallelRun(
      nthreads, [](void* ctx, int tid, int nt) { (*static_cast<F*>(ctx))(tid, nt); }, &body, waitForAll);
}

// The one work-splitting rule of every kernel driver: how many threads to run `work` (in any unit) on,
// so that each gets at least `minWorkPerThread` of it (a wake-up costs a few microseconds), capped by
// the pool and by `parts`, the pieces that can run at once. At least 1.
int threadsFor(double work, double minWorkPerThread, int64_t parts = INT64_MAX);

// Runs body(u) for every u in [0, units) on up to `nthreads` threads, units claimed one at a time from a
// shared counter by whichever threads run: a late or descheduled thread costs at most the unit it holds.
// Which thread runs a unit never matters, so a body whose units do fixed work gives the same bits on any
// thread count.
template <typename Body>
void forEachUnit(int nthreads, int64_t units, Body&& body) {
  if (nthreads <= 1 || units <= 1) {
    for (int64_t u = 0; u < units; u++) body(u);
    return;
  }
  std::atomic<int64_t> next{0};
  auto job = [&](int, int) {
    for (int64_t u = next.fetch_add(1, std::memory_order_relaxed); u < units;
         u = next.fetch_add(1, std::memory_order_relaxed)) {
      body(u);
    }
  };
  parallelFor(nthreads, job);
}

// Splits [0, total) into `parts` near-equal contiguous ranges; returns range `index` as [begin, end).
inline void splitRange(int64_t total, int parts, int index, int64_t* begin, int64_t* end) {
  const int64_t base = total / parts;
  const int64_t extra = total % parts;
  *begin = index * base + (index < extra ? index : extra);
  *end = *begin + base + (index < extra ? 1 : 0);
}

}  // namespace glam
