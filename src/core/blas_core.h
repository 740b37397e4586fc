// Which kernels OpenBLAS chose for this CPU, and whether they fall short of it.
//
// Debian's OpenBLAS (0.3.21, built with DYNAMIC_ARCH) picks its kernels from the CPU model when
// the library loads. A CPU newer than the library falls back to old ones: on an Intel Xeon of
// model 207 (with AVX-512, BF16 and AMX) it chose "Prescott" (SSE3), and sgemm ran at 29 GFLOP/s
// where the Cooperlake kernels, forced with OPENBLAS_CORETYPE, ran at 130 on the same core
// (docs/benchmarks.md, "Intel Xeon"). Nothing recsys does at run time can change the choice:
// OpenBLAS reads OPENBLAS_CORETYPE only when it loads, so the server's environment must carry it.
#pragma once

#include <string>

namespace recsys {

// What the CPU offers that OpenBLAS kernels use.
struct BlasCpu {
    bool avx2 = false, fma = false, avx512f = false, avx512_bf16 = false;
};

// This CPU's features (__builtin_cpu_supports).
BlasCpu this_blas_cpu();

// The name of the kernels OpenBLAS uses in this process (openblas_get_corename()).
std::string blas_core_name();

// The OPENBLAS_CORETYPE this CPU should run instead of `core`, or "" when `core` already uses
// the CPU's widest vectors (or is one this function does not know: no advice then).
std::string better_blas_core(const std::string &core, const BlasCpu &cpu);

}  // namespace recsys
