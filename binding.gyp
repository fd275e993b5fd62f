{
  "variables": {
    "glam_x86": "<!(node -p \"['x64','ia32'].includes(process.arch) ? 1 : 0\")",
    "glam_mpi": "<!(node native/mpi/flags.cjs have)"
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
          "sources": ["native/core/gemm_avx2.cc", "native/core/rows_avx2.cc", "native/core/peak_avx2.cc"],
          "cflags": ["-mavx2", "-mfma"],
          "xcode_settings": { "OTHER_CFLAGS": ["-mavx2", "-mfma"] }
        }]
      ]
    },
    {
      "target_name": "glam_avx512",
      "type": "static_library",
      "conditions": [
        ["glam_x86==1", {
          "sources": ["native/core/gemm_avx512.cc", "native/core/rows_avx512.cc", "native/core/peak_avx512.cc"],
          "cflags": ["-mavx2", "-mfma", "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mprefer-vector-width=512"],
          "xcode_settings": { "OTHER_CFLAGS": ["-mavx2", "-mfma", "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mprefer-vector-width=512"] }
        }]
      ]
    },
    {
      "target_name": "glam_avx512bf16",
      "type": "static_library",
      "conditions": [
        ["glam_x86==1", {
          "sources": ["native/core/gemm_avx512bf16.cc"],
          "cflags": ["-mavx2", "-mfma", "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx512bf16", "-mprefer-vector-width=512"],
          "xcode_settings": { "OTHER_CFLAGS": ["-mavx2", "-mfma", "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx512bf16", "-mprefer-vector-width=512"] }
        }]
      ]
    },
    {
      "target_name": "glam_core",
      "type": "static_library",
      "sources": [
        "native/core/gemm.cc",
        "native/core/gemm_bf16.cc",
        "native/core/gemm_portable.cc",
        "native/core/grouped.cc",
        "native/core/infer.cc",
        "native/core/isa.cc",
        "native/core/moe.cc",
        "native/core/ops.cc",
        "native/core/optim.cc",
        "native/core/peak.cc",
        "native/core/peak_portable.cc",
        "native/core/rows.cc",
        "native/core/rows_portable.cc",
        "native/core/threadpool.cc"
      ],
      "conditions": [
        ["glam_x86==1", { "defines": ["GLAM_HAVE_AVX2=1", "GLAM_HAVE_AVX512=1"], "dependencies": ["glam_avx2", "glam_avx512", "glam_avx512bf16"] }]
      ]
    },
    {
      "target_name": "glam_native",
      "sources": ["native/node/addon.cc", "native/node/args.cc"],
      "dependencies": ["glam_core"]
    },
    {
      "target_name": "glam_core_test",
      "type": "executable",
      "sources": ["native/core/test/core_test.cc"],
      "include_dirs": ["native/core"],
      "dependencies": ["glam_core"]
    }
  ],
  "conditions": [
    ["glam_mpi==1", {
      "targets": [
        {
          "target_name": "glam_mpi",
          "sources": ["native/mpi/engine.cc", "native/mpi/addon.cc"],
          "defines": ["OMPI_SKIP_MPICXX=1", "MPICH_SKIP_MPICXX=1"],
          "cflags": ["<!@(node native/mpi/flags.cjs compile)", "-pthread"],
          "cflags_cc!": ["-fno-exceptions"],
          "libraries": ["<!@(node native/mpi/flags.cjs link)", "-ldl"]
        }
      ]
    }]
  ]
}
