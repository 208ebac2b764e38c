{
  "targets": [
    {
      "target_name": "selfdev_native",
      "sources": ["native/kernels.cc", "native/leaf_base.cc", "native/leaf_avx2.cc", "native/infer.cc", "native/train.cc", "native/nd_ops.cc", "native/stream_ops.cc"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++14"],
      "cflags": ["-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"],
      "cflags_cc": ["-std=c++17", "-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-fexceptions"],
      "ldflags": ["-pthread"],
      "conditions": [
        ["target_arch=='x64'", {
          "cflags": ["-march=x86-64-v2"],
          "cflags_cc": ["-march=x86-64-v2"]
        }]
      ],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "OTHER_CFLAGS": ["-O3", "-ffp-contract=off"]
      }
    }
  ]
}
