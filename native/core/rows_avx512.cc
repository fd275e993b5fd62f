// Row kernels compiled for AVX-512 (only called after CPU and OS detection): the same source as the
// other builds, vectorised 16 lanes wide.
#include <math.h>
#include <string.h>

#include <cstdint>

#include "isa.h"

namespace glam {
namespace {
#include "rows_impl.h"
}  // namespace

RowKernels avx512RowKernels() { return makeRowKernels(); }

}  // namespace glam
