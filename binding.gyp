{
  "variables": {
    "glam_x86": "<!(node -p \"['x64','ia32'].includes(process.arch) ? 1 : 0\")"
  },
  "target_defaults": {
    "cflags": ["-O3", "-fopenmp-simd", "-fno-trapping-math", "-fno-math-errno", "-fPIC", "-Wall", "-Wextra", "-Wno-unused-parameter"],
    "cflags_cc": ["-std=gnu++17"],
    "cflags!": ["-O2", "-Os"],
    "xcode_settings": {
      "OTHER_CFLAGS": ["-O3", "-fopenmp-simd"],
      "CLANG_CXX_LANGUAGE_STANDARD": "gnu++17"
    }
  },
  "targets": [
    {
      "target_name": "glam_avx2",
      "type": "static_library",
      "conditions": [
        ["glam_x86==1", {
          "sources": ["native/gemm_avx2.cc", "native/rows_avx2.cc", "native/peak_avx2.cc"],
          "cflags": ["-mavx2", "-mfma"],
          "xcode_settings": { "OTHER_CFLAGS": ["-mavx2", "-mfma"] }
        }]
      ]
    },
    {
      "target_name": "glam_native",
      "sources": [
        "native/addon.cc",
        "native/args.cc",
        "native/gemm.cc",
        "native/gemm_portable.cc",
        "native/grouped.cc",
        "native/isa.cc",
        "native/optim.cc",
        "native/peak_portable.cc",
        "native/rows.cc",
        "native/rows_portable.cc",
        "native/threadpool.cc"
      ],
      "conditions": [
        ["glam_x86==1", { "defines": ["GLAM_HAVE_AVX2=1"], "dependencies": ["glam_avx2"] }]
      ]
    }
  ]
}
