// Run-time choice of the instruction-set tables: CPUID for the instructions, XGETBV for the OS saving
// their registers (a CPU may have AVX-512 that the OS has not enabled).
#include "isa.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace glam {

#if GLAM_HAVE_AVX512
GemmKernel avx512GemmKernel();
RowKernels avx512RowKernels();
Bf16Kernel avx512Bf16Widening();
Bf16Kernel avx512Bf16Dot();
double avx512PeakLoop(int64_t iterations);
#endif
#if GLAM_HAVE_AVX2
GemmKernel avx2GemmKernel();
RowKernels avx2RowKernels();
Bf16Kernel avx2Bf16Widening();
double avx2PeakLoop(int64_t iterations);
#endif
GemmKernel portableGemmKernel();
RowKernels portableRowKernels();
Bf16Kernel portableBf16Widening();
double portablePeakLoop(int64_t iterations);

namespace {

struct CpuFeatures {
  bool avx2Fma = false;
  bool avx512 = false;
  bool avx512Bf16 = false;
};

CpuFeatures detect() {
  CpuFeatures f;
#if (defined(__x86_64__) || defined(__i386__)) && GLAM_HAVE_AVX2
  unsigned eax, ebx, ecx, edx;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid(1, eax, ebx, ecx, edx);
  const bool osxsave = (ecx >> 27) & 1, avx = (ecx >> 28) & 1, fma = (ecx >> 12) & 1;
  if (!osxsave || !avx) return f;
  // XCR0: bits 1-2 = SSE and AVX state; 5-7 = opmask, upper halves of zmm0-15, zmm16-31.
  unsigned xcr0lo, xcr0hi;
  __asm__ volatile("xgetbv" : "=a"(xcr0lo), "=d"(xcr0hi) : "c"(0));
  const bool osAvx = (xcr0lo & 0x6) == 0x6;
  const bool osAvx512 = osAvx && (xcr0lo & 0xE0) == 0xE0;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  const bool avx2 = (ebx >> 5) & 1;
  const bool avx512f = (ebx >> 16) & 1, avx512dq = (ebx >> 17) & 1, avx512bw = (ebx >> 30) & 1,
             avx512vl = (ebx >> 31) & 1;
  f.avx2Fma = osAvx && avx2 && fma;
  f.avx512 = f.avx2Fma && osAvx512 && avx512f && avx512dq && avx512bw && avx512vl;
  unsigned maxSub = eax;
  if (f.avx512 && maxSub >= 1) {
    __cpuid_count(7, 1, eax, ebx, ecx, edx);
    f.avx512Bf16 = (eax >> 5) & 1;
  }
#endif
  return f;
}

const CpuFeatures& features() {
  static const CpuFeatures f = detect();
  return f;
}

#if GLAM_HAVE_AVX512
constexpr bool kBuiltAvx512 = true;
#else
constexpr bool kBuiltAvx512 = false;
#endif
#if GLAM_HAVE_AVX2
constexpr bool kBuiltAvx2 = true;
#else
constexpr bool kBuiltAvx2 = false;
#endif

bool compiledIn(IsaId id) {
  switch (id) {
    case IsaId::kAvx512:
      return kBuiltAvx512;
    case IsaId::kAvx2:
      return kBuiltAvx2;
    default:
      return true;
  }
}

}  // namespace

bool cpuHas(IsaId id) {
  if (!compiledIn(id)) return false;
  switch (id) {
    case IsaId::kAvx512:
      return features().avx512;
    case IsaId::kAvx2:
      return features().avx2Fma;
    default:
      return true;
  }
}

bool cpuHasAvx512Bf16() { return cpuHas(IsaId::kAvx512) && features().avx512Bf16; }

const char* isaKey(IsaId id) {
  switch (id) {
    case IsaId::kAvx512:
      return "avx512";
    case IsaId::kAvx2:
      return "avx2";
    default:
      return "portable";
  }
}

// Built on first use only: each getter is compiled for its instruction set and must not run elsewhere.
const Isa& avx512Isa() {
#if GLAM_HAVE_AVX512
  static const Isa isa{"avx512",
                       avx512GemmKernel(),
                       avx512RowKernels(),
                       avx512Bf16Widening(),
                       cpuHasAvx512Bf16() ? avx512Bf16Dot() : avx512Bf16Widening(),
                       avx512PeakLoop};
  return isa;
#else
  return avx2Isa();
#endif
}

const Isa& avx2Isa() {
#if GLAM_HAVE_AVX2
  static const Isa isa{"avx2+fma", avx2GemmKernel(), avx2RowKernels(), avx2Bf16Widening(), avx2Bf16Widening(),
                       avx2PeakLoop};
  return isa;
#else
  return portableIsa();
#endif
}

const Isa& portableIsa() {
  static const Isa isa{"portable",           portableGemmKernel(),   portableRowKernels(),
                       portableBf16Widening(), portableBf16Widening(), portablePeakLoop};
  return isa;
}

const Isa& isaTable(IsaId id) {
  switch (id) {
    case IsaId::kAvx512:
      return avx512Isa();
    case IsaId::kAvx2:
      return avx2Isa();
    default:
      return portableIsa();
  }
}

namespace {

struct Selection {
  IsaId id;
  const char* reason;
};

bool keyToId(const char* key, IsaId* id) {
  for (int i = 0; i < kIsaCount; i++) {
    if (std::strcmp(key, isaKey(static_cast<IsaId>(i))) == 0) {
      *id = static_cast<IsaId>(i);
      return true;
    }
  }
  return false;
}

Selection bestSelection() {
  if (cpuHas(IsaId::kAvx512)) return {IsaId::kAvx512, "CPU has AVX-512"};
  if (cpuHas(IsaId::kAvx2)) return {IsaId::kAvx2, "CPU has AVX2/FMA, no AVX-512"};
  return {IsaId::kPortable, "CPU lacks AVX2/FMA"};
}

Selection initialSelection() {
  const char* isaEnv = std::getenv("GLAM_ISA");
  const char* portableEnv = std::getenv("GLAM_FORCE_PORTABLE");
  if (isaEnv != nullptr && *isaEnv != '\0') {
    IsaId id;
    if (!keyToId(isaEnv, &id)) return {bestSelection().id, "GLAM_ISA names no instruction set; default choice"};
    if (!cpuHas(id)) return {bestSelection().id, "GLAM_ISA asks for what the CPU lacks; default choice"};
    switch (id) {
      case IsaId::kAvx512:
        return {id, "forced by GLAM_ISA=avx512"};
      case IsaId::kAvx2:
        return {id, "forced by GLAM_ISA=avx2"};
      default:
        return {id, "forced by GLAM_ISA=portable"};
    }
  }
  if (portableEnv != nullptr && *portableEnv != '\0' && std::strcmp(portableEnv, "0") != 0) {
    return {IsaId::kPortable, "forced by GLAM_FORCE_PORTABLE"};
  }
  return bestSelection();
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
    isa = &isaTable(selection().id);
    active.store(isa, std::memory_order_release);
  }
  return *isa;
}

IsaId currentIsaId() {
  currentIsa();
  return selection().id;
}

bool selectIsa(const char* key) {
  // Back to the load-time choice (GLAM_ISA's or the default, with its reason) for no name or its name.
  static const Selection initial = initialSelection();
  Selection s = initial;
  if (key != nullptr && *key != '\0') {
    IsaId id;
    if (!keyToId(key, &id) || !cpuHas(id)) return false;
    if (id != initial.id) s = {id, "selected by selectIsa"};
  }
  selection() = s;
  active.store(&isaTable(s.id), std::memory_order_release);
  return true;
}

namespace {

bool initialBf16Widening() {
  const char* env = std::getenv("GLAM_BF16");
  return env != nullptr && std::strcmp(env, "widen") == 0;
}

std::atomic<bool> bf16Widening{initialBf16Widening()};

}  // namespace

const Bf16Kernel& currentBf16() {
  const Isa& isa = currentIsa();
  return bf16Widening.load(std::memory_order_relaxed) ? isa.bf16 : isa.bf16Dot;
}

void selectBf16Widening(bool widen) { bf16Widening.store(widen, std::memory_order_relaxed); }

const char* isaReason() {
  currentIsa();
  return selection().reason;
}

}  // namespace glam
