// GEMM operand packing, written once and compiled into each ISA translation unit (include it inside an
// anonymous namespace there so every copy keeps internal linkage and its own instruction set).
// op(A)[i,p] = a[i*rs + p*cs]; op(B)[p,j] = b[p*rs + j*cs].

template <int MR>
void packAPanels(int64_t mc, int64_t kc, const float* a, int64_t rs, int64_t cs, float* dst) {
  for (int64_t i0 = 0; i0 < mc; i0 += MR, dst += MR * kc) {
    const int64_t rows = mc - i0 < MR ? mc - i0 : MR;
    const float* src = a + i0 * rs;
    if (rows == MR && cs == 1) {
      // A stored row-major: MR row streams, interleaved into the panel.
      const float* row[MR];
      for (int r = 0; r < MR; r++) row[r] = src + r * rs;
      for (int64_t p = 0; p < kc; p++) {
        for (int r = 0; r < MR; r++) dst[p * MR + r] = row[r][p];
      }
    } else if (rows == MR && rs == 1) {
      // A stored transposed: each panel column is contiguous.
      for (int64_t p = 0; p < kc; p++) {
        for (int r = 0; r < MR; r++) dst[p * MR + r] = src[p * cs + r];
      }
    } else {
      for (int64_t p = 0; p < kc; p++) {
        for (int r = 0; r < MR; r++) dst[p * MR + r] = r < rows ? src[r * rs + p * cs] : 0.0f;
      }
    }
  }
}

template <int NR>
void packBPanels(int64_t kc, int64_t nc, const float* b, int64_t rs, int64_t cs, float* dst) {
  for (int64_t j0 = 0; j0 < nc; j0 += NR, dst += NR * kc) {
    const int64_t cols = nc - j0 < NR ? nc - j0 : NR;
    const float* src = b + j0 * cs;
    if (cols == NR && cs == 1) {
      // B stored row-major: each panel row is a contiguous run of NR floats.
      for (int64_t p = 0; p < kc; p++) {
        for (int c = 0; c < NR; c++) dst[p * NR + c] = src[p * rs + c];
      }
    } else if (cols == NR && rs == 1) {
      // B stored transposed: read each source row once, scatter it down the panel column.
      for (int c = 0; c < NR; c++) {
        const float* col = src + c * cs;
        for (int64_t p = 0; p < kc; p++) dst[p * NR + c] = col[p];
      }
    } else {
      for (int64_t p = 0; p < kc; p++) {
        for (int c = 0; c < NR; c++) dst[p * NR + c] = c < cols ? src[p * rs + c * cs] : 0.0f;
      }
    }
  }
}

// Writes a computed tile held row-major in `tile` (ld = NR) to the first rows x cols of C with the
// operations of every full-tile store: alpha·sum, then one fused multiply-add for beta·C (written out,
// so no compiler contracts it another way), so a ragged tile's elements get the same bits as a full one's.
template <int NR>
void storeTile(const float* tile, float* c, int64_t ldc, float alpha, float beta, int rows, int cols) {
  for (int r = 0; r < rows; r++) {
    float* cr = c + r * ldc;
    const float* tr = tile + r * NR;
    if (beta == 0.0f) {
      for (int j = 0; j < cols; j++) cr[j] = alpha * tr[j];
    } else {
      for (int j = 0; j < cols; j++) cr[j] = __builtin_fmaf(beta, cr[j], alpha * tr[j]);
    }
  }
}

// bf16: the upper half of a float32, rounded to nearest even; a NaN stays a (quiet) NaN. The same integer
// steps on every path (and in the TypeScript reference), so operands round identically everywhere.
inline uint16_t bf16Round(float x) {
  uint32_t u = __builtin_bit_cast(uint32_t, x);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float bf16Widen(uint16_t h) { return __builtin_bit_cast(float, static_cast<uint32_t>(h) << 16); }

// Widening kernels' packing: A rounded to bf16 values held as float32, B widened, both zero-padded.
template <int MR>
void packAPanelsBf16Values(int64_t mc, int64_t kc, const float* a, int64_t rs, int64_t cs, float* dst) {
  for (int64_t i0 = 0; i0 < mc; i0 += MR, dst += MR * kc) {
    const int64_t rows = mc - i0 < MR ? mc - i0 : MR;
    const float* src = a + i0 * rs;
    for (int64_t p = 0; p < kc; p++) {
      for (int r = 0; r < MR; r++) dst[p * MR + r] = r < rows ? bf16Widen(bf16Round(src[r * rs + p * cs])) : 0.0f;
    }
  }
}

template <int NR>
void packBPanelsWidened(int64_t kc, int64_t nc, const uint16_t* b, int64_t rs, int64_t cs, float* dst) {
  for (int64_t j0 = 0; j0 < nc; j0 += NR, dst += NR * kc) {
    const int64_t cols = nc - j0 < NR ? nc - j0 : NR;
    const uint16_t* src = b + j0 * cs;
    if (cols == NR && cs == 1) {
      for (int64_t p = 0; p < kc; p++) {
        for (int c = 0; c < NR; c++) dst[p * NR + c] = bf16Widen(src[p * rs + c]);
      }
    } else {
      for (int64_t p = 0; p < kc; p++) {
        for (int c = 0; c < NR; c++) dst[p * NR + c] = c < cols ? bf16Widen(src[p * rs + c * cs]) : 0.0f;
      }
    }
  }
}

template <int NR>
void packBPanelsBf16Values(int64_t kc, int64_t nc, const float* b, int64_t rs, int64_t cs, float* dst) {
  for (int64_t j0 = 0; j0 < nc; j0 += NR, dst += NR * kc) {
    const int64_t cols = nc - j0 < NR ? nc - j0 : NR;
    const float* src = b + j0 * cs;
    for (int64_t p = 0; p < kc; p++) {
      for (int c = 0; c < NR; c++) dst[p * NR + c] = c < cols ? bf16Widen(bf16Round(src[p * rs + c * cs])) : 0.0f;
    }
  }
}
