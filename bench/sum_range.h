// The read-bandwidth probe's loop for the standalone C++ benchmarks (access_patterns.cc, stream_fetch.cc):
// the sum of n floats (n a multiple of 64, 64-byte aligned) in four independent vector sums, so the adds stay
// off the critical path and only the loads set the pace, as in native/core/infer.cc's readBandwidth.
#pragma once

#include <immintrin.h>

#include <cstdint>

inline float sumRange(const float* p, int64_t n) {
  __m512 a = _mm512_setzero_ps(), b = a, c = a, d = a;
  for (int64_t i = 0; i < n; i += 64) {
    a = _mm512_add_ps(a, _mm512_load_ps(p + i));
    b = _mm512_add_ps(b, _mm512_load_ps(p + i + 16));
    c = _mm512_add_ps(c, _mm512_load_ps(p + i + 32));
    d = _mm512_add_ps(d, _mm512_load_ps(p + i + 48));
  }
  // Stored and added in scalar: GCC 12's _mm512_reduce_add_ps trips -Wuninitialized.
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, _mm512_add_ps(_mm512_add_ps(a, b), _mm512_add_ps(c, d)));
  float s = 0.0f;
  for (float x : lanes) s += x;
  return s;
}
