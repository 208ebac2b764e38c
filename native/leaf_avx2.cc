// AVX2 + F16C build of the leaf loops; only called after a run-time CPU check (kernels.cc).
#include <cmath>
#include <cstdint>
#include <cstring>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#pragma GCC target("avx2,f16c")
#define SD_F16C 1
#define SD_LEAF_NAME sd::leaf_avx2
#include "leaf_impl.h"
#else
#include "kernels.h"
// Not x86: the "avx2" table is the baseline code (never selected by the dispatcher anyway).
#define SD_LEAF_NAME sd::leaf_avx2
#include "leaf_impl.h"
#endif
