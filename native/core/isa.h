// The per-instruction-set kernel tables. Each table is built in its own translation unit with its
// own compiler flags (AVX2/FMA or baseline x86-64); the drivers pick one at run time.
#pragma once

#include <cstdint>

namespace glam {

// Optional side work of a micro-kernel call.
struct MicroSide {
  // B that a later call reads (or packs): nextRows rows, nextLd floats apart, as wide as this call's B;
  // the kernel may fetch it towards the cache while it computes.
  const float* next = nullptr;
  int64_t nextLd = 0;
  int64_t nextRows = 0;
  // When set (and the kernel copiesB), the kc x cols block of B the call reads is also stored here as a
  // packed panel (nr floats per k step, 64-byte aligned), so further row panels can use it from cache.
  float* copyB = nullptr;
};

// Register-blocked GEMM pieces (BLIS style). op(A) is addressed as a[i*rs + p*cs], op(B) as b[p*rs + j*cs].
// Every micro-kernel sums each element of C over its k range in order, from zero, one multiply-add per
// step, and stores alpha·sum (+ beta·C): the same operations whatever the tile's shape or position, so
// the drivers may cut a product into tiles any way they like without changing a single bit of C.
struct GemmKernel {
  int mr;        // rows of the micro-tile
  int nr;        // columns of the micro-tile (and of a packed B panel)
  int nrWide;    // columns a tile of at most wideRows rows may have (B read in place), >= nr
  int wideRows;
  int64_t kc;    // k is cut at multiples of kc (the same cuts in every driver: results do not depend on m)
  int64_t mc;    // rows of a packed A block
  bool copiesB;    // micro honours MicroSide::copyB
  bool masksCols;  // micro reads only the first `cols` columns of B (else nr: a ragged tile must be padded)
  // Packs rows [0,mc) x cols [0,kc) of op(A) into mr-row panels, panel-major, zero-padded to mr rows.
  void (*packA)(int64_t mc, int64_t kc, const float* a, int64_t rs, int64_t cs, float* dst);
  // Packs rows [0,kc) x cols [0,nc) of op(B) into nr-column panels, zero-padded to nr columns.
  void (*packB)(int64_t kc, int64_t nc, const float* b, int64_t rs, int64_t cs, float* dst);
  // C[0:rows, 0:cols] = alpha * (A panel x B) + beta * C; beta == 0 never reads C. B has kc rows ldb
  // floats apart (nr when packed; a row-major B read in place otherwise) of which the first `cols` are
  // read (cols <= nr, or <= nrWide when rows <= wideRows). `side` may be null.
  void (*micro)(int64_t kc, const float* a, const float* b, int64_t ldb, float* c, int64_t ldc, float alpha,
                float beta, int rows, int cols, const MicroSide* side);
  // Products of at most streamRows rows (0: none) with a row-major B read in place, for decode, where B
  // streams from memory once: C[0:rows, 0:cols] = alpha·(A panel x B) + beta·C over kc steps, any `cols`.
  // Each step reads one contiguous run of `cols` floats of B (a page or more, which the hardware
  // prefetcher follows, where a micro-tile reads a few hundred bytes per page) and adds it into running
  // sums held in `sums` (streamSumsFloats(rows, cols) floats, gemm.h, 64-byte aligned). Each element is summed
  // and stored exactly as micro does (in order from zero, one FMA per step), so the route changes no bit.
  int streamRows;
  void (*stream)(int64_t kc, const float* a, const float* b, int64_t ldb, float* c, int64_t ldc, float alpha,
                 float beta, int rows, int64_t cols, float* sums);
  // The same for a B stored transposed and read in place (column j of B is row j of bt, ldb apart, k
  // contiguous: the tied-embedding logits x·Eᵀ), or null: C[0:rows, 0:cols] over all of k, cut at
  // multiples of kcMax as the other routes cut it (a packs A over all of k, mr floats per k step). Each
  // element is summed per KC block and stored as micro does, so this route changes no bit either.
  void (*streamTransposed)(int64_t k, int64_t kcMax, const float* a, const float* bt, int64_t ldb, float* c,
                           int64_t ldc, float alpha, float beta, int rows, int64_t cols) = nullptr;
};


// Element-wise and row kernels on contiguous ranges; the driver splits work across threads.
struct RowKernels {
  void (*add)(const float* a, const float* b, float* out, int64_t n);
  void (*axpy)(float alpha, const float* x, float* y, int64_t n);
  void (*gelu)(const float* x, float* out, int64_t n);
  void (*geluBackward)(const float* x, const float* dy, float* dx, int64_t n);
  void (*gatedGelu)(const float* a, const float* b, float* out, int64_t n);
  void (*gatedGeluBackward)(const float* a, const float* b, const float* dy, float* da, float* db, int64_t n);
  void (*rmsnorm)(const float* x, const float* scale, int64_t rows, int64_t cols, float eps, float* out,
                  float* invRms);
  void (*rmsnormBackwardDx)(const float* x, const float* scale, const float* invRms, const float* dy,
                            int64_t rows, int64_t cols, float* dx);
  // dscale[j] += sum_r dy[r,j] * x[r,j] * invRms[r] for columns [colBegin, colEnd), summed in double.
  void (*rmsnormBackwardScale)(const float* x, const float* invRms, const float* dy, int64_t rows, int64_t cols,
                               int64_t colBegin, int64_t colEnd, float* dscale);
  void (*softmaxRows)(const float* x, int64_t rows, int64_t cols, float* out);
  void (*softmaxRowsBackward)(const float* y, const float* dy, int64_t rows, int64_t cols, float* dx);
  // Rows [rowBegin, rowEnd) of scores viewed as [batchHeads*t, t].
  void (*causalSoftmax)(float* scores, const float* bias, int64_t rowBegin, int64_t rowEnd, int64_t heads,
                        int64_t t, float scale);
  void (*crossEntropy)(const float* logits, const int32_t* targets, int64_t rows, int64_t cols, float* losses,
                       float* lse);
  void (*crossEntropyBackward)(const float* logits, const float* lse, const int32_t* targets, int64_t rows,
                               int64_t cols, float ceScale, float zScale, float* dlogits);
  // out[idx[i], j] += weight[i] * src[i, j] for all i, columns [colBegin, colEnd).
  void (*scatterAddRows)(const float* src, const int32_t* idx, const float* weight, int64_t count, int64_t cols,
                         int64_t colBegin, int64_t colEnd, float* out);
  // dot[r] = sum_j a[r,j] * b[r,j] (summed in double), then a[r,:] *= scale[r], for `rows` rows.
  void (*rowDotScale)(float* a, const float* b, const float* scale, int64_t rows, int64_t cols, float* dot);
  // The memory bandwidth probes' loop (infer.h): the sum of `bytes` bytes, the whole 256-byte blocks read as
  // 32-bit words (whatever they hold: no float assists) in four streams, the tail bytewise.
  uint32_t (*sumWords)(const unsigned char* p, int64_t bytes);
};

// What a bf16 micro-kernel may fetch while it computes: nextRows (<= its kc) rows of a bf16 B
// source, nextLd elements apart and as wide as its tile, that a later call packs.
struct Bf16Side {
  const uint16_t* next = nullptr;
  int64_t nextLd = 0;
  int64_t nextRows = 0;
};

// Products with bf16 operands and float32 accumulation (gemm_bf16.h): A (float32) is rounded to bf16 as it
// is packed, B is bf16 storage. Two kinds of tables: AVX512-BF16 packs k in pairs and sums each pair with
// vdpbf16ps; the others ("widening") pack both operands as float32 holding bf16 values, whose products are
// exact, and run the path's float32 micro-kernel. Every micro-kernel sums an element over its KC block in
// order from zero and stores it like the float32 ones, so a row of C never depends on the number of rows.
struct Bf16Kernel {
  const char* name;  // "vdpbf16ps" or "widening"
  int mr;
  int nr;
  int nrWide;       // columns of an in-place tile of at most wideRows rows (microInPlace), >= nr
  int wideRows;
  int nrOneRow;     // columns of an in-place tile of one row, a multiple of nrWide
  int64_t kc;       // k cuts (even)
  int kStep;        // packed k granularity: 2 (pairs) or 1; a block of kc steps takes ceil(kc/kStep)·kStep
  int elemBytes;    // bytes per packed element (per row or column and k step)
  // Rows [0,mc) x k [0,kc) of op(A) (float32, rounded to bf16) into mr-row panels, zero-padded.
  void (*packA)(int64_t mc, int64_t kc, const float* a, int64_t rs, int64_t cs, void* dst);
  // Rows [0,kc) x cols [0,nc) of op(B) (bf16) into nr-column panels, zero-padded.
  void (*packB)(int64_t kc, int64_t nc, const uint16_t* b, int64_t rs, int64_t cs, void* dst);
  // The same from a float32 B, rounded to bf16 (nearest even) as it is packed.
  void (*packBFloat)(int64_t kc, int64_t nc, const float* b, int64_t rs, int64_t cs, void* dst);
  // C[0:rows, 0:cols] = alpha·(A panel x B panel) + beta·C over kc steps; beta == 0 never reads C.
  void (*micro)(int64_t kc, const void* a, const void* b, float* c, int64_t ldc, float alpha, float beta, int rows,
                int cols, const Bf16Side* side);
  // The same with B a row-major bf16 matrix read in place (rows ldb apart, the first `cols` columns), or
  // null when the kernel cannot (cols <= nrOneRow for one row, <= nrWide for at most wideRows rows, else
  // <= nr). With copyB (only for cols <= nr) the block read is also stored there as a packed B panel.
  void (*microInPlace)(int64_t kc, const void* a, const uint16_t* b, int64_t ldb, float* c, int64_t ldc, float alpha,
                       float beta, int rows, int cols, const Bf16Side* side, void* copyB);
  // The stream route of few-row products with a row-major bf16 B (GemmKernel::stream's twin): at most
  // streamRows rows (0: none), any `cols`, running sums in `sums` (streamSumsFloats(rows, cols) floats, gemm.h),
  // each element summed and stored as micro sums and stores it.
  int streamRows = 0;
  void (*stream)(int64_t kc, const void* a, const uint16_t* b, int64_t ldb, float* c, int64_t ldc, float alpha,
                 float beta, int rows, int64_t cols, float* sums) = nullptr;
  // GemmKernel::streamTransposed's twin for a bf16 B stored transposed (at most streamRows rows), or null.
  void (*streamTransposed)(int64_t k, int64_t kcMax, const void* a, const uint16_t* bt, int64_t ldb, float* c,
                           int64_t ldc, float alpha, float beta, int rows, int64_t cols) = nullptr;
};

struct Isa {
  const char* name;  // "avx512", "avx2+fma" or "portable"
  GemmKernel gemm;
  RowKernels rows;
  Bf16Kernel bf16;     // widening
  Bf16Kernel bf16Dot;  // vdpbf16ps where the CPU has AVX512-BF16, else the widening one
  // Runs `iterations` rounds of independent multiply-add chains; returns the flops done.
  double (*peakLoop)(int64_t iterations);
};

// The tables, built on first use. Call one only when cpuHas() says the CPU and OS support it.
const Isa& avx512Isa();
const Isa& avx2Isa();
const Isa& portableIsa();

// The instruction sets the drivers know, fastest first.
enum class IsaId { kAvx512, kAvx2, kPortable };
constexpr int kIsaCount = 3;
// "avx512", "avx2" or "portable": the names GLAM_ISA and selectIsa take.
const char* isaKey(IsaId id);
const Isa& isaTable(IsaId id);

// Whether the CPU has the instructions and the OS saves their registers (CPUID and XGETBV):
// kAvx512 needs AVX-512 F/BW/DQ/VL (and AVX2/FMA); kAvx2 needs AVX2 and FMA; kPortable always.
bool cpuHas(IsaId id);
// AVX512-BF16 (vdpbf16ps), on top of kAvx512.
bool cpuHasAvx512Bf16();

// The bf16 product kernel in use: the current table's vdpbf16ps one unless GLAM_BF16=widen (read at load
// time) or selectBf16Widening(true) asks for the widening one (which every path has).
const Bf16Kernel& currentBf16();
void selectBf16Widening(bool widen);

// The table in use: the fastest the CPU supports, unless GLAM_ISA=avx512|avx2|portable (read at load
// time; GLAM_FORCE_PORTABLE=1 is kept as another name for GLAM_ISA=portable) or selectIsa says otherwise.
const Isa& currentIsa();
IsaId currentIsaId();
// Switches to the named table ("avx512", "avx2", "portable"; null or "" goes back to the load-time choice:
// GLAM_ISA's, or the fastest the CPU has).
// Returns false, changing nothing, when the name is unknown or the CPU lacks that instruction set.
bool selectIsa(const char* key);
// Why the current table was chosen, e.g. "forced by GLAM_ISA=avx2" or "CPU has AVX-512".
const char* isaReason();

}  // namespace glam
