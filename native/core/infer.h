// Inference kernels: attention of query rows over a paged key/value cache, top-k selection per row, and
// the memory read bandwidth probe of `glam bench decode`. Arguments must already be validated.
#pragma once

#include <cstdint>

namespace glam {

// One query row per (token, head) attends over keys 0..pos of its sequence, read from a paged cache:
// key j of the sequence of row r lives in slot blockTable[seq(r)·maxBlocks + j / blockSize]·blockSize +
// j % blockSize of kCache and vCache (rows of heads·dHead floats, head h in columns h·dHead...).
//   s_j = scale·(q_r,h · k_j,h) + relBias[bucketOf[pos − j]·heads + h],  p = softmax(s),
//   out_r,h = Σ_j p_j·v_j,h.
// Each (row, head) is computed by one thread in one fixed order, so a row's result never depends on the
// other rows or on the thread count (batch-invariant, bitwise).
struct PagedAttentionCall {
  const float* q;  // [rows, heads·dHead]
  const float* kCache;
  const float* vCache;
  const int32_t* blockTable;  // [sequences, maxBlocks]
  int64_t maxBlocks;
  int64_t blockSize;
  const int32_t* rowSeq;  // [rows]: the block-table row of each query row
  const int32_t* rowPos;  // [rows]: the query's position i (keys 0..i)
  int64_t rows;
  const float* relBias;    // [buckets, heads]
  const int32_t* bucketOf;  // bucketOf[i − j]
  int64_t heads;
  int64_t dHead;
  float scale;
  float* out;  // [rows, heads·dHead]
};

void pagedAttention(const PagedAttentionCall& c);

// For each row of x [rows, cols]: the k largest values in descending order, ties by ascending index
// (NaN ranks below every number), into idx and val [rows, k].
void topkRows(const float* x, int64_t rows, int64_t cols, int64_t k, int32_t* idx, float* val);

struct BandwidthResult {
  double best;    // GB/s of the fastest trial
  double median;  // GB/s of the median trial
  int threads;
  int trials;
  int64_t bytes;  // read in one pass
};

// Read bandwidth of `threads` threads streaming through a buffer of `bytes` (far larger than the caches),
// in trials repeated for about `seconds`.
BandwidthResult readBandwidth(int threads, int64_t bytes, double seconds);

// A run of bytes for readBandwidthOf.
struct ByteRange {
  const void* data;
  int64_t bytes;
};

// Read bandwidth of `threads` threads reading every byte of `ranges` (laid end to end, each thread an
// equal contiguous share) once per trial, in `trials` trials: the rate of the memory some data, a model's
// weights, actually occupies. On a virtual machine one allocation can read 1.3x faster than another in
// the same second, so a probe of a buffer of its own says little about the memory a decode step reads.
BandwidthResult readBandwidthOf(int threads, const ByteRange* ranges, int64_t count, int trials);

}  // namespace glam
