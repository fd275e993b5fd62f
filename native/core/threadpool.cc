#include "threadpool.h"

#include <sched.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
static inline void cpuRelax() { _mm_pause(); }
#else
static inline void cpuRelax() {}
#endif

namespace glam {
namespace {

// After a job, idle workers poll this long before sleeping: kernels called from JavaScript with some
// work between them (a decode step's ~80) then start without a futex wake-up, and an idle process stops
// using the core soon. 200 µs let the workers fall asleep between most decode kernels (Zen 4: batch-1
// decode about a tenth slower than with 2 ms).
constexpr auto kIdleSpin = std::chrono::microseconds(2000);
constexpr int kSpinsBeforeYield = 4000;

// Each worker waits on its own sequence number, so a job on fewer threads than the pool
// never touches (or races with) the workers it does not use. `claim` decides, for a posted job,
// whether the worker runs it or the caller has already withdrawn it.
enum Claim : int { kIdle, kPosted, kRunning, kWithdrawn };

struct alignas(64) WorkerSlot {
  std::atomic<uint64_t> seq{0};
  std::atomic<int> claim{kIdle};
};

struct Pool {
  std::vector<std::thread> workers;
  std::vector<WorkerSlot> slots = std::vector<WorkerSlot>(1024);
  int size = 1;

  // The current job; written by the caller before the participants' slots are bumped.
  JobFn fn = nullptr;
  void* ctx = nullptr;
  int jobThreads = 1;
  std::atomic<int> pending{0};
  std::atomic<bool> stopping{false};

  std::mutex sleepMutex;
  std::condition_variable wake;
  std::atomic<int> sleepers{0};

  // One job at a time; a concurrent caller runs its job alone instead of waiting.
  std::mutex runMutex;
};

// Never destroyed: worker threads may still be parked on its condition variable at process exit.
Pool& pool() {
  static Pool* p = new Pool();
  return *p;
}

// `seen` is the slot's value when the worker was created: a job (or stop) published before the thread
// gets going is still noticed.
void workerLoop(Pool* p, int tid, uint64_t seen) {
  std::atomic<uint64_t>& seq = p->slots[tid].seq;
  for (;;) {
    auto deadline = std::chrono::steady_clock::now() + kIdleSpin;
    int spins = 0;
    while (seq.load(std::memory_order_acquire) == seen) {
      cpuRelax();
      if (++spins % 256 == 0 && std::chrono::steady_clock::now() > deadline) {
        std::unique_lock<std::mutex> lock(p->sleepMutex);
        p->sleepers.fetch_add(1);
        p->wake.wait(lock, [&] { return seq.load() != seen; });
        p->sleepers.fetch_sub(1);
        break;
      }
    }
    seen = seq.load(std::memory_order_acquire);
    if (p->stopping.load(std::memory_order_acquire)) return;
    int posted = kPosted;
    if (p->slots[tid].claim.compare_exchange_strong(posted, kRunning, std::memory_order_acq_rel)) {
      p->fn(p->ctx, tid, p->jobThreads);
      p->slots[tid].claim.store(kIdle, std::memory_order_relaxed);
      p->pending.fetch_sub(1, std::memory_order_acq_rel);
    }
  }
}

// Wakes workers 1..count-1 (the job fields must be written before).
void publish(Pool& p, int count) {
  for (int tid = 1; tid < count; tid++) {
    p.slots[tid].claim.store(kPosted, std::memory_order_release);
    p.slots[tid].seq.fetch_add(1);
  }
  if (p.sleepers.load() > 0) {
    std::lock_guard<std::mutex> lock(p.sleepMutex);
    p.wake.notify_all();
  }
}

void resize(Pool& p, int n) {
  if (!p.workers.empty()) {
    p.stopping.store(true, std::memory_order_release);
    publish(p, p.size);
    for (auto& w : p.workers) w.join();
    p.workers.clear();
    p.stopping.store(false, std::memory_order_release);
  }
  p.size = n;
  for (int tid = 1; tid < n; tid++) p.workers.emplace_back(workerLoop, &p, tid, p.slots[tid].seq.load());
}

}  // namespace

int availableCores() {
#ifdef __linux__
  cpu_set_t set;  // the affinity mask (taskset, cgroup cpusets), not every core of the machine
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  unsigned hc = std::thread::hardware_concurrency();
  return hc > 0 ? static_cast<int>(hc) : 1;
}

int defaultThreadCount() {
  if (const char* env = std::getenv("GLAM_THREADS")) {
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v > 0 && v <= 1024) return static_cast<int>(v);
  }
  return availableCores();
}

int setPoolThreads(int n) {
  if (n < 1) n = 1;
  if (n > 1024) n = 1024;
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.runMutex);
  if (n != p.size) resize(p, n);
  return p.size;
}

int poolThreads() { return pool().size; }

int threadsFor(double work, double minWorkPerThread, int64_t parts) {
  const double byWork = work / minWorkPerThread;
  int64_t nt = poolThreads();
  if (byWork < static_cast<double>(nt)) nt = static_cast<int64_t>(byWork);  // whole threads' worth only
  if (parts < nt) nt = parts;
  return nt < 1 ? 1 : static_cast<int>(nt);
}

void parallelRun(int nthreads, JobFn fn, void* ctx, bool waitForAll) {
  Pool& p = pool();
  if (nthreads <= 1 || p.size <= 1) {
    fn(ctx, 0, 1);
    return;
  }
  std::unique_lock<std::mutex> lock(p.runMutex, std::try_to_lock);
  if (!lock.owns_lock()) {  // the pool is busy (nested call or another JS thread)
    fn(ctx, 0, 1);
    return;
  }
  const int nt = nthreads < p.size ? nthreads : p.size;
  p.fn = fn;
  p.ctx = ctx;
  p.jobThreads = nt;
  p.pending.store(nt - 1, std::memory_order_relaxed);
  publish(p, nt);
  fn(ctx, 0, nt);
  if (!waitForAll) {
    // The work is shared dynamically and the caller has run out of it: a worker that has not started
    // yet (asleep, or descheduled on a busy machine) is not waited for.
    for (int tid = 1; tid < nt; tid++) {
      int posted = kPosted;
      if (p.slots[tid].claim.compare_exchange_strong(posted, kWithdrawn, std::memory_order_acq_rel)) {
        p.pending.fetch_sub(1, std::memory_order_acq_rel);
      }
    }
  }
  int spins = 0;
  while (p.pending.load(std::memory_order_acquire) > 0) {
    cpuRelax();
    if (++spins > kSpinsBeforeYield) std::this_thread::yield();
  }
}

}  // namespace glam
