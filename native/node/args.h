// Node-API argument reading with validation: every failure throws a JS Error naming the kernel, the
// argument and what was wrong, and the kernel returns without touching memory.
#pragma once

#include <node_api.h>

#include <cstdint>
#include <string>

namespace glam {

struct F32View {
  float* data;
  int64_t length;
};

struct I32View {
  int32_t* data;
  int64_t length;
};

struct F64View {
  double* data;
  int64_t length;
};

class Args {
 public:
  Args(napi_env env, napi_callback_info info, const char* op, size_t expected);

  // False once an error has been thrown; every reader below returns false after that.
  bool ok() const { return ok_; }
  napi_env env() const { return env_; }
  const char* op() const { return op_; }

  bool boolean(size_t i, const char* name, bool* out);
  // A non-negative integer number (at most 2^53).
  bool size(size_t i, const char* name, int64_t* out);
  // A number (any value), converted to float.
  bool number(size_t i, const char* name, float* out);
  // A number (any value), kept in double precision.
  bool number(size_t i, const char* name, double* out);
  bool f32(size_t i, const char* name, F32View* out);
  bool i32(size_t i, const char* name, I32View* out);
  bool f64(size_t i, const char* name, F64View* out);

  // Throws `op: message` and marks the call failed. Always returns false.
  bool fail(const std::string& message);
  // Requires `view` to hold at least `needed` elements.
  bool needs(const char* name, int64_t length, int64_t needed, const std::string& shapes = "");

 private:
  bool typedArray(size_t i, const char* name, napi_typedarray_type type, const char* typeName, void** data,
                  int64_t* length);

  napi_env env_;
  const char* op_;
  napi_value argv_[20];
  size_t argc_ = 20;
  bool ok_ = true;
};

// a * b, or false when the product does not fit in 2^62 (sizes that large cannot be backed by memory).
bool mulFits(int64_t a, int64_t b, int64_t* out);

std::string fmt(const char* format, ...) __attribute__((format(printf, 1, 2)));

}  // namespace glam
