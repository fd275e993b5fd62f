// The widening bf16 table (isa.h: Bf16Kernel "widening") of a path whose float32 micro-kernel is Micro
// (MR x NR tiles), written once and compiled into each ISA translation unit: include it after pack_impl.h,
// inside the same anonymous namespace. A is rounded to bf16 values and B widened, both packed as float32
// panels for the float32 micro-kernel (products of bf16 values are exact in float32).

using FloatMicro = decltype(GemmKernel::micro);

template <int MR, int NR, FloatMicro Micro>
struct Widening {
  static void packA(int64_t mc, int64_t kc, const float* a, int64_t rs, int64_t cs, void* dst) {
    packAPanelsBf16Values<MR>(mc, kc, a, rs, cs, static_cast<float*>(dst));
  }
  static void packB(int64_t kc, int64_t nc, const uint16_t* b, int64_t rs, int64_t cs, void* dst) {
    packBPanelsWidened<NR>(kc, nc, b, rs, cs, static_cast<float*>(dst));
  }
  static void packBFloat(int64_t kc, int64_t nc, const float* b, int64_t rs, int64_t cs, void* dst) {
    packBPanelsBf16Values<NR>(kc, nc, b, rs, cs, static_cast<float*>(dst));
  }
  static void micro(int64_t kc, const void* a, const void* b, float* c, int64_t ldc, float alpha, float beta,
                    int rows, int cols, const Bf16Side*) {
    Micro(kc, static_cast<const float*>(a), static_cast<const float*>(b), NR, c, ldc, alpha, beta, rows, cols,
          nullptr);
  }
};

// The table, k cut at multiples of kc (the path's float32 KC).
template <int MR, int NR, FloatMicro Micro>
Bf16Kernel wideningBf16Kernel(int64_t kc) {
  using W = Widening<MR, NR, Micro>;
  return Bf16Kernel{"widening", MR, NR, NR, 0, NR, kc, 1, 4, W::packA, W::packB, W::packBFloat, W::micro, nullptr};
}
