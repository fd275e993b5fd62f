// The MPI engine: one dedicated thread makes every MPI call (MPI_THREAD_FUNNELED: the thread that
// initialised MPI is the only one that calls it), taking jobs from a FIFO queue. Callers post a job and
// either get a completion callback on the MPI thread or block until it is done. Plain C++ and MPI; the
// Node-API binding (addon.cc) turns completions into settled promises.
#pragma once

#include <mpi.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace glam::mpi {

enum class JobKind { Allreduce, Alltoallv, Broadcast, Barrier, Fence, Finalize };

struct Job {
  JobKind kind = JobKind::Barrier;
  MPI_Datatype type = MPI_BYTE;
  int64_t elementSize = 1;
  // Allreduce (in place) and Broadcast: the buffer and its element count.
  void* buffer = nullptr;
  int64_t count = 0;
  int root = 0;
  // Alltoallv: send elements per destination rank; the receive side (counts from an alltoall) is filled
  // in. `recv` is the caller's buffer of `recvCapacity` elements; when the data does not fit, the engine
  // allocates `owned` (64-byte aligned, the caller frees it with std::free) and receives there.
  const void* send = nullptr;
  std::vector<int> sendCounts;
  std::vector<int> recvCounts;
  void* recv = nullptr;
  int64_t recvCapacity = 0;
  void* owned = nullptr;
  int64_t received = 0;
  // Outcome: ok, or the MPI error text.
  bool ok = true;
  std::string error;
  // Wall seconds the MPI thread spent in this job's MPI calls.
  double seconds = 0;
  // Called on the MPI thread when the job is done (the job belongs to the caller again).
  std::function<void(Job*)> done;
};

struct EngineStats {
  int64_t jobs = 0;
  double busySeconds = 0;
};

class Engine {
 public:
  // Starts the MPI thread and initialises MPI there; false with a message if MPI cannot start.
  static Engine* start(std::string* error);
  // The engine started by start(), or null.
  static Engine* current();

  int rank() const { return rank_; }
  int size() const { return size_; }
  int threadLevel() const { return provided_; }
  const std::string& library() const { return library_; }
  bool closed() const;
  EngineStats stats() const;

  // Queues a job (FIFO: every rank must post collectives in the same order). False if closed.
  bool post(Job* job);
  // Posts a job and waits for it on the calling thread.
  bool run(Job* job);
  // Waits until every job posted before it is done; returns the first error among them since the last
  // flush (empty when none), so a caller that posted collectives without waiting can check them at once.
  bool flush(std::string* firstError);

 private:
  Engine() = default;
  void loop();
  void execute(Job* job);
  int complete(int startResult);

  int rank_ = 0, size_ = 1, provided_ = 0;
  std::string library_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job*> queue_;
  bool closing_ = false;
  EngineStats stats_;
  std::string failedSinceFlush_;
  // The collective in flight (the MPI thread's only one) and how it is waited for.
  MPI_Request request_ = MPI_REQUEST_NULL;
  double spinMicros_ = 200, pollMicros_ = 20;
};

}  // namespace glam::mpi
