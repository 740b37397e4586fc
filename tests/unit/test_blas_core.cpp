// Advice on OpenBLAS's kernel choice (src/core/blas_core.h).
#include <gtest/gtest.h>

#include "blas_core.h"

using namespace recsys;

namespace {

BlasCpu avx512_bf16_cpu() { return {true, true, true, true}; }
BlasCpu avx512_cpu() { return {true, true, true, false}; }
BlasCpu avx2_cpu() { return {true, true, false, false}; }
BlasCpu sse_cpu() { return {false, false, false, false}; }

}  // namespace

TEST(BlasCore, OldKernelsOnANewCpuGetTheWidestKernelsItRuns) {
    // What Debian's OpenBLAS 0.3.21 chose on an Intel Xeon of model 207.
    EXPECT_EQ(better_blas_core("Prescott", avx512_bf16_cpu()), "Cooperlake");
    EXPECT_EQ(better_blas_core("Prescott", avx512_cpu()), "SkylakeX");
    EXPECT_EQ(better_blas_core("Sandybridge", avx2_cpu()), "Haswell");
    EXPECT_EQ(better_blas_core("Nehalem", avx2_cpu()), "Haswell");
    // AVX2 kernels on an AVX-512 CPU leave half the vector width unused.
    EXPECT_EQ(better_blas_core("Haswell", avx512_cpu()), "SkylakeX");
    EXPECT_EQ(better_blas_core("Zen", avx512_bf16_cpu()), "Cooperlake");
}

TEST(BlasCore, KernelsThatMatchTheCpuNeedNoAdvice) {
    EXPECT_EQ(better_blas_core("Zen", avx2_cpu()), "");
    EXPECT_EQ(better_blas_core("Haswell", avx2_cpu()), "");
    EXPECT_EQ(better_blas_core("SkylakeX", avx512_cpu()), "");
    EXPECT_EQ(better_blas_core("Cooperlake", avx512_bf16_cpu()), "");
    EXPECT_EQ(better_blas_core("SapphireRapids", avx512_bf16_cpu()), "");
    // A CPU without AVX2 has nothing better than the old kernels.
    EXPECT_EQ(better_blas_core("Prescott", sse_cpu()), "");
}

TEST(BlasCore, UnknownNamesGetNoAdvice) {
    EXPECT_EQ(better_blas_core("", avx512_cpu()), "");
    EXPECT_EQ(better_blas_core("SomeFutureCore", avx2_cpu()), "");
}

TEST(BlasCore, ThisProcessHasAKernelName) {
    // The library this process loaded names its kernels (e.g. "Zen", "Haswell", "SkylakeX").
    EXPECT_FALSE(blas_core_name().empty());
}
