// One recurrent-step product, (M x 128) . (128 x 512) with M = 1024 and 1, four ways in one
// process, one thread: OpenBLAS sgemm, recsys's reduced kernels (reduced_precision.h, the AVX2
// ones unless RECSYS_KERNEL=avx512 on a CPU with AVX-512 BF16 / VNNI), and oneDNN 2.6 matmul in
// f32, bf16 and u8 x s8 (its input already quantized, so its figure leaves out the per-call
// quantization that recsys's includes). Prints microseconds per product and GMAC/s, and the
// implementation oneDNN picked. The figures are in docs/reduced-precision.md.
//
// Not part of the CMake build (the extension does not link oneDNN); build and run by hand:
//   cmake --build build --target recsys_core
//   g++ -std=gnu++17 -O2 -Isrc/core -I/usr/include/x86_64-linux-gnu/openblas-pthread \
//       bench/onednn_comparison.cpp build/librecsys_core.a -ldnnl -lopenblas -o build/onednn_comparison
//   OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 build/onednn_comparison
#include <cblas.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>
#include <vector>

#include "reduced_precision.h"

using namespace dnnl;
using dt = memory::data_type;
using recsys::ReducedKernel;
using recsys::ReducedMatrix;
using recsys::WeightPrecision;

static void onednn(engine &eng, stream &s, dt a_t, dt b_t, dt c_t, const char *name, long M, long N, long K) {
    try {
        memory::desc a({M, K}, a_t, memory::format_tag::ab), b({K, N}, b_t, memory::format_tag::any),
            c({M, N}, c_t, memory::format_tag::ab);
        primitive_attr attr;
        if (a_t == dt::u8) attr.set_output_scales(0, {0.001f});
        matmul::primitive_desc pd(matmul::desc(a, b, c), attr, eng);
        memory A(pd.src_desc(), eng), B(pd.weights_desc(), eng), C(pd.dst_desc(), eng);
        matmul mm(pd);
        std::unordered_map<int, memory> args{{DNNL_ARG_SRC, A}, {DNNL_ARG_WEIGHTS, B}, {DNNL_ARG_DST, C}};
        for (int i = 0; i < 3; ++i) mm.execute(s, args);
        s.wait();
        int n = 0;
        auto t0 = std::chrono::steady_clock::now();
        double el = 0;
        do { mm.execute(s, args); s.wait(); ++n; el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); } while (el < 1.0);
        std::printf("%s M=%ld: %.1f us/call, %.1f GMAC/s, impl %s\n", name, M, el / n * 1e6, double(M) * N * K * n / el / 1e9, pd.impl_info_str());
    } catch (const std::exception &e) { std::printf("%s M=%ld: not available: %s\n", name, M, e.what()); }
}
static void timeit(const char *name, long M, long N, long K, const std::function<void()> &f) {
    for (int i = 0; i < 3; ++i) f();
    int n = 0; double el = 0; auto t0 = std::chrono::steady_clock::now();
    do { f(); ++n; el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); } while (el < 1.0);
    std::printf("%s M=%ld: %.1f us/call, %.1f GMAC/s\n", name, M, el / n * 1e6, double(M) * N * K * n / el / 1e9);
}
int main() {
    openblas_set_num_threads(1);
    const char *which = std::getenv("RECSYS_KERNEL");
    const bool avx512 = which && std::strcmp(which, "avx512") == 0;
    engine eng(engine::kind::cpu, 0);
    stream s(eng);
    const long N = 512, K = 128;
    std::vector<float> W(N * K), A(1024 * K), C(1024 * N);
    for (size_t i = 0; i < W.size(); ++i) W[i] = float((i * 7919) % 255) / 255.0f - 0.5f;
    for (size_t i = 0; i < A.size(); ++i) A[i] = float((i * 104729) % 201) / 100.0f - 1.0f;
    for (long M : {1024L, 1L}) {
        timeit("OpenBLAS sgemm", M, N, K, [&] {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A.data(), K, W.data(), K, 1.0f, C.data(), N);
        });
        for (WeightPrecision p : {WeightPrecision::Bf16, WeightPrecision::Int8}) {
            ReducedMatrix m(p, W.data(), N, K);
            std::vector<float> scratch(ReducedMatrix::scratch_floats(p, N, K));
            const ReducedKernel k = !avx512 ? ReducedKernel::Avx2Fma
                                    : p == WeightPrecision::Bf16 ? ReducedKernel::Avx512Bf16
                                                                 : ReducedKernel::Avx512Vnni;
            timeit(p == WeightPrecision::Bf16 ? "recsys bf16" : "recsys int8", M, N, K,
                   [&] { m.multiply_add(k, A.data(), K, M, C.data(), N, scratch.data(), {}); });
        }
        onednn(eng, s, dt::f32, dt::f32, dt::f32, "oneDNN f32", M, N, K);
        onednn(eng, s, dt::bf16, dt::bf16, dt::f32, "oneDNN bf16", M, N, K);
        onednn(eng, s, dt::u8, dt::s8, dt::f32, "oneDNN u8s8", M, N, K);
    }
}
