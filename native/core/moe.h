// The per-token bookkeeping of a training step that is not matrix arithmetic: top-2 routing with GShard
// capacity, the router's gradient, the loss sums, the relative-bias gradient scatter. Serial loops in
// double precision, in the order of the TypeScript reference (src/backend/reference.ts), so both give
// the same bits (the router entropy aside: its log may differ in the last place). Arguments must
// already be validated (ops.cc).
#pragma once

#include <cstdint>

namespace glam {

// Top-2 routing of `rows` tokens over E experts in `groups` equal groups (docs/model.md "MoE routing and
// capacity"): p and logits [rows, E] (contiguous); capacity C per expert and group; coins (rows values,
// or null: keep every second choice) the uniforms of policy 'random'. Writes the choices, gates and slots
// per token (slot -1: not kept), the kept assignments sorted by expert (offsets [E+1], token and gate
// [2·rows]), load and routed [E], firstCounts [groups·E], and stats = {entropy, aux, dropped, assignments}.
void top2Route(const float* p, const float* logits, int64_t rows, int64_t E, int64_t groups, int64_t capacity,
               const double* coins, int32_t* first, int32_t* second, float* gate1, float* gate2, int32_t* slot1,
               int32_t* slot2, int32_t* offsets, int32_t* token, float* gate, int32_t* load, int32_t* routed,
               int32_t* firstCounts, double* stats);

// dp [rows, E] = the aux loss's gradient through p (auxGrad·E·firstCounts[g, e] / (groups·S²) for every
// token of group g) plus the gates' normalisation: with dg the gradient of a kept assignment's gate
// (dGate[slot], 0 when not kept), dp[e1] += p2·(dg1 − dg2)/(p1 + p2)², dp[e2] += p1·(dg2 − dg1)/(p1 + p2)².
void routerGrad(const float* p, int64_t rows, int64_t E, const int32_t* first, const int32_t* second,
                const int32_t* slot1, const int32_t* slot2, const float* dGate, const int32_t* firstCounts,
                int64_t groups, double auxGrad, float* dp);

// sums = {Σ losses, Σ lse², count} over the rows whose target is >= 0 (float64, row order).
void lossSums(const float* losses, const float* lse, const int32_t* targets, int64_t rows, double* sums);

// dRelBias[bucketOf[i·t + j]·heads + h] += dBias[h·t + i, j] for j <= i (row-major [heads·t, t]); each
// addition rounds to float32, in (h, i, j) order.
void relBiasGrad(const float* dBias, const int32_t* bucketOf, int64_t heads, int64_t t, float* dRelBias);

}  // namespace glam
