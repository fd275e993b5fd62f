// Optimizer and gradient kernels: float64 sums of squares, a threaded fill, and the fused Adafactor passes.
// Every result is independent of the thread count: work is cut into units that depend only on the shape,
// each unit's partial sum is stored, and the partials are added in unit order.
#pragma once

#include <cstdint>

namespace glam {

// Σ x² accumulated in double (NaN and ±Inf propagate).
double sumSquares(const float* x, int64_t n);
void fillValue(float* x, int64_t n, float value);

// Factored Adafactor statistics of `slices` matrices g[s] [rows, cols] (vRow [slices·rows], vCol
// [slices·cols]): R ← beta2·R + mix·rowsum(g² + eps1), C likewise, then
// sumSq[s] = Σ U², U_ij = g_ij·sqrt(ΣR/R_i)/sqrt(C_j).
void adafactorFactoredStats(const float* g, float* vRow, float* vCol, int64_t slices, int64_t rows, int64_t cols,
                            double beta2, double mix, double eps1, double* sumSq);
// θ ← θ − decay·θ − step[s]·U over each slice (U as above, from the current statistics).
void adafactorFactoredApply(const float* g, const float* vRow, const float* vCol, float* p, int64_t slices,
                            int64_t rows, int64_t cols, const double* step, double decay);
// Full second moment: v ← beta2·v + mix·(g² + eps1), sumSq[s] = Σ (g/sqrt(v))² over slice s of `size`.
void adafactorFullStats(const float* g, float* v, int64_t slices, int64_t size, double beta2, double mix,
                        double eps1, double* sumSq);
void adafactorFullApply(const float* g, const float* v, float* p, int64_t slices, int64_t size, const double* step,
                        double decay);

}  // namespace glam
