{
  "targets": [
    {
      "target_name": "wrn_native",
      "sources": ["native/conv.cc", "native/elementwise.cc", "native/gemm.cc", "native/inference.cc", "native/winograd.cc"],
      "cflags_cc": ["-O3", "-std=c++17", "-fno-exceptions"],
      "cflags_cc!": ["-fno-rtti"],
      "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-O3", "-std=c++17"] },
      "msvs_settings": { "VCCLCompilerTool": { "AdditionalOptions": ["/O2", "/std:c++17"] } }
    }
  ]
}
