#include "engine.h"

#include <dlfcn.h>

#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <future>
#include <memory>

namespace glam::mpi {
namespace {

Engine* g_engine = nullptr;

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string errorText(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(text, len);
}

// Open MPI loads its transports as plugins that expect libmpi's symbols to be global; Node loads addons
// (and so libmpi) with RTLD_LOCAL. Re-opening the already loaded library with RTLD_GLOBAL promotes it.
void promoteLibmpi(std::string* library) {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&MPI_Init_thread), &info) == 0 || info.dli_fname == nullptr) return;
  *library = info.dli_fname;
  dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
}

// A non-negative number of microseconds from the environment, else the default.
double envMicros(const char* name, double fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == 0) return fallback;
  char* end = nullptr;
  const double x = std::strtod(v, &end);
  return (end != nullptr && *end == 0 && x >= 0 && x < 1e7) ? x : fallback;
}

}  // namespace

Engine* Engine::current() { return g_engine; }

Engine* Engine::start(std::string* error) {
  if (g_engine != nullptr) return g_engine;
  // Leaked on purpose: the thread may still sit in an MPI call when the process exits on an error path,
  // so neither the engine nor its (detached) thread is ever destroyed.
  auto* engine = new Engine();
  promoteLibmpi(&engine->library_);
  engine->spinMicros_ = envMicros("GLAM_MPI_SPIN_US", 200);
  engine->pollMicros_ = envMicros("GLAM_MPI_POLL_US", 20);
  std::promise<std::string> started;
  std::future<std::string> result = started.get_future();
  std::thread([engine, started = std::move(started)]() mutable {
    int provided = 0;
    int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    std::string message;
    if (rc != MPI_SUCCESS) {
      message = "MPI_Init_thread failed: " + errorText(rc);
    } else if (provided < MPI_THREAD_FUNNELED) {
      message = "the MPI library provides thread level " + std::to_string(provided) +
                ", below MPI_THREAD_FUNNELED";
    } else {
      MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
      MPI_Comm_rank(MPI_COMM_WORLD, &engine->rank_);
      MPI_Comm_size(MPI_COMM_WORLD, &engine->size_);
      engine->provided_ = provided;
    }
    const bool ok = message.empty();
    started.set_value(message);
    if (ok) engine->loop();
  }).detach();
  std::string message = result.get();
  if (!message.empty()) {
    *error = message;
    return nullptr;
  }
  g_engine = engine;
  return engine;
}

bool Engine::closed() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return closing_;
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

bool Engine::post(Job* job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closing_) return false;
    if (job->kind == JobKind::Finalize) closing_ = true;
    queue_.push_back(job);
  }
  wake_.notify_one();
  return true;
}

bool Engine::flush(std::string* firstError) {
  Job fence;
  fence.kind = JobKind::Fence;
  if (!run(&fence)) return false;
  std::lock_guard<std::mutex> lock(mutex_);
  *firstError = std::move(failedSinceFlush_);
  failedSinceFlush_.clear();
  return true;
}

bool Engine::run(Job* job) {
  // Shared with the MPI thread, which may still be leaving the callback when this caller returns.
  struct Waiter {
    std::mutex m;
    std::condition_variable cv;
    bool finished = false;
  };
  auto waiter = std::make_shared<Waiter>();
  job->done = [waiter](Job*) {
    std::lock_guard<std::mutex> lock(waiter->m);
    waiter->finished = true;
    waiter->cv.notify_one();
  };
  if (!post(job)) return false;
  std::unique_lock<std::mutex> lock(waiter->m);
  waiter->cv.wait(lock, [&] { return waiter->finished; });
  return true;
}

void Engine::loop() {
  for (;;) {
    Job* job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return !queue_.empty(); });
      job = queue_.front();
      queue_.pop_front();
    }
    const double t0 = now();
    execute(job);
    const double dt = now() - t0;
    job->seconds = dt;
    const bool last = job->kind == JobKind::Finalize;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (job->kind != JobKind::Fence) {
        stats_.jobs++;
        stats_.busySeconds += dt;
      }
      if (!job->ok && failedSinceFlush_.empty()) failedSinceFlush_ = job->error;
    }
    // Moved out first: once called, the job belongs to its owner, who may free it at once.
    auto done = std::move(job->done);
    job->done = nullptr;
    if (done) done(job);
    if (last) return;
  }
}

// Waits for a nonblocking collective: MPI_Test in a loop (each call advances MPI's progress engine) for
// the first spinMicros, then between sleeps of pollMicros, so a long wait leaves the core to compute
// threads instead of spinning on it (MPI's blocking calls spin). rc is the start call's result.
int Engine::complete(int rc) {
  if (rc != MPI_SUCCESS) return rc;
  MPI_Request* req = &request_;
  int done = 0;
  const double t0 = now();
  for (;;) {
    rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS || done) return rc;
    if ((now() - t0) * 1e6 > spinMicros_) break;
  }
  const timespec pause{0, static_cast<long>(pollMicros_ * 1000)};
  for (;;) {
    nanosleep(&pause, nullptr);
    rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS || done) return rc;
  }
}

void Engine::execute(Job* job) {
  MPI_Request& req = request_;
  auto check = [job](int rc, const char* what) {
    if (rc == MPI_SUCCESS) return true;
    job->ok = false;
    job->error = std::string(what) + ": " + errorText(rc);
    return false;
  };
  switch (job->kind) {
    case JobKind::Allreduce: {
      // MPI counts are int: long buffers go in chunks.
      auto* base = static_cast<char*>(job->buffer);
      for (int64_t done = 0; done < job->count;) {
        const int n = static_cast<int>(std::min<int64_t>(job->count - done, INT_MAX));
        if (!check(complete(MPI_Iallreduce(MPI_IN_PLACE, base + done * job->elementSize, n, job->type, MPI_SUM,
                                           MPI_COMM_WORLD, &req)),
                   "MPI_Iallreduce"))
          return;
        done += n;
      }
      return;
    }
    case JobKind::Broadcast: {
      auto* base = static_cast<char*>(job->buffer);
      for (int64_t done = 0; done < job->count;) {
        const int n = static_cast<int>(std::min<int64_t>(job->count - done, INT_MAX));
        if (!check(complete(MPI_Ibcast(base + done * job->elementSize, n, job->type, job->root, MPI_COMM_WORLD, &req)),
                   "MPI_Ibcast"))
          return;
        done += n;
      }
      return;
    }
    case JobKind::Barrier:
      check(complete(MPI_Ibarrier(MPI_COMM_WORLD, &req)), "MPI_Ibarrier");
      return;
    case JobKind::Fence:
      return;
    case JobKind::Alltoallv: {
      const int p = size_;
      job->recvCounts.assign(p, 0);
      if (!check(complete(MPI_Ialltoall(job->sendCounts.data(), 1, MPI_INT, job->recvCounts.data(), 1, MPI_INT,
                                        MPI_COMM_WORLD, &req)),
                 "MPI_Ialltoall (counts)"))
        return;
      std::vector<int> sdispls(p), rdispls(p);
      int64_t s = 0, r = 0;
      for (int i = 0; i < p; i++) {
        sdispls[i] = static_cast<int>(s);
        rdispls[i] = static_cast<int>(r);
        s += job->sendCounts[i];
        r += job->recvCounts[i];
      }
      if (r > INT_MAX) {
        job->ok = false;
        job->error = "alltoallv: " + std::to_string(r) + " elements to receive exceed MPI's int displacements";
        return;
      }
      job->received = r;
      void* recv = job->recv;
      if (recv == nullptr || job->recvCapacity < r) {
        const size_t bytes = static_cast<size_t>(((r * job->elementSize) + 63) / 64 * 64);
        job->owned = std::aligned_alloc(64, bytes == 0 ? 64 : bytes);
        if (job->owned == nullptr) {
          job->ok = false;
          job->error = "alltoallv: out of memory for " + std::to_string(r) + " received elements";
          return;
        }
        recv = job->owned;
      }
      check(complete(MPI_Ialltoallv(job->send, job->sendCounts.data(), sdispls.data(), job->type, recv,
                                    job->recvCounts.data(), rdispls.data(), job->type, MPI_COMM_WORLD, &req)),
            "MPI_Ialltoallv");
      return;
    }
    case JobKind::Finalize:
      check(MPI_Finalize(), "MPI_Finalize");
      return;
  }
}

}  // namespace glam::mpi
