// Row kernels compiled for AVX2/FMA (only called after CPU detection).
#include <math.h>
#include <string.h>

#include <cstdint>

#include "isa.h"

namespace glam {
namespace {
#include "rows_impl.h"
}  // namespace

RowKernels avx2RowKernels() { return makeRowKernels(); }

}  // namespace glam
