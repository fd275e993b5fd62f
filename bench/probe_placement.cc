// Why `glam bench decode` probes the weights themselves: on this project's virtual machines the same read
// loop reads one allocation faster than another in the same second, and the library's products read their
// weights at the rate the probe loop reads those same weights. Two parts, side by side in one process
// (the machine's bandwidth moves between levels for a second or so at a time, so only figures taken
// together are compared):
//
//   placement  twelve 256 MB buffers, allocated one after another and filled alike, each read in turn by
//              readBandwidthOf (the probe loop of `glam bench decode`), round after round: the median of
//              each buffer over the rounds, and the slowest buffer's over the fastest's.
//   logits     a 256000 x 768 embedding E (glam-0.1b-64e's, 786 MB) and another buffer P of its size: per
//              round, the library's logits product x·Eᵀ (sgemm, one row), the probe loop over E (four
//              streams per thread, as wide as the CPU's vectors: rows.sumWords), the one-stream AVX-512
//              loop of bench/sum_range.h over E, and the probe loop over P; medians of the per-round
//              ratios (the four in a rotating order).
//
// Links the native core: make -C native/core && g++ -std=gnu++17 -O3 -march=native -pthread -Inative/core
// bench/probe_placement.cc build/core/libglamcore.a -o /tmp/probe_placement && nice -n -10
// /tmp/probe_placement [rounds, default 15]. Needs AVX-512 and 4.7 GB of memory.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "gemm.h"
#include "infer.h"
#include "sum_range.h"
#include "threadpool.h"

namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// n floats, 64-byte aligned, every page holding different values.
float* filled(int64_t n) {
  auto* p = static_cast<float*>(std::aligned_alloc(64, static_cast<size_t>(n) * sizeof(float)));
  if (p == nullptr) {
    std::fprintf(stderr, "probe_placement: out of memory\n");
    std::exit(1);
  }
  for (int64_t i = 0; i < n; i++) p[i] = static_cast<float>((static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull) >> 40) * 1e-7f;
  return p;
}

double probe(const float* p, int64_t n) {
  const glam::ByteRange range{p, n * static_cast<int64_t>(sizeof(float))};
  return glam::readBandwidthOf(glam::poolThreads(), &range, 1, 1).best;
}

volatile float sink;

// The AVX-512 loop of the standalone benchmarks over p, each thread a contiguous share.
double avx512Probe(const float* p, int64_t n) {
  float partial[64] = {0};
  const auto t = Clock::now();
  auto job = [&](int tid, int nt) {
    int64_t b0, b1;
    glam::splitRange(n / 64, nt, tid, &b0, &b1);
    partial[tid] = sumRange(p + b0 * 64, (b1 - b0) * 64);
  };
  glam::parallelFor(glam::poolThreads(), job, /*waitForAll=*/true);
  const double dt = secondsSince(t);
  sink = partial[0] + partial[1];
  return static_cast<double>(n) * sizeof(float) / dt / 1e9;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 15;
  glam::setPoolThreads(2);
  std::printf("%d threads, %d rounds\n", glam::poolThreads(), rounds);

  constexpr int kBuffers = 12;
  constexpr int64_t kBufferFloats = int64_t{64} << 20;
  std::vector<float*> buffers;
  for (int b = 0; b < kBuffers; b++) buffers.push_back(filled(kBufferFloats));
  std::vector<std::vector<double>> rates(kBuffers);
  for (int r = 0; r < rounds; r++) {
    for (int b = 0; b < kBuffers; b++) rates[b].push_back(probe(buffers[b], kBufferFloats));
  }
  std::printf("placement: median GB/s of each 256 MB buffer, in allocation order:");
  double lo = 1e300, hi = 0;
  for (int b = 0; b < kBuffers; b++) {
    const double m = median(rates[b]);
    lo = std::min(lo, m);
    hi = std::max(hi, m);
    std::printf(" %.1f", m);
  }
  std::printf("\n  slowest / fastest buffer: %.2f\n", lo / hi);
  for (float* p : buffers) std::free(p);

  const int64_t vocab = 256000, d = 768, n = vocab * d;
  float* e = filled(n);
  float* other = filled(n);
  float* x = filled(d);
  std::vector<float> y(static_cast<size_t>(vocab));
  std::vector<double> logitsOverE, avx512OverE, otherOverE, probeE;
  for (int r = 0; r < rounds; r++) {
    // The four in a different order each round: a buffer read twice running reads faster the second time.
    double logits = 0, onE = 0, avx = 0, onOther = 0;
    for (int i = 0; i < 4; i++) {
      switch ((i + r) % 4) {
        case 0: {
          const auto t = Clock::now();
          glam::sgemm(glam::GemmCall{false, true, 1, vocab, d, 1.0f, x, d, e, d, 0.0f, y.data(), vocab});
          logits = static_cast<double>(n) * sizeof(float) / secondsSince(t) / 1e9;
          break;
        }
        case 1: onE = probe(e, n); break;
        case 2: avx = avx512Probe(e, n); break;
        default: onOther = probe(other, n); break;
      }
    }
    probeE.push_back(onE);
    logitsOverE.push_back(logits / onE);
    avx512OverE.push_back(avx / onE);
    otherOverE.push_back(onOther / onE);
  }
  std::printf("logits: the probe loop over E %.1f GB/s (median)\n", median(probeE));
  std::printf("  logits product / probe loop over E:       %.2f\n", median(logitsOverE));
  std::printf("  AVX-512 loop over E / probe loop over E:  %.2f\n", median(avx512OverE));
  std::printf("  probe loop over P / probe loop over E:    %.2f\n", median(otherOverE));
  std::free(e);
  std::free(other);
  std::free(x);
  return 0;
}
