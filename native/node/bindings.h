// Node-API bindings that live outside addon.cc (registered there).
#pragma once

#include <node_api.h>

namespace glam {

napi_value SgemmGroupedBinding(napi_env env, napi_callback_info info);
napi_value SumSquaresBinding(napi_env env, napi_callback_info info);
napi_value FillBinding(napi_env env, napi_callback_info info);
napi_value AdafactorFactoredStatsBinding(napi_env env, napi_callback_info info);
napi_value AdafactorFactoredApplyBinding(napi_env env, napi_callback_info info);
napi_value AdafactorFullStatsBinding(napi_env env, napi_callback_info info);
napi_value AdafactorFullApplyBinding(napi_env env, napi_callback_info info);

}  // namespace glam
