// Reading JavaScript arguments into core types. Every failure throws a JS Error naming the kernel, the
// argument and what was wrong, and the call returns without touching memory. Only the JavaScript side of
// a value is checked here (types, integers, detached buffers); what the values mean is checked by the core.
#pragma once

#include <node_api.h>

#include <cstdint>
#include <string>

#include <vector>

#include "../core/infer.h"
#include "../core/ops.h"

namespace glam {

// Reads a call's arguments in order: each read takes the next one (a matrix view takes six).
class Args {
 public:
  Args(napi_env env, napi_callback_info info, const char* op, size_t expected);

  // False once an error has been thrown; every reader below returns false after that.
  bool ok() const { return ok_; }

  bool read(const char* name, bool* out);
  // A short string (at most 62 characters).
  bool read(const char* name, std::string* out);
  // A non-negative integer number (at most 2^53).
  bool read(const char* name, int64_t* out);
  // A number (any value: NaN and infinities only scale data).
  bool read(const char* name, double* out);
  bool read(const char* name, Vec* out);
  bool read(const char* name, IVec* out);
  bool read(const char* name, DVec* out);
  // A matrix view as six arguments: data (Float32Array), offset, rows, cols, ld, trans.
  bool read(const char* name, Mat* out);
  // A bf16 matrix view (data a Uint16Array), the same six arguments.
  bool read(const char* name, BMat* out);
  // An array of typed arrays (any element type), each as the bytes it views.
  bool read(const char* name, std::vector<ByteRange>* out);

  // Throws `op: message` and marks the call failed. Always returns false.
  bool fail(const std::string& message);

 private:
  napi_value next();
  // `field` (may be null) is appended to the name in messages: "a.rows".
  bool size(napi_value v, const char* name, const char* field, int64_t* out);
  bool boolean(napi_value v, const char* name, const char* field, bool* out);
  bool typedArray(napi_value v, const char* name, const char* field, napi_typedarray_type type,
                  const char* typeName, void** data, int64_t* length);
  // A typed array of `type` into a vector or a view's data and size.
  template <typename View>
  bool array(const char* name, const char* field, napi_typedarray_type type, const char* typeName, View* out);
  // The five arguments after a matrix view's data: offset, rows, cols, ld, trans.
  template <typename View>
  bool layout(const char* name, View* out);

  napi_env env_;
  const char* op_;
  // Enough for the widest op (pagedAttention: five matrix views of six arguments, and seven others).
  static constexpr size_t kMaxArgs = 48;
  napi_value argv_[kMaxArgs];
  size_t argc_ = kMaxArgs;
  size_t next_ = 0;
  bool ok_ = true;
};

}  // namespace glam
