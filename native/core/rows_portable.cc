// Row kernels compiled for the baseline instruction set.
#include <math.h>
#include <string.h>

#include <cstdint>

#include "isa.h"

namespace glam {
namespace {
#include "rows_impl.h"
}  // namespace

RowKernels portableRowKernels() { return makeRowKernels(); }

}  // namespace glam
