// Run-time choice of the instruction-set tables.
#include "isa.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace glam {

#if GLAM_HAVE_AVX2
GemmKernel avx2GemmKernel();
RowKernels avx2RowKernels();
double avx2PeakLoop(int64_t iterations);
#endif
GemmKernel portableGemmKernel();
RowKernels portableRowKernels();
double portablePeakLoop(int64_t iterations);

bool cpuHasAvx2Fma() {
#if GLAM_HAVE_AVX2
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

// Built on first use only: the AVX2 getters are compiled with -mavx2 and must not run on older CPUs.
const Isa& avx2Isa() {
#if GLAM_HAVE_AVX2
  static const Isa isa{"avx2+fma", avx2GemmKernel(), avx2RowKernels(), avx2PeakLoop};
  return isa;
#else
  return portableIsa();
#endif
}

const Isa& portableIsa() {
  static const Isa isa{"portable", portableGemmKernel(), portableRowKernels(), portablePeakLoop};
  return isa;
}

namespace {

struct Selection {
  const Isa* isa;
  const char* reason;
};

Selection initialSelection() {
  const char* env = std::getenv("GLAM_FORCE_PORTABLE");
  const bool forced = env != nullptr && *env != '\0' && std::strcmp(env, "0") != 0;
  if (!cpuHasAvx2Fma()) return {&portableIsa(), "CPU lacks AVX2/FMA"};
  if (forced) return {&portableIsa(), "forced by GLAM_FORCE_PORTABLE"};
  return {&avx2Isa(), "CPU has AVX2/FMA"};
}

Selection& selection() {
  static Selection s = initialSelection();
  return s;
}

std::atomic<const Isa*> active{nullptr};

}  // namespace

const Isa& currentIsa() {
  const Isa* isa = active.load(std::memory_order_acquire);
  if (isa == nullptr) {
    isa = selection().isa;
    active.store(isa, std::memory_order_release);
  }
  return *isa;
}

bool forcePortable(bool on) {
  Selection& s = selection();
  if (on) {
    s = {&portableIsa(), "forced by forcePortable(true)"};
  } else {
    if (!cpuHasAvx2Fma()) return false;
    s = {&avx2Isa(), "CPU has AVX2/FMA"};
  }
  active.store(s.isa, std::memory_order_release);
  return true;
}

const char* isaReason() { return selection().reason; }

}  // namespace glam
