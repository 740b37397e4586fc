// Hot element-wise loops are compiled for AVX-512, AVX2+FMA and baseline x86-64, and the loader
// picks the best one the CPU has (GCC function multi-versioning), so one binary runs everywhere
// at the CPU's vector width. Put RECSYS_VECTOR_CLONES before such a function's definition.
#pragma once

#define RECSYS_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
