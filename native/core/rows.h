// Element-wise and row kernel drivers: split work across the pool, call the current ISA table.
// Arguments must already be validated (lengths, index ranges).
#pragma once

#include <cstdint>

namespace glam {

void add(const float* a, const float* b, float* out, int64_t n);
void axpy(float alpha, const float* x, float* y, int64_t n);
void gelu(const float* x, float* out, int64_t n);
void geluBackward(const float* x, const float* dy, float* dx, int64_t n);
void gatedGelu(const float* a, const float* b, float* out, int64_t n);
void gatedGeluBackward(const float* a, const float* b, const float* dy, float* da, float* db, int64_t n);
void rmsnorm(const float* x, const float* scale, int64_t rows, int64_t cols, float eps, float* out, float* invRms);
void rmsnormBackward(const float* x, const float* scale, const float* invRms, const float* dy, int64_t rows,
                     int64_t cols, float* dx, float* dscale);
void softmaxRows(const float* x, int64_t rows, int64_t cols, float* out);
void softmaxRowsBackward(const float* y, const float* dy, int64_t rows, int64_t cols, float* dx);
void causalSoftmax(float* scores, const float* bias, int64_t batchHeads, int64_t heads, int64_t t, float scale);
void crossEntropy(const float* logits, const int32_t* targets, int64_t rows, int64_t cols, float* losses,
                  float* lse);
void crossEntropyBackward(const float* logits, const float* lse, const int32_t* targets, int64_t rows,
                          int64_t cols, float ceScale, float zScale, float* dlogits);
void gatherRows(const float* src, const int32_t* idx, int64_t count, int64_t cols, float* out);
void scatterAddRows(const float* src, const int32_t* idx, const float* weight, int64_t count, int64_t cols,
                    float* out);
void rowDotScale(float* a, const float* b, const float* scale, int64_t rows, int64_t cols, float* dot);

}  // namespace glam
