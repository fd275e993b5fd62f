#include "args.h"

#include <cmath>
#include <cstdio>

namespace glam {
namespace {

std::string label(const char* name, const char* field) {
  return field == nullptr ? std::string(name) : std::string(name) + "." + field;
}

}  // namespace

Args::Args(napi_env env, napi_callback_info info, const char* op, size_t expected) : env_(env), op_(op) {
  if (napi_get_cb_info(env, info, &argc_, argv_, nullptr, nullptr) != napi_ok) {
    fail("could not read the arguments");
    return;
  }
  // napi_get_cb_info reports the number passed but fills at most kMaxArgs slots.
  if (argc_ > kMaxArgs) argc_ = kMaxArgs;
  if (expected > kMaxArgs) {
    fail("takes " + std::to_string(expected) + " arguments, more than the binding reads (" +
         std::to_string(kMaxArgs) + ")");
    return;
  }
  if (argc_ < expected) {
    fail("expected " + std::to_string(expected) + " arguments, got " + std::to_string(argc_));
  }
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

napi_value Args::next() { return next_ < argc_ ? argv_[next_++] : nullptr; }

bool Args::boolean(napi_value v, const char* name, const char* field, bool* out) {
  if (!ok_) return false;
  napi_valuetype type;
  if (napi_typeof(env_, v, &type) != napi_ok || type != napi_boolean) {
    return fail(label(name, field) + " must be a boolean");
  }
  napi_get_value_bool(env_, v, out);
  return true;
}

bool Args::size(napi_value v, const char* name, const char* field, int64_t* out) {
  if (!ok_) return false;
  napi_valuetype type;
  double d = 0;
  if (napi_typeof(env_, v, &type) != napi_ok || type != napi_number) {
    return fail(label(name, field) + " must be a number");
  }
  napi_get_value_double(env_, v, &d);
  if (!std::isfinite(d) || d < 0 || d != std::floor(d) || d > 9007199254740992.0) {
    char got[64];
    std::snprintf(got, sizeof got, "%g", d);
    return fail(label(name, field) + " must be a non-negative integer, got " + got);
  }
  *out = static_cast<int64_t>(d);
  return true;
}

bool Args::typedArray(napi_value v, const char* name, const char* field, napi_typedarray_type want,
                      const char* typeName, void** data, int64_t* length) {
  if (!ok_) return false;
  bool isTyped = false;
  if (napi_is_typedarray(env_, v, &isTyped) != napi_ok || !isTyped) {
    return fail(label(name, field) + " must be " + typeName);
  }
  napi_typedarray_type type;
  size_t len = 0;
  void* ptr = nullptr;
  napi_value buffer;
  size_t offset = 0;
  if (napi_get_typedarray_info(env_, v, &type, &len, &ptr, &buffer, &offset) != napi_ok) {
    return fail(label(name, field) + ": could not read the typed array");
  }
  if (type != want) return fail(label(name, field) + " must be " + typeName);
  bool detached = false;
  if (napi_is_detached_arraybuffer(env_, buffer, &detached) == napi_ok && detached) {
    return fail(label(name, field) + " is backed by a detached ArrayBuffer");
  }
  if (len > 0 && ptr == nullptr) return fail(label(name, field) + " has no backing memory");
  *data = ptr;
  *length = static_cast<int64_t>(len);
  return true;
}

bool Args::read(const char* name, bool* out) { return boolean(next(), name, nullptr, out); }

bool Args::read(const char* name, int64_t* out) { return size(next(), name, nullptr, out); }

bool Args::read(const char* name, std::vector<ByteRange>* out) {
  if (!ok_) return false;
  napi_value list = next();
  bool isArray = false;
  if (napi_is_array(env_, list, &isArray) != napi_ok || !isArray) return fail(std::string(name) + " must be an array of typed arrays");
  uint32_t count = 0;
  napi_get_array_length(env_, list, &count);
  out->clear();
  for (uint32_t i = 0; i < count; i++) {
    const std::string item = std::string(name) + "[" + std::to_string(i) + "]";
    napi_value v;
    bool isTyped = false;
    if (napi_get_element(env_, list, i, &v) != napi_ok || napi_is_typedarray(env_, v, &isTyped) != napi_ok || !isTyped)
      return fail(item + " must be a typed array");
    napi_typedarray_type type;
    size_t length = 0, offset = 0;
    void* data = nullptr;
    napi_value buffer;
    napi_get_typedarray_info(env_, v, &type, &length, &data, &buffer, &offset);
    if (length > 0 && data == nullptr) return fail(item + " is detached");
    size_t element = 4;
    if (type == napi_int8_array || type == napi_uint8_array || type == napi_uint8_clamped_array) element = 1;
    else if (type == napi_int16_array || type == napi_uint16_array) element = 2;
    else if (type == napi_float64_array || type == napi_bigint64_array || type == napi_biguint64_array) element = 8;
    out->push_back(ByteRange{data, static_cast<int64_t>(length * element)});
  }
  return true;
}

bool Args::read(const char* name, std::string* out) {
  if (!ok_) return false;
  napi_value v = next();
  napi_valuetype type;
  if (napi_typeof(env_, v, &type) != napi_ok || type != napi_string) return fail(std::string(name) + " must be a string");
  char buf[64];
  size_t len = 0;
  napi_get_value_string_utf8(env_, v, buf, sizeof buf, &len);
  if (len >= sizeof buf - 1) return fail(std::string(name) + " is too long (at most 62 characters)");
  out->assign(buf, len);
  return true;
}

bool Args::read(const char* name, double* out) {
  if (!ok_) return false;
  napi_value v = next();
  napi_valuetype type;
  if (napi_typeof(env_, v, &type) != napi_ok || type != napi_number) {
    return fail(std::string(name) + " must be a number");
  }
  napi_get_value_double(env_, v, out);
  return true;
}

template <typename View>
bool Args::array(const char* name, const char* field, napi_typedarray_type type, const char* typeName, View* out) {
  void* data = nullptr;
  if (!typedArray(next(), name, field, type, typeName, &data, &out->size)) return false;
  out->data = static_cast<decltype(out->data)>(data);
  return true;
}

template <typename View>
bool Args::layout(const char* name, View* out) {
  return size(next(), name, "offset", &out->offset) && size(next(), name, "rows", &out->rows) &&
         size(next(), name, "cols", &out->cols) && size(next(), name, "ld", &out->ld) &&
         boolean(next(), name, "trans", &out->trans);
}

bool Args::read(const char* name, Vec* out) {
  return array(name, nullptr, napi_float32_array, "a Float32Array", out);
}

bool Args::read(const char* name, IVec* out) { return array(name, nullptr, napi_int32_array, "an Int32Array", out); }

bool Args::read(const char* name, DVec* out) {
  return array(name, nullptr, napi_float64_array, "a Float64Array", out);
}

bool Args::read(const char* name, BMat* out) {
  return array(name, "data", napi_uint16_array, "a Uint16Array", out) && layout(name, out);
}

bool Args::read(const char* name, Mat* out) {
  return array(name, "data", napi_float32_array, "a Float32Array", out) && layout(name, out);
}

}  // namespace glam
