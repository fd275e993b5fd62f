// Blocking constants and per-thread scratch shared by the sgemm drivers (gemm.cc, grouped.cc). The
// drivers take KC and MC from the ISA table (GemmKernel::kc, mc) so that every route cuts k at the same
// boundaries; kKC and kMC here are the AVX2 and portable tables' values.
#pragma once

#include <cstdint>
#include <cstdlib>

namespace glam {
namespace blocking {

// Tuned for AVX2 on AMD EPYC (Zen 3: 32 KiB L1d, 512 KiB L2 per core, 32 MiB shared L3). KC x NR floats of B
// (16 KiB) sit in L1 beside the streamed A micro-panel; MC x KC of A (144 KiB) sits in L2.
// MC is a multiple of both micro-tile heights (6 and 4).
constexpr int64_t kKC = 256;
constexpr int64_t kMC = 144;
// Below this many flops per thread, waking another thread costs more than it saves.
constexpr double kMinFlopsPerThread = 1.5e6;
// A product of few rows is bound by reading B, not by its flops: a decode step's 768x768 float32 projection
// (2.4 MB, 1.2 MFLOP) took ~165 us on one thread (14 GB/s). B's bytes count as work at this many per thread.
constexpr double kMinBytesPerThread = 256.0 * 1024;

// Reading `n`·`k` elements of `bBytes` bytes, as work in threadsFor's units (kMinFlopsPerThread per thread).
inline double bytesWork(int64_t n, int64_t k, int bBytes) {
  return static_cast<double>(n) * static_cast<double>(k) * bBytes * (kMinFlopsPerThread / kMinBytesPerThread);
}

// The work threadsFor weighs for C[m x n] = A[m x k] B[k x n] with `bBytes` bytes per element of B: the
// flops, or reading B where that takes longer.
inline double productWork(int64_t m, int64_t n, int64_t k, int bBytes) {
  const double flops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  const double bytes = bytesWork(n, k, bBytes);
  return flops > bytes ? flops : bytes;
}

inline int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t minI(int64_t a, int64_t b) { return a < b ? a : b; }

// A per-thread, 64-byte-aligned scratch buffer that only grows.
class Scratch {
 public:
  float* get(int64_t floats) {
    if (floats > capacity_) {
      std::free(data_);
      const int64_t bytes = ceilDiv(floats * 4, 64) * 64;
      data_ = static_cast<float*>(std::aligned_alloc(64, static_cast<size_t>(bytes)));
      capacity_ = data_ != nullptr ? bytes / 4 : 0;
    }
    if (data_ == nullptr) std::abort();  // at most a few MiB of scratch: nothing sensible left to do
    return data_;
  }
  ~Scratch() { std::free(data_); }

 private:
  float* data_ = nullptr;
  int64_t capacity_ = 0;
};

}  // namespace blocking
}  // namespace glam
