// The Node-API surface of the kernel core. The op table below is the addon's whole kernel surface: one
// line per core function (native/core/ops.h) with its argument names; each binding is generated from the
// function's C++ signature (argument kinds from parameter types), reads the JavaScript arguments, calls the
// core (which validates them) and throws the core's message on failure. A matrix view travels as six
// arguments (data, offset, rows, cols, ld, trans): reading numbers is much cheaper than reading object
// properties. `ops` exports the table as "name:kind" lists, which src/backend/native.ts checks against
// the TypeScript declaration of the contract (src/backend/ops.ts).
#include <node_api.h>

#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/infer.h"
#include "../core/isa.h"
#include "../core/ops.h"
#include "../core/peak.h"
#include "../core/threadpool.h"
#include "args.h"

namespace glam {
namespace {

// What a C++ parameter type is on the JavaScript side ("mat": six JavaScript arguments, data, offset, rows,
// cols, ld, trans; "bmat": the same six, data a Uint16Array of bf16).
template <typename T>
constexpr const char* kindOf() {
  if constexpr (std::is_same_v<T, double>) return "num";
  else if constexpr (std::is_same_v<T, int64_t>) return "size";
  else if constexpr (std::is_same_v<T, bool>) return "bool";
  else if constexpr (std::is_same_v<T, Vec>) return "f32";
  else if constexpr (std::is_same_v<T, IVec>) return "i32";
  else if constexpr (std::is_same_v<T, DVec>) return "f64";
  else if constexpr (std::is_same_v<T, Mat>) return "mat";
  else if constexpr (std::is_same_v<T, BMat>) return "bmat";
  else static_assert(sizeof(T) == 0, "a parameter type the binding cannot read");
}

template <typename P>
using Plain = std::remove_const_t<std::remove_reference_t<P>>;

// A trailing double* parameter is the op's result, returned to JavaScript as a number.
template <typename P>
constexpr bool isResult = std::is_same_v<P, double*>;

struct Op {
  const char* name;
  const char* argNames;  // space-separated, one per JavaScript argument
  napi_callback call;
  std::vector<const char*> (*kinds)();
  std::vector<std::string> names;  // argNames split, filled at load
};

template <auto Fn>
struct Binding;

template <typename... P, Status (*Fn)(P...)>
struct Binding<Fn> {
  // JavaScript arguments: one per parameter, six per matrix view, none for the result.
  static constexpr size_t kArity =
      (0 + ... + (isResult<Plain<P>> ? 0 : std::is_same_v<Plain<P>, Mat> || std::is_same_v<Plain<P>, BMat> ? 6 : 1));

  static std::vector<const char*> kinds() {
    std::vector<const char*> out;
    (
        [&] {
          if constexpr (!isResult<Plain<P>>) out.push_back(kindOf<Plain<P>>());
        }(),
        ...);
    return out;
  }

  template <size_t... I>
  static napi_value run(napi_env env, Args& args, const Op& op, std::index_sequence<I...>) {
    std::tuple<Plain<P>...> values{};
    double result = 0;
    (
        [&] {
          if constexpr (isResult<Plain<P>>) {
            std::get<I>(values) = &result;
          } else {
            args.read(op.names[I].c_str(), &std::get<I>(values));
          }
        }(),
        ...);
    if (!args.ok()) return nullptr;
    const Status s = Fn(std::get<I>(values)...);
    if (!s.ok()) {
      napi_throw_error(env, nullptr, s.error.c_str());
      return nullptr;
    }
    if constexpr ((false || ... || isResult<Plain<P>>)) {
      napi_value v;
      napi_create_double(env, result, &v);
      return v;
    }
    return nullptr;
  }

  static napi_value call(napi_env env, napi_callback_info info) {
    void* data = nullptr;
    napi_get_cb_info(env, info, nullptr, nullptr, nullptr, &data);
    const Op& op = *static_cast<const Op*>(data);
    Args args(env, info, op.name, kArity);
    if (!args.ok()) return nullptr;
    return run(env, args, op, std::index_sequence_for<P...>{});
  }
};

#define GLAM_OP(fn, names) \
  Op { #fn, names, &Binding<&ops::fn>::call, &Binding<&ops::fn>::kinds, {} }

// The kernel ops, in the order of src/backend/ops.ts.
std::vector<Op>& opTable() {
  static std::vector<Op> table = {
      GLAM_OP(sgemm, "alpha a b beta c"),
      GLAM_OP(sgemmStridedBatched, "batch alpha a strideA b strideB beta c strideC"),
      GLAM_OP(sgemmGrouped, "offsets alpha a b strideB beta c strideC"),
      GLAM_OP(sgemmBf16, "alpha a b beta c"),
      GLAM_OP(sgemmStridedBatchedBf16, "batch alpha a strideA b strideB beta c strideC"),
      GLAM_OP(sgemmGroupedBf16, "offsets alpha a b strideB beta c strideC"),
      GLAM_OP(gemmBf16, "alpha a w beta c"),
      GLAM_OP(gemmGroupedBf16, "offsets alpha a w strideW beta c strideC"),
      GLAM_OP(add, "a b out"),
      GLAM_OP(axpy, "alpha x y"),
      GLAM_OP(gelu, "x out"),
      GLAM_OP(geluBackward, "x dy dx"),
      GLAM_OP(gatedGelu, "a b out"),
      GLAM_OP(gatedGeluBackward, "a b dy da db"),
      GLAM_OP(rmsnorm, "x scale eps out invRms"),
      GLAM_OP(rmsnormBackward, "x scale invRms dy dx dscale"),
      GLAM_OP(softmaxRows, "x out"),
      GLAM_OP(softmaxRowsBackward, "y dy dx"),
      GLAM_OP(causalSoftmax, "scores bias heads scale"),
      GLAM_OP(crossEntropy, "logits targets losses lse"),
      GLAM_OP(crossEntropyBackward, "logits lse targets ceScale zScale dlogits"),
      GLAM_OP(gatherRows, "src idx out"),
      GLAM_OP(scatterAddRows, "src idx weight out"),
      GLAM_OP(rowDotScale, "a b scale dot"),
      GLAM_OP(pagedAttention, "q kCache vCache blockTable maxBlocks blockSize rowSeq rowPos relBias bucketOf scale out"),
      GLAM_OP(topkRows, "x k idx val"),
      GLAM_OP(top2Route,
              "p logits groups capacity coins first second gate1 gate2 slot1 slot2 offsets token gate load routed "
              "firstCounts stats"),
      GLAM_OP(routerGrad, "p first second slot1 slot2 dGate firstCounts groups auxGrad dp"),
      GLAM_OP(lossSums, "losses lse targets sums"),
      GLAM_OP(relBiasGrad, "dBias bucketOf dRelBias"),
      GLAM_OP(sumSquares, "x"),
      GLAM_OP(fill, "x value"),
      GLAM_OP(adafactorFactoredStats, "g vRow vCol slices rows cols beta2 mix eps1 sumSq"),
      GLAM_OP(adafactorFactoredApply, "g vRow vCol p slices rows cols stepSizes decay"),
      GLAM_OP(adafactorFullStats, "g v slices size beta2 mix eps1 sumSq"),
      GLAM_OP(adafactorFullApply, "g v p slices size stepSizes decay"),
  };
  return table;
}

// ---- The non-kernel exports: threads, ISA, peak, alignment, the op table -----------------------------

napi_value numberValue(napi_env env, double x) {
  napi_value v;
  napi_create_double(env, x, &v);
  return v;
}

void setString(napi_env env, napi_value obj, const char* key, const std::string& value) {
  napi_value v;
  napi_create_string_utf8(env, value.c_str(), value.size(), &v);
  napi_set_named_property(env, obj, key, v);
}

napi_value SetThreads(napi_env env, napi_callback_info info) {
  Args args(env, info, "setThreads", 1);
  int64_t n = 0;
  if (!args.read("n", &n)) return nullptr;
  if (n < 1 || n > 1024) return args.fail("n must be in [1, 1024], got " + std::to_string(n)), nullptr;
  return numberValue(env, setPoolThreads(static_cast<int>(n)));
}

napi_value GetThreads(napi_env env, napi_callback_info) { return numberValue(env, poolThreads()); }

napi_value SelectIsa(napi_env env, napi_callback_info info) {
  Args args(env, info, "selectIsa", 1);
  std::string key;
  if (!args.read("isa", &key)) return nullptr;
  napi_value v;
  napi_get_boolean(env, selectIsa(key.c_str()), &v);
  return v;
}

napi_value SelectBf16Widening(napi_env env, napi_callback_info info) {
  Args args(env, info, "selectBf16Widening", 1);
  bool widen = false;
  if (!args.read("widen", &widen)) return nullptr;
  selectBf16Widening(widen);
  return nullptr;
}

napi_value Info(napi_env env, napi_callback_info) {
  napi_value obj;
  napi_create_object(env, &obj);
  setString(env, obj, "isa", currentIsa().name);
  setString(env, obj, "isaKey", isaKey(currentIsaId()));
  setString(env, obj, "reason", isaReason());
  setString(env, obj, "bf16", currentBf16().name);
  napi_set_named_property(env, obj, "threads", numberValue(env, poolThreads()));
  napi_set_named_property(env, obj, "cores", numberValue(env, availableCores()));
  napi_value isas, flag;
  napi_create_array(env, &isas);
  uint32_t count = 0;
  for (int i = 0; i < kIsaCount; i++) {
    if (!cpuHas(static_cast<IsaId>(i))) continue;
    napi_value key;
    napi_create_string_utf8(env, isaKey(static_cast<IsaId>(i)), NAPI_AUTO_LENGTH, &key);
    napi_set_element(env, isas, count++, key);
  }
  napi_set_named_property(env, obj, "isas", isas);
  napi_get_boolean(env, cpuHas(IsaId::kAvx2), &flag);
  napi_set_named_property(env, obj, "avx2Fma", flag);
  napi_get_boolean(env, cpuHas(IsaId::kAvx512), &flag);
  napi_set_named_property(env, obj, "avx512", flag);
  napi_get_boolean(env, cpuHasAvx512Bf16(), &flag);
  napi_set_named_property(env, obj, "avx512Bf16", flag);
  return obj;
}

napi_value Peak(napi_env env, napi_callback_info info) {
  Args args(env, info, "peak", 2);
  int64_t threads = 0;
  double seconds = 0;
  args.read("threads", &threads);
  args.read("seconds", &seconds);
  if (!args.ok()) return nullptr;
  if (threads < 1 || threads > 1024) return args.fail("threads must be in [1, 1024]"), nullptr;
  if (!(seconds > 0 && seconds <= 60)) return args.fail("seconds must be in (0, 60]"), nullptr;
  const PeakResult r = peakGflops(static_cast<int>(threads), seconds);
  napi_value obj;
  napi_create_object(env, &obj);
  napi_set_named_property(env, obj, "gflops", numberValue(env, r.best));
  napi_set_named_property(env, obj, "median", numberValue(env, r.median));
  napi_set_named_property(env, obj, "trials", numberValue(env, r.trials));
  napi_set_named_property(env, obj, "threads", numberValue(env, r.threads));
  setString(env, obj, "isa", currentIsa().name);
  return obj;
}

// A probe's result as {gbps (best pass), median, threads, trials, bytes (one pass)}.
napi_value bandwidthObject(napi_env env, const BandwidthResult& r) {
  napi_value obj;
  napi_create_object(env, &obj);
  napi_set_named_property(env, obj, "gbps", numberValue(env, r.best));
  napi_set_named_property(env, obj, "median", numberValue(env, r.median));
  napi_set_named_property(env, obj, "threads", numberValue(env, r.threads));
  napi_set_named_property(env, obj, "trials", numberValue(env, r.trials));
  napi_set_named_property(env, obj, "bytes", numberValue(env, static_cast<double>(r.bytes)));
  return obj;
}

napi_value ReadBandwidth(napi_env env, napi_callback_info info) {
  Args args(env, info, "readBandwidth", 3);
  int64_t threads = 0, mib = 0;
  double seconds = 0;
  args.read("threads", &threads);
  args.read("mib", &mib);
  args.read("seconds", &seconds);
  if (!args.ok()) return nullptr;
  if (threads < 1 || threads > 1024) return args.fail("threads must be in [1, 1024]"), nullptr;
  if (mib < 1 || mib > 65536) return args.fail("mib must be in [1, 65536]"), nullptr;
  if (!(seconds > 0 && seconds <= 60)) return args.fail("seconds must be in (0, 60]"), nullptr;
  const BandwidthResult r = readBandwidth(static_cast<int>(threads), mib << 20, seconds);
  if (r.trials == 0) return args.fail("could not allocate " + std::to_string(mib) + " MiB"), nullptr;
  return bandwidthObject(env, r);
}

// The read bandwidth of the memory holding `views` (typed arrays, each read whole): best and median of
// `trials` passes.
napi_value ReadBandwidthOf(napi_env env, napi_callback_info info) {
  Args args(env, info, "readBandwidthOf", 3);
  int64_t threads = 0, trials = 0;
  std::vector<ByteRange> views;
  args.read("threads", &threads);
  args.read("views", &views);
  args.read("trials", &trials);
  if (!args.ok()) return nullptr;
  if (threads < 1 || threads > 1024) return args.fail("threads must be in [1, 1024]"), nullptr;
  if (trials < 1 || trials > 1000) return args.fail("trials must be in [1, 1000]"), nullptr;
  const BandwidthResult r =
      readBandwidthOf(static_cast<int>(threads), views.data(), static_cast<int64_t>(views.size()), static_cast<int>(trials));
  if (r.trials == 0) return args.fail("views hold no bytes"), nullptr;
  return bandwidthObject(env, r);
}

// Address of an ArrayBuffer's data modulo 64, so JavaScript can place a view on a cache-line boundary.
// ArrayBuffer (and SharedArrayBuffer) backing stores never move, so the answer stays valid.
napi_value AddressMod64(napi_env env, napi_callback_info info) {
  Args args(env, info, "addressMod64", 1);
  if (!args.ok()) return nullptr;
  size_t argc = 1;
  napi_value arg;
  napi_get_cb_info(env, info, &argc, &arg, nullptr, nullptr);
  bool isBuffer = false;
  void* data = nullptr;
  size_t length = 0;
  if (napi_is_arraybuffer(env, arg, &isBuffer) == napi_ok && isBuffer) {
    napi_get_arraybuffer_info(env, arg, &data, &length);
  } else {
    // A SharedArrayBuffer is not an ArrayBuffer to Node-API: read it through a one-byte view.
    napi_value global, ctor, view;
    napi_valuetype type;
    bool isTyped = false;
    if (napi_typeof(env, arg, &type) != napi_ok || type != napi_object || napi_get_global(env, &global) != napi_ok ||
        napi_get_named_property(env, global, "Uint8Array", &ctor) != napi_ok ||
        napi_new_instance(env, ctor, 1, &arg, &view) != napi_ok || napi_is_typedarray(env, view, &isTyped) != napi_ok ||
        !isTyped) {
      bool pending = false;
      napi_is_exception_pending(env, &pending);
      if (pending) {
        napi_value ignored;
        napi_get_and_clear_last_exception(env, &ignored);
      }
      return args.fail("buffer must be an ArrayBuffer or a SharedArrayBuffer"), nullptr;
    }
    napi_typedarray_type t;
    napi_value ab;
    size_t off = 0;
    napi_get_typedarray_info(env, view, &t, &length, &data, &ab, &off);
  }
  return numberValue(env, static_cast<double>(reinterpret_cast<uintptr_t>(data) % 64));
}

// {name: "arg:kind arg:kind ..."} for every kernel op.
napi_value OpSpecs(napi_env env, std::vector<Op>& table) {
  napi_value obj;
  napi_create_object(env, &obj);
  for (const Op& op : table) {
    const std::vector<const char*> kinds = op.kinds();
    std::string spec;
    for (size_t i = 0; i < kinds.size(); i++) spec += (i ? " " : "") + op.names[i] + ":" + kinds[i];
    setString(env, obj, op.name, spec);
  }
  return obj;
}

void ensurePool() {
  static const bool started = [] {
    setPoolThreads(defaultThreadCount());
    return true;
  }();
  (void)started;
}

}  // namespace
}  // namespace glam

NAPI_MODULE_INIT() {
  using namespace glam;
  ensurePool();
  std::vector<Op>& table = opTable();
  for (Op& op : table) {
    if (op.names.empty()) {
      std::istringstream words(op.argNames);
      for (std::string w; words >> w;) op.names.push_back(w);
    }
    if (op.names.size() != op.kinds().size()) {
      napi_throw_error(env, nullptr, (std::string("glam addon: op table entry '") + op.name +
                                      "' names a different number of arguments than its function takes")
                                         .c_str());
      return nullptr;
    }
    napi_value fn;
    napi_create_function(env, op.name, NAPI_AUTO_LENGTH, op.call, &op, &fn);
    napi_set_named_property(env, exports, op.name, fn);
  }
  const std::pair<const char*, napi_callback> others[] = {
      {"setThreads", SetThreads}, {"getThreads", GetThreads}, {"selectIsa", SelectIsa}, {"selectBf16Widening", SelectBf16Widening},
      {"info", Info},             {"peak", Peak},             {"addressMod64", AddressMod64},
      {"readBandwidth", ReadBandwidth}, {"readBandwidthOf", ReadBandwidthOf},
  };
  for (const auto& [name, cb] : others) {
    napi_value fn;
    napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, nullptr, &fn);
    napi_set_named_property(env, exports, name, fn);
  }
  napi_set_named_property(env, exports, "ops", OpSpecs(env, table));
  return exports;
}
