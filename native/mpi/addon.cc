// Node-API binding of the MPI engine (engine.h): collectives on typed arrays, as promises settled on the
// JS thread when the MPI thread finishes them, or as blocking calls for code that cannot proceed without
// the result. The caller must leave a buffer alone until its collective is done (MPI's own rule); the
// binding holds a reference to it so it cannot be collected meanwhile.
#include <node_api.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <string>

#include "engine.h"

namespace glam::mpi {
namespace {

#define NAPI_OK(call)                     \
  do {                                    \
    if ((call) != napi_ok) return nullptr; \
  } while (0)

napi_value throwError(napi_env env, const std::string& message) {
  napi_throw_error(env, nullptr, message.c_str());
  return nullptr;
}

struct TypeInfo {
  MPI_Datatype type;
  int64_t size;
  const char* name;
};

bool typeInfo(napi_typedarray_type t, TypeInfo* out) {
  switch (t) {
    case napi_int8_array: *out = {MPI_SIGNED_CHAR, 1, "Int8Array"}; return true;
    case napi_uint8_array: *out = {MPI_UNSIGNED_CHAR, 1, "Uint8Array"}; return true;
    case napi_uint8_clamped_array: *out = {MPI_UNSIGNED_CHAR, 1, "Uint8ClampedArray"}; return true;
    case napi_int16_array: *out = {MPI_SHORT, 2, "Int16Array"}; return true;
    case napi_uint16_array: *out = {MPI_UNSIGNED_SHORT, 2, "Uint16Array"}; return true;
    case napi_int32_array: *out = {MPI_INT, 4, "Int32Array"}; return true;
    case napi_uint32_array: *out = {MPI_UNSIGNED, 4, "Uint32Array"}; return true;
    case napi_float32_array: *out = {MPI_FLOAT, 4, "Float32Array"}; return true;
    case napi_float64_array: *out = {MPI_DOUBLE, 8, "Float64Array"}; return true;
    case napi_bigint64_array: *out = {MPI_INT64_T, 8, "BigInt64Array"}; return true;
    case napi_biguint64_array: *out = {MPI_UINT64_T, 8, "BigUint64Array"}; return true;
    default: return false;
  }
}

struct Typed {
  napi_value value = nullptr;
  napi_typedarray_type kind = napi_uint8_array;
  TypeInfo type{};
  void* data = nullptr;
  int64_t length = 0;
  napi_value arraybuffer = nullptr;
  size_t byteOffset = 0;
};

// Reads argument `v` as a typed array; throws `op: name must be a typed array` otherwise.
bool readTyped(napi_env env, napi_value v, const char* op, const char* name, Typed* out) {
  bool is = false;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) {
    throwError(env, std::string(op) + ": " + name + " must be a typed array");
    return false;
  }
  size_t length = 0;
  if (napi_get_typedarray_info(env, v, &out->kind, &length, &out->data, &out->arraybuffer, &out->byteOffset) !=
      napi_ok) {
    throwError(env, std::string(op) + ": cannot read " + name);
    return false;
  }
  if (!typeInfo(out->kind, &out->type)) {
    throwError(env, std::string(op) + ": " + name + " has an unsupported element type");
    return false;
  }
  if (length > 0 && out->data == nullptr) {
    throwError(env, std::string(op) + ": " + name + "'s buffer is detached");
    return false;
  }
  out->value = v;
  out->length = static_cast<int64_t>(length);
  return true;
}

Engine* engineOrThrow(napi_env env, const char* op) {
  Engine* e = Engine::current();
  if (e == nullptr) {
    throwError(env, std::string(op) + ": MPI is not initialised (call init() first)");
    return nullptr;
  }
  if (e->closed()) {
    throwError(env, std::string(op) + ": the communicator is finalised");
    return nullptr;
  }
  return e;
}

// ---- asynchronous jobs: a promise settled on the JS thread ----------------------------------------

struct Binding {
  napi_threadsafe_function tsfn = nullptr;
  int64_t pending = 0;
};

struct AsyncOp {
  Job job;
  napi_deferred deferred = nullptr;
  napi_ref keep[3] = {nullptr, nullptr, nullptr};
  // Alltoallv: the element type of the result and the caller's receive buffer (or null).
  napi_typedarray_type resultKind = napi_uint8_array;
  bool alltoallv = false;
};

void freeOwned(napi_env, void* data, void*) { std::free(data); }

// {data, counts} of a finished alltoallv: a view of the caller's buffer or of engine-allocated memory.
napi_value alltoallvResult(napi_env env, Job& job, napi_typedarray_type kind, napi_value recvArray) {
  napi_value arraybuffer = nullptr;
  size_t byteOffset = 0;
  if (job.owned != nullptr) {
    const size_t bytes = static_cast<size_t>(job.received * job.elementSize);
    napi_status st = napi_create_external_arraybuffer(env, job.owned, bytes, freeOwned, nullptr, &arraybuffer);
    if (st != napi_ok) {
      // Runtimes that forbid external buffers: copy.
      void* copy = nullptr;
      NAPI_OK(napi_create_arraybuffer(env, bytes, &copy, &arraybuffer));
      if (bytes > 0) std::memcpy(copy, job.owned, bytes);
      std::free(job.owned);
    }
    job.owned = nullptr;
  } else {
    napi_typedarray_type k;
    size_t len;
    void* data;
    NAPI_OK(napi_get_typedarray_info(env, recvArray, &k, &len, &data, &arraybuffer, &byteOffset));
  }
  napi_value data, countsBuffer, counts, result;
  NAPI_OK(napi_create_typedarray(env, kind, static_cast<size_t>(job.received), arraybuffer, byteOffset, &data));
  void* raw = nullptr;
  const size_t p = job.recvCounts.size();
  NAPI_OK(napi_create_arraybuffer(env, p * sizeof(int32_t), &raw, &countsBuffer));
  std::memcpy(raw, job.recvCounts.data(), p * sizeof(int32_t));
  NAPI_OK(napi_create_typedarray(env, napi_int32_array, p, countsBuffer, 0, &counts));
  NAPI_OK(napi_create_object(env, &result));
  NAPI_OK(napi_set_named_property(env, result, "data", data));
  NAPI_OK(napi_set_named_property(env, result, "counts", counts));
  return result;
}

// Runs on the JS thread for each finished asynchronous job.
void settle(napi_env env, napi_value, void* context, void* data) {
  auto* binding = static_cast<Binding*>(context);
  auto* op = static_cast<AsyncOp*>(data);
  if (env != nullptr) {
    if (!op->job.ok) {
      napi_value message, error;
      napi_create_string_utf8(env, op->job.error.c_str(), NAPI_AUTO_LENGTH, &message);
      napi_create_error(env, nullptr, message, &error);
      napi_reject_deferred(env, op->deferred, error);
    } else {
      napi_value value = nullptr;
      if (op->alltoallv) {
        // The caller's receive buffer (slot 1), through its reference: handles do not outlive a call.
        napi_value recv = nullptr;
        if (op->keep[1] != nullptr) napi_get_reference_value(env, op->keep[1], &recv);
        value = alltoallvResult(env, op->job, op->resultKind, recv);
      }
      if (value == nullptr) napi_get_undefined(env, &value);
      napi_resolve_deferred(env, op->deferred, value);
    }
    for (napi_ref& r : op->keep) {
      if (r != nullptr) napi_delete_reference(env, r);
    }
    if (--binding->pending == 0) napi_unref_threadsafe_function(env, binding->tsfn);
  }
  std::free(op->job.owned);
  delete op;
}

Binding* bindingOf(napi_env env, napi_callback_info info, size_t* argc, napi_value* argv) {
  void* data = nullptr;
  if (napi_get_cb_info(env, info, argc, argv, nullptr, &data) != napi_ok) return nullptr;
  return static_cast<Binding*>(data);
}

// Queues `op` and returns its promise; keeps the event loop alive while jobs are pending.
napi_value submit(napi_env env, Binding* binding, Engine* engine, AsyncOp* op) {
  napi_value promise;
  if (napi_create_promise(env, &op->deferred, &promise) != napi_ok) {
    delete op;
    return nullptr;
  }
  napi_threadsafe_function tsfn = binding->tsfn;
  op->job.done = [tsfn, op](Job*) { napi_call_threadsafe_function(tsfn, op, napi_tsfn_blocking); };
  if (binding->pending++ == 0) napi_ref_threadsafe_function(env, binding->tsfn);
  if (!engine->post(&op->job)) {
    // Closed between the check and the post: settle here.
    op->job.ok = false;
    op->job.error = "the communicator is finalised";
    settle(env, nullptr, binding, op);
  }
  return promise;
}

void keep(napi_env env, AsyncOp* op, int slot, napi_value v) { napi_create_reference(env, v, 1, &op->keep[slot]); }

// ---- argument helpers shared by the async and blocking forms --------------------------------------

bool reduceType(napi_env env, const char* op, const Typed& buf) {
  if (buf.kind == napi_float32_array || buf.kind == napi_float64_array || buf.kind == napi_int32_array)
    return true;
  throwError(env, std::string(op) + ": sums Float32Array, Float64Array or Int32Array, got " + buf.type.name);
  return false;
}

bool readRoot(napi_env env, napi_value v, const char* op, int size, int* root) {
  double r = 0;
  if (napi_get_value_double(env, v, &r) != napi_ok || !(r >= 0 && r < size) || r != static_cast<int>(r)) {
    throwError(env, std::string(op) + ": root must be an integer rank in [0, " + std::to_string(size) + ")");
    return false;
  }
  *root = static_cast<int>(r);
  return true;
}

// The one argument of allreduce and allreduceSync, a buffer of a type the sum supports: its engine, or null
// (after throwing, or with no argument).
Engine* readReduceArgs(napi_env env, napi_callback_info info, const char* op, Binding** binding, Typed* buf) {
  size_t argc = 1;
  napi_value argv[1];
  *binding = bindingOf(env, info, &argc, argv);
  Engine* e = engineOrThrow(env, op);
  if (e == nullptr || argc < 1 || !readTyped(env, argv[0], op, "buffer", buf) || !reduceType(env, op, *buf))
    return nullptr;
  return e;
}

// A job of `kind` over all of buf's elements.
void setBuffer(Job* job, JobKind kind, const Typed& buf) {
  job->kind = kind;
  job->type = buf.type.type;
  job->elementSize = buf.type.size;
  job->buffer = buf.data;
  job->count = buf.length;
}

// Fills an alltoallv job from (send, sendCounts, recv?) and checks the counts against the buffers.
bool readAlltoallv(napi_env env, const char* op, int size, size_t argc, napi_value* argv, Job* job,
                   Typed* send, Typed* recv, bool* hasRecv) {
  Typed counts;
  if (argc < 2) return throwError(env, std::string(op) + ": expects (send, sendCounts[, recv])"), false;
  if (!readTyped(env, argv[0], op, "send", send) || !readTyped(env, argv[1], op, "sendCounts", &counts))
    return false;
  if (counts.kind != napi_int32_array) return throwError(env, std::string(op) + ": sendCounts must be an Int32Array"), false;
  if (counts.length != size) {
    throwError(env, std::string(op) + ": sendCounts has " + std::to_string(counts.length) +
                        " entries, the communicator has " + std::to_string(size) + " ranks");
    return false;
  }
  const auto* c = static_cast<const int32_t*>(counts.data);
  int64_t total = 0;
  job->sendCounts.resize(size);
  for (int i = 0; i < size; i++) {
    if (c[i] < 0) {
      throwError(env, std::string(op) + ": sendCounts[" + std::to_string(i) + "] = " + std::to_string(c[i]) +
                          " is negative");
      return false;
    }
    job->sendCounts[i] = c[i];
    total += c[i];
  }
  if (total > send->length) {
    throwError(env, std::string(op) + ": sendCounts add up to " + std::to_string(total) +
                        " elements but send holds " + std::to_string(send->length));
    return false;
  }
  if (total > INT_MAX) return throwError(env, std::string(op) + ": more than 2^31-1 elements to send"), false;
  *hasRecv = false;
  if (argc >= 3) {
    napi_valuetype t;
    napi_typeof(env, argv[2], &t);
    if (t != napi_undefined && t != napi_null) {
      if (!readTyped(env, argv[2], op, "recv", recv)) return false;
      if (recv->kind != send->kind) {
        throwError(env, std::string(op) + ": recv is a " + recv->type.name + " but send is a " + send->type.name);
        return false;
      }
      *hasRecv = true;
      job->recv = recv->data;
      job->recvCapacity = recv->length;
    }
  }
  job->kind = JobKind::Alltoallv;
  job->type = send->type.type;
  job->elementSize = send->type.size;
  job->send = send->data;
  return true;
}

// ---- exported functions ---------------------------------------------------------------------------

napi_value Init(napi_env env, napi_callback_info info) {
  std::string error;
  Engine* e = Engine::start(&error);
  if (e == nullptr) return throwError(env, "MPI could not start: " + error);
  napi_value out, v;
  NAPI_OK(napi_create_object(env, &out));
  NAPI_OK(napi_create_int32(env, e->rank(), &v));
  NAPI_OK(napi_set_named_property(env, out, "rank", v));
  NAPI_OK(napi_create_int32(env, e->size(), &v));
  NAPI_OK(napi_set_named_property(env, out, "size", v));
  NAPI_OK(napi_create_int32(env, e->threadLevel(), &v));
  NAPI_OK(napi_set_named_property(env, out, "threadLevel", v));
  NAPI_OK(napi_create_string_utf8(env, e->library().c_str(), NAPI_AUTO_LENGTH, &v));
  NAPI_OK(napi_set_named_property(env, out, "library", v));
  char version[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(version, &len);
  NAPI_OK(napi_create_string_utf8(env, version, static_cast<size_t>(len), &v));
  NAPI_OK(napi_set_named_property(env, out, "version", v));
  return out;
}

napi_value Allreduce(napi_env env, napi_callback_info info) {
  Binding* b = nullptr;
  Typed buf;
  Engine* e = readReduceArgs(env, info, "allreduce", &b, &buf);
  if (e == nullptr) return nullptr;
  auto* op = new AsyncOp();
  setBuffer(&op->job, JobKind::Allreduce, buf);
  keep(env, op, 0, buf.value);
  return submit(env, b, e, op);
}

napi_value AllreduceSync(napi_env env, napi_callback_info info) {
  Binding* b = nullptr;
  Typed buf;
  Engine* e = readReduceArgs(env, info, "allreduceSync", &b, &buf);
  if (e == nullptr) return nullptr;
  Job job;
  setBuffer(&job, JobKind::Allreduce, buf);
  if (!e->run(&job)) return throwError(env, "allreduceSync: the communicator is finalised");
  if (!job.ok) return throwError(env, job.error);
  return nullptr;
}

napi_value Broadcast(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  Binding* b = bindingOf(env, info, &argc, argv);
  Engine* e = engineOrThrow(env, "broadcast");
  Typed buf;
  int root = 0;
  if (e == nullptr || argc < 2 || !readTyped(env, argv[0], "broadcast", "buffer", &buf) ||
      !readRoot(env, argv[1], "broadcast", e->size(), &root))
    return nullptr;
  auto* op = new AsyncOp();
  setBuffer(&op->job, JobKind::Broadcast, buf);
  op->job.root = root;
  keep(env, op, 0, buf.value);
  return submit(env, b, e, op);
}

// A job without arguments (barrier, finalize), posted; its promise.
napi_value submitBare(napi_env env, napi_callback_info info, const char* name, JobKind kind) {
  size_t argc = 0;
  Binding* b = bindingOf(env, info, &argc, nullptr);
  Engine* e = engineOrThrow(env, name);
  if (e == nullptr) return nullptr;
  auto* op = new AsyncOp();
  op->job.kind = kind;
  return submit(env, b, e, op);
}

napi_value Barrier(napi_env env, napi_callback_info info) { return submitBare(env, info, "barrier", JobKind::Barrier); }

napi_value Alltoallv(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  Binding* b = bindingOf(env, info, &argc, argv);
  Engine* e = engineOrThrow(env, "alltoallv");
  if (e == nullptr) return nullptr;
  auto* op = new AsyncOp();
  Typed send, recv;
  bool hasRecv = false;
  if (!readAlltoallv(env, "alltoallv", e->size(), argc, argv, &op->job, &send, &recv, &hasRecv)) {
    delete op;
    return nullptr;
  }
  op->alltoallv = true;
  op->resultKind = send.kind;
  keep(env, op, 0, send.value);
  if (hasRecv) keep(env, op, 1, recv.value);
  return submit(env, b, e, op);
}

napi_value AlltoallvSync(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  bindingOf(env, info, &argc, argv);
  Engine* e = engineOrThrow(env, "alltoallvSync");
  if (e == nullptr) return nullptr;
  Job job;
  Typed send, recv;
  bool hasRecv = false;
  if (!readAlltoallv(env, "alltoallvSync", e->size(), argc, argv, &job, &send, &recv, &hasRecv)) return nullptr;
  if (!e->run(&job)) return throwError(env, "alltoallvSync: the communicator is finalised");
  if (!job.ok) {
    std::free(job.owned);
    return throwError(env, job.error);
  }
  napi_value result = alltoallvResult(env, job, send.kind, hasRecv ? recv.value : nullptr);
  std::free(job.owned);
  return result;
}

napi_value FlushSync(napi_env env, napi_callback_info info) {
  Engine* e = engineOrThrow(env, "flushSync");
  if (e == nullptr) return nullptr;
  std::string error;
  if (!e->flush(&error)) return throwError(env, "flushSync: the communicator is finalised");
  if (!error.empty()) return throwError(env, "a collective posted earlier failed: " + error);
  return nullptr;
}

napi_value Finalize(napi_env env, napi_callback_info info) {
  return submitBare(env, info, "finalize", JobKind::Finalize);
}

napi_value Stats(napi_env env, napi_callback_info info) {
  Engine* e = Engine::current();
  EngineStats s = e == nullptr ? EngineStats{} : e->stats();
  napi_value out, v;
  NAPI_OK(napi_create_object(env, &out));
  NAPI_OK(napi_create_double(env, static_cast<double>(s.jobs), &v));
  NAPI_OK(napi_set_named_property(env, out, "jobs", v));
  NAPI_OK(napi_create_double(env, s.busySeconds, &v));
  NAPI_OK(napi_set_named_property(env, out, "busySeconds", v));
  return out;
}

void finalizeBinding(napi_env env, void* data, void*) {
  auto* b = static_cast<Binding*>(data);
  // Jobs may still be queued on an error path: the engine and its thread are left to the process exit.
  delete b;
}

napi_value Register(napi_env env, napi_value exports) {
  auto* binding = new Binding();
  napi_value name;
  NAPI_OK(napi_create_string_utf8(env, "glam_mpi settle", NAPI_AUTO_LENGTH, &name));
  NAPI_OK(napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, nullptr, nullptr, binding, settle,
                                          &binding->tsfn));
  NAPI_OK(napi_unref_threadsafe_function(env, binding->tsfn));
  NAPI_OK(napi_wrap(env, exports, binding, finalizeBinding, nullptr, nullptr));
  const napi_property_descriptor props[] = {
      {"init", nullptr, Init, nullptr, nullptr, nullptr, napi_default, binding},
      {"allreduce", nullptr, Allreduce, nullptr, nullptr, nullptr, napi_default, binding},
      {"allreduceSync", nullptr, AllreduceSync, nullptr, nullptr, nullptr, napi_default, binding},
      {"broadcast", nullptr, Broadcast, nullptr, nullptr, nullptr, napi_default, binding},
      {"barrier", nullptr, Barrier, nullptr, nullptr, nullptr, napi_default, binding},
      {"alltoallv", nullptr, Alltoallv, nullptr, nullptr, nullptr, napi_default, binding},
      {"alltoallvSync", nullptr, AlltoallvSync, nullptr, nullptr, nullptr, napi_default, binding},
      {"flushSync", nullptr, FlushSync, nullptr, nullptr, nullptr, napi_default, binding},
      {"finalize", nullptr, Finalize, nullptr, nullptr, nullptr, napi_default, binding},
      {"stats", nullptr, Stats, nullptr, nullptr, nullptr, napi_default, binding},
  };
  NAPI_OK(napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
  return exports;
}

}  // namespace
}  // namespace glam::mpi

NAPI_MODULE(NODE_GYP_MODULE_NAME, glam::mpi::Register)
