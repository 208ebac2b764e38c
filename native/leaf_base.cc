// Baseline-ISA build of the leaf loops (whatever -march the build uses: x86-64-v2 by default).
#define SD_LEAF_NAME sd::leaf_base
#include "leaf_impl.h"
