// exp for float vectors, written once and included (inside an anonymous namespace) by every unit that
// needs it, so each is compiled for that unit's instruction set. The including unit provides <math.h>
// and <cstdint>, and defines GLAM_INLINE.

GLAM_INLINE float expApprox(float x) {
  const float kHi = 88.3762626647949f;  // exp(kHi) is near FLT_MAX
  const float kLo = -87.3365447505531f;  // exp(kLo) is FLT_MIN; below it the result flushes to 0
  const float kRound = 12582912.0f;      // 1.5 * 2^23: adding it rounds to an integer
  const int32_t kRoundBits = 0x4B400000;
  float xc = x > kHi ? kHi : x;  // NaN passes through both clamps
  xc = xc < kLo ? kLo : xc;
  const float t = xc * 1.44269504088896341f + kRound;
  const float n = t - kRound;
  float r = xc - n * 0.693359375f;  // ln2 split in two so n * ln2_hi is exact
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t tBits = __builtin_bit_cast(int32_t, t);
  const float scale = __builtin_bit_cast(float, (tBits - kRoundBits + 127) << 23);
  float y = p * scale;
  y = x < kLo ? 0.0f : y;
  return x > kHi ? HUGE_VALF : y;
}
