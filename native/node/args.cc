#include "args.h"

#include <cmath>
#include <cstdarg>
#include <cstdio>

namespace glam {

std::string fmt(const char* format, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, format);
  std::vsnprintf(buf, sizeof buf, format, ap);
  va_end(ap);
  return buf;
}

bool mulFits(int64_t a, int64_t b, int64_t* out) {
  constexpr int64_t kLimit = int64_t{1} << 62;
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r) || r > kLimit) return false;
  *out = r;
  return true;
}

Args::Args(napi_env env, napi_callback_info info, const char* op, size_t expected) : env_(env), op_(op) {
  if (napi_get_cb_info(env, info, &argc_, argv_, nullptr, nullptr) != napi_ok) {
    fail("could not read the arguments");
    return;
  }
  if (argc_ < expected) fail(fmt("expected %zu arguments, got %zu", expected, argc_));
}

bool Args::fail(const std::string& message) {
  if (ok_) {
    ok_ = false;
    const std::string full = std::string(op_) + ": " + message;
    bool pending = false;
    napi_is_exception_pending(env_, &pending);
    if (!pending) napi_throw_error(env_, nullptr, full.c_str());
  }
  return false;
}

bool Args::needs(const char* name, int64_t length, int64_t needed, const std::string& shapes) {
  if (!ok_) return false;
  if (length >= needed) return true;
  std::string msg = fmt("%s has %lld elements, needs %lld", name, static_cast<long long>(length),
                        static_cast<long long>(needed));
  if (!shapes.empty()) msg += " (" + shapes + ")";
  return fail(msg);
}

bool Args::boolean(size_t i, const char* name, bool* out) {
  if (!ok_) return false;
  napi_valuetype type;
  if (napi_typeof(env_, argv_[i], &type) != napi_ok || type != napi_boolean) {
    return fail(fmt("%s must be a boolean", name));
  }
  napi_get_value_bool(env_, argv_[i], out);
  return true;
}

bool Args::size(size_t i, const char* name, int64_t* out) {
  if (!ok_) return false;
  napi_valuetype type;
  double v = 0;
  if (napi_typeof(env_, argv_[i], &type) != napi_ok || type != napi_number) {
    return fail(fmt("%s must be a number", name));
  }
  napi_get_value_double(env_, argv_[i], &v);
  if (!std::isfinite(v) || v < 0 || v != std::floor(v) || v > 9007199254740992.0) {
    return fail(fmt("%s must be a non-negative integer, got %g", name, v));
  }
  *out = static_cast<int64_t>(v);
  return true;
}

bool Args::number(size_t i, const char* name, float* out) {
  if (!ok_) return false;
  napi_valuetype type;
  double v = 0;
  if (napi_typeof(env_, argv_[i], &type) != napi_ok || type != napi_number) {
    return fail(fmt("%s must be a number", name));
  }
  napi_get_value_double(env_, argv_[i], &v);
  *out = static_cast<float>(v);  // any value, NaN and infinities included: it only scales data
  return true;
}

bool Args::number(size_t i, const char* name, double* out) {
  if (!ok_) return false;
  napi_valuetype type;
  if (napi_typeof(env_, argv_[i], &type) != napi_ok || type != napi_number) {
    return fail(fmt("%s must be a number", name));
  }
  napi_get_value_double(env_, argv_[i], out);
  return true;
}

bool Args::typedArray(size_t i, const char* name, napi_typedarray_type want, const char* typeName, void** data,
                      int64_t* length) {
  if (!ok_) return false;
  bool isTyped = false;
  if (napi_is_typedarray(env_, argv_[i], &isTyped) != napi_ok || !isTyped) {
    return fail(fmt("%s must be %s", name, typeName));
  }
  napi_typedarray_type type;
  size_t len = 0;
  void* ptr = nullptr;
  napi_value buffer;
  size_t offset = 0;
  if (napi_get_typedarray_info(env_, argv_[i], &type, &len, &ptr, &buffer, &offset) != napi_ok) {
    return fail(fmt("%s: could not read the typed array", name));
  }
  if (type != want) return fail(fmt("%s must be %s", name, typeName));
  bool detached = false;
  if (napi_is_detached_arraybuffer(env_, buffer, &detached) == napi_ok && detached) {
    return fail(fmt("%s is backed by a detached ArrayBuffer", name));
  }
  if (len > 0 && ptr == nullptr) return fail(fmt("%s has no backing memory", name));
  *data = ptr;
  *length = static_cast<int64_t>(len);
  return true;
}

bool Args::f32(size_t i, const char* name, F32View* out) {
  void* data = nullptr;
  if (!typedArray(i, name, napi_float32_array, "a Float32Array", &data, &out->length)) return false;
  out->data = static_cast<float*>(data);
  return true;
}

bool Args::i32(size_t i, const char* name, I32View* out) {
  void* data = nullptr;
  if (!typedArray(i, name, napi_int32_array, "an Int32Array", &data, &out->length)) return false;
  out->data = static_cast<int32_t*>(data);
  return true;
}

bool Args::f64(size_t i, const char* name, F64View* out) {
  void* data = nullptr;
  if (!typedArray(i, name, napi_float64_array, "a Float64Array", &data, &out->length)) return false;
  out->data = static_cast<double*>(data);
  return true;
}

}  // namespace glam
