#include "moe.h"

#include <cmath>
#include <limits>
#include <vector>

namespace glam {
namespace {

// Marks a kept choice during the capacity pass, before it gets its assignment index.
constexpr int32_t kPending = -2;

}  // namespace

void top2Route(const float* p, const float* logits, int64_t rows, int64_t E, int64_t groups, int64_t capacity,
               const double* coins, int32_t* first, int32_t* second, float* gate1, float* gate2, int32_t* slot1,
               int32_t* slot2, int32_t* offsets, int32_t* token, float* gate, int32_t* load, int32_t* routed,
               int32_t* firstCounts, double* stats) {
  const int64_t S = groups > 0 ? rows / groups : 0;
  const int64_t C = capacity;
  std::vector<double> meanP(static_cast<size_t>(E));
  std::vector<int32_t> used(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; e++) load[e] = routed[e] = 0;
  for (int64_t i = 0; i < groups * E; i++) firstCounts[i] = 0;
  double entropy = 0, aux = 0;
  int64_t dropped = 0;
  for (int64_t g = 0; g < groups; g++) {
    const int64_t t0 = g * S, t1 = t0 + S;
    // Top-2 in one scan (strict > keeps the lowest index on ties), the group's mean probabilities and
    // the entropy on the way: log p_e = (l_e − l_e1) + log p_e1, one log per token.
    for (int64_t e = 0; e < E; e++) meanP[e] = 0;
    for (int64_t t = t0; t < t1; t++) {
      const float* pr = p + t * E;
      int32_t b1 = 0, b2 = -1;
      double v1 = pr[0], v2 = -std::numeric_limits<double>::infinity();
      meanP[0] += v1;
      for (int64_t e = 1; e < E; e++) {
        const double v = pr[e];
        meanP[e] += v;
        if (v > v1) {
          b2 = b1;
          v2 = v1;
          b1 = static_cast<int32_t>(e);
          v1 = v;
        } else if (v > v2) {
          b2 = static_cast<int32_t>(e);
          v2 = v;
        }
      }
      if (b2 < 0) {  // NaN probabilities: any other expert, so every index stays valid
        b2 = b1 == 0 ? 1 : 0;
        v2 = pr[b2];
      }
      const float* lr = logits + t * E;
      const double l1 = lr[b1];
      const double log1 = std::log(v1);
      for (int64_t e = 0; e < E; e++) entropy -= static_cast<double>(pr[e]) * (static_cast<double>(lr[e]) - l1 + log1);
      first[t] = b1;
      second[t] = b2;
      gate1[t] = static_cast<float>(v1 / (v1 + v2));
      gate2[t] = static_cast<float>(v2 / (v1 + v2));
      firstCounts[g * E + b1]++;
    }
    // aux_g = E · Σ_e mean_t(p_t[e]) · (fraction of first choices on e).
    double s = 0;
    for (int64_t e = 0; e < E; e++) {
      s += (meanP[e] / static_cast<double>(S)) *
           (static_cast<double>(firstCounts[g * E + e]) / static_cast<double>(S));
    }
    aux += static_cast<double>(E) * s;

    // Capacity: all first choices in token order, then the second choices. A choice takes a place while its
    // expert has room (kPending: numbered by the sort below), else it is dropped (-1).
    for (int64_t e = 0; e < E; e++) used[e] = 0;
    auto place = [&](int32_t e) -> int32_t {
      routed[e]++;
      if (used[e] < C) {
        used[e]++;
        return kPending;
      }
      dropped++;
      return -1;
    };
    for (int64_t t = t0; t < t1; t++) slot1[t] = place(first[t]);
    for (int64_t t = t0; t < t1; t++) {
      const bool kept = coins == nullptr || coins[t] < 2.0 * static_cast<double>(gate2[t]);
      slot2[t] = kept ? place(second[t]) : -1;
    }
    for (int64_t e = 0; e < E; e++) load[e] += used[e];
  }

  // Counting sort of the kept assignments by expert (tokens ascending within each).
  offsets[0] = 0;
  for (int64_t e = 0; e < E; e++) offsets[e + 1] = offsets[e] + load[e];
  std::vector<int32_t>& cursor = used;
  for (int64_t e = 0; e < E; e++) cursor[e] = offsets[e];
  for (int64_t t = 0; t < rows; t++) {
    if (slot1[t] == kPending) {
      const int32_t a = cursor[first[t]]++;
      token[a] = static_cast<int32_t>(t);
      gate[a] = gate1[t];
      slot1[t] = a;
    }
    if (slot2[t] == kPending) {
      const int32_t a = cursor[second[t]]++;
      token[a] = static_cast<int32_t>(t);
      gate[a] = gate2[t];
      slot2[t] = a;
    }
  }
  stats[0] = rows > 0 ? entropy / static_cast<double>(rows) : 0;
  stats[1] = groups > 0 ? aux / static_cast<double>(groups) : 0;
  stats[2] = static_cast<double>(dropped);
  stats[3] = static_cast<double>(offsets[E]);
}

void routerGrad(const float* p, int64_t rows, int64_t E, const int32_t* first, const int32_t* second,
                const int32_t* slot1, const int32_t* slot2, const float* dGate, const int32_t* firstCounts,
                int64_t groups, double auxGrad, float* dp) {
  const int64_t S = groups > 0 ? rows / groups : 0;
  std::vector<double> auxCoef(static_cast<size_t>(E));
  const double denom = static_cast<double>(groups) * static_cast<double>(S) * static_cast<double>(S);
  for (int64_t g = 0; g < groups; g++) {
    for (int64_t e = 0; e < E; e++) {
      auxCoef[e] = (auxGrad * static_cast<double>(E) * static_cast<double>(firstCounts[g * E + e])) / denom;
    }
    for (int64_t t = g * S; t < (g + 1) * S; t++) {
      float* d = dp + t * E;
      for (int64_t e = 0; e < E; e++) d[e] = static_cast<float>(auxCoef[e]);
      const int32_t e1 = first[t], e2 = second[t];
      const double dg1 = slot1[t] >= 0 ? static_cast<double>(dGate[slot1[t]]) : 0.0;
      const double dg2 = slot2[t] >= 0 ? static_cast<double>(dGate[slot2[t]]) : 0.0;
      const double p1 = p[t * E + e1], p2 = p[t * E + e2];
      const double s2 = (p1 + p2) * (p1 + p2);
      d[e1] = static_cast<float>(static_cast<double>(d[e1]) + (p2 * (dg1 - dg2)) / s2);
      d[e2] = static_cast<float>(static_cast<double>(d[e2]) + (p1 * (dg2 - dg1)) / s2);
    }
  }
}

void lossSums(const float* losses, const float* lse, const int32_t* targets, int64_t rows, double* sums) {
  double ce = 0, lse2 = 0, count = 0;
  for (int64_t r = 0; r < rows; r++) {
    if (targets[r] < 0) continue;
    const double l = lse[r];
    ce += losses[r];
    lse2 += l * l;
    count += 1;
  }
  sums[0] = ce;
  sums[1] = lse2;
  sums[2] = count;
}

void relBiasGrad(const float* dBias, const int32_t* bucketOf, int64_t heads, int64_t t, float* dRelBias) {
  for (int64_t h = 0; h < heads; h++) {
    for (int64_t i = 0; i < t; i++) {
      const float* row = dBias + (h * t + i) * t;
      for (int64_t j = 0; j <= i; j++) {
        float& out = dRelBias[static_cast<int64_t>(bucketOf[i * t + j]) * heads + h];
        out = static_cast<float>(static_cast<double>(out) + static_cast<double>(row[j]));
      }
    }
  }
}

}  // namespace glam
