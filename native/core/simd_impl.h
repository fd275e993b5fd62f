// Register transposes, lane masks and the row-major A panel packing shared by the x86 ISA translation
// units, written once and compiled into each with its own flags: include it inside the unit's anonymous
// namespace (as pack_impl.h). The AVX-512 pieces exist only where the unit's flags enable AVX-512.

// Transposes the 8x8 block in r[0..7] in place: afterwards r[j] holds column j.
inline __attribute__((always_inline)) void transpose8x8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// A stored row-major (cs == 1), one full panel of MR = 6 rows (the AVX2 and AVX-512 tiles): 8 k steps at a
// time, the 6 rows (and 2 zero rows) transposed in registers, each k step's 6 values written in turn; then
// the k steps left one by one.
template <int MR>
void packAPanelRowMajor(int64_t kc, const float* src, int64_t rs, float* dst) {
  static_assert(MR == 6, "two zero rows pad the 8x8 transpose");
  int64_t p = 0;
  for (; p + 8 <= kc; p += 8, dst += 8 * MR) {
    __m256 r[8];
    for (int i = 0; i < MR; i++) r[i] = _mm256_loadu_ps(src + i * rs + p);
    r[6] = r[7] = _mm256_setzero_ps();
    transpose8x8(r);
#ifdef __AVX512F__
    for (int j = 0; j < 8; j++) _mm256_mask_storeu_ps(dst + j * MR, 0x3F, r[j]);
#else
    // Overlapping 8-wide stores: each one's last two (zero) lanes are overwritten by the next.
    for (int j = 0; j < 7; j++) _mm256_storeu_ps(dst + j * MR, r[j]);
    _mm_storeu_ps(dst + 7 * MR, _mm256_castps256_ps128(r[7]));
    _mm_storel_pi(reinterpret_cast<__m64*>(dst + 7 * MR + 4), _mm256_extractf128_ps(r[7], 1));
#endif
  }
  for (; p < kc; p++, dst += MR) {
    for (int i = 0; i < MR; i++) dst[i] = src[i * rs + p];
  }
}

#ifdef __AVX512F__

// The first `cols` (0..16) lanes.
inline __mmask16 laneMask(int cols) {
  return cols >= 16 ? static_cast<__mmask16>(0xFFFF)
                    : cols <= 0 ? static_cast<__mmask16>(0) : static_cast<__mmask16>((1u << cols) - 1u);
}

// Transposes the 16x16 block of 32-bit elements in r[0..15] in place: afterwards r[j] holds column j.
inline __attribute__((always_inline)) void transpose16x16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
    r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  // r[4q + s] now holds, in 128-bit lane L, rows 4q..4q+3 of column 4L + s: a 4x4 transpose of lanes
  // among r[s], r[4 + s], r[8 + s], r[12 + s] gathers column 4L + s.
  for (int s = 0; s < 4; s++) {
    const __m512 u0 = _mm512_shuffle_f32x4(r[s], r[4 + s], 0x44);
    const __m512 u1 = _mm512_shuffle_f32x4(r[s], r[4 + s], 0xEE);
    const __m512 u2 = _mm512_shuffle_f32x4(r[8 + s], r[12 + s], 0x44);
    const __m512 u3 = _mm512_shuffle_f32x4(r[8 + s], r[12 + s], 0xEE);
    t[s] = _mm512_shuffle_f32x4(u0, u2, 0x88);
    t[4 + s] = _mm512_shuffle_f32x4(u0, u2, 0xDD);
    t[8 + s] = _mm512_shuffle_f32x4(u1, u3, 0x88);
    t[12 + s] = _mm512_shuffle_f32x4(u1, u3, 0xDD);
  }
  for (int i = 0; i < 16; i++) r[i] = t[i];
}

// alpha·sum (+ beta·C by one FMA) into the `m` lanes of C at cp: how every AVX-512 tile, stream and
// transposed stream route stores, so a row of C gets the same bits whichever route computed it.
inline __attribute__((always_inline)) void store16(float* cp, __mmask16 m, __m512 sum, __m512 va, __m512 vb,
                                                   float beta) {
  __m512 t = _mm512_mul_ps(va, sum);
  if (beta != 0.0f) t = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m, cp), t);
  _mm512_mask_storeu_ps(cp, m, t);
}

// Fetches (towards L2) the next group of rows of a transposed stream route while the current group is read:
// the group's rows are contiguous, so a KC block [pc, end) of k fetches the same share of the next group's
// bytes in address order, 1 KiB per step (the 1 KiB it reads). Memory then sees one sequential stream
// instead of 16 interleaved ones: on Zen 4 the logits read 1.4x (f32) and 2.9x (bf16) faster on one thread
// (fetching to L1 was slower).
struct NextGroupFetch {
  const char* at = nullptr;
  const char* end = nullptr;
  NextGroupFetch(const void* next, int64_t groupBytes, int64_t pc, int64_t blockEnd, int64_t k) {
    if (next == nullptr) return;
    at = static_cast<const char*>(next) + groupBytes * pc / k;
    end = static_cast<const char*>(next) + groupBytes * blockEnd / k;
  }
  inline __attribute__((always_inline)) void step() {
    if (at >= end) return;
    for (int l = 0; l < 16; l++) _mm_prefetch(at + 64 * l, _MM_HINT_T1);
    at += 1024;
  }
};

// The frame of the AVX-512 transposed stream routes (GemmKernel::streamTransposed and its vdpbf16ps twin),
// B stored transposed (column j of B is row j of bt, k contiguous: the tied-embedding logits x·Eᵀ): 16
// columns of C at a time, each KC block summed by `block(rows, live, pc, end, fetch, acc)` into the R rows'
// sums in registers from zero, then stored in block order as the tiles store (alpha·sum, + beta·C by one
// FMA for the first block, + C for the others): the packed route's bits, for any number of rows. Columns
// past `cols` are masked at the store (the block reads their rows as zeros).
template <int R, typename T, typename Block>
inline __attribute__((always_inline)) void transposedStreamGroups(int64_t k, int64_t kcMax, const T* bt, int64_t ldb,
                                                                  float* c, int64_t ldc, float alpha, float beta,
                                                                  int64_t cols, Block&& block) {
  const __m512 va = _mm512_set1_ps(alpha);
  const int64_t groupBytes = 16 * ldb * static_cast<int64_t>(sizeof(T));
  for (int64_t j0 = 0; j0 < cols; j0 += 16) {
    const int live = cols - j0 < 16 ? static_cast<int>(cols - j0) : 16;
    const __mmask16 m = laneMask(live);
    const T* rows = bt + j0 * ldb;
    for (int64_t pc = 0; pc < k; pc += kcMax) {
      const int64_t end = pc + (kcMax < k - pc ? kcMax : k - pc);
      NextGroupFetch fetch(j0 + 32 <= cols ? rows + 16 * ldb : nullptr, groupBytes, pc, end, k);
      __m512 acc[R];
#pragma GCC unroll 4
      for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
      block(rows, live, pc, end, fetch, acc);
      const float blockBeta = pc == 0 ? beta : 1.0f;
      const __m512 vb = _mm512_set1_ps(blockBeta);
#pragma GCC unroll 4
      for (int r = 0; r < R; r++) store16(c + r * ldc + j0, m, acc[r], va, vb, blockBeta);
    }
  }
}

// The end of a stream call (GemmKernel::stream, Bf16Kernel::stream): C[0:rows, 0:cols] = alpha·sums
// (+ beta·C by one FMA), as every micro-tile stores; sums rows are w floats apart.
inline void storeStreamSums(const float* sums, int64_t w, int rows, int64_t cols, float* c, int64_t ldc, float alpha,
                            float beta) {
  const __m512 va = _mm512_set1_ps(alpha);
  const __m512 vb = _mm512_set1_ps(beta);
  const int64_t vecs = (cols + 15) / 16;
  for (int r = 0; r < rows; r++) {
    for (int64_t v = 0; v < vecs; v++) {
      const __mmask16 m = v == vecs - 1 ? laneMask(static_cast<int>(cols - 16 * v)) : static_cast<__mmask16>(0xFFFF);
      store16(c + r * ldc + 16 * v, m, _mm512_load_ps(sums + r * w + 16 * v), va, vb, beta);
    }
  }
}

#endif  // __AVX512F__
