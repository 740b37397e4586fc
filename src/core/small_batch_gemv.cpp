#include "small_batch_gemv.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>

namespace recsys {

namespace {

// One slice: rows [n0, n1) of B against every row of A. base(m, n): what the sum adds to.
using Kernel = void (*)(size_t M, size_t n0, size_t n1, size_t K, const float *A, size_t lda, const float *B,
                        size_t ldb, float beta, float *C, size_t ldc, const float *row_init);

inline float start_value(float beta, const float *C, size_t index, const float *row_init, size_t n) {
    if (row_init) return row_init[n];
    return beta == 0.0f ? 0.0f : beta * C[index];
}

void portable_kernel(size_t M, size_t n0, size_t n1, size_t K, const float *A, size_t lda, const float *B, size_t ldb,
                     float beta, float *C, size_t ldc, const float *row_init) {
    for (size_t m = 0; m < M; ++m) {
        const float *a = A + m * lda;
        for (size_t n = n0; n < n1; ++n) {
            const float *b = B + n * ldb;
            float sum = 0.0f;
            for (size_t k = 0; k < K; ++k) sum += a[k] * b[k];
            C[m * ldc + n] = start_value(beta, C, m * ldc + n, row_init, n) + sum;
        }
    }
}

// Eight rows of B at a time, each row's dot product with a row of A in its own 8-lane
// accumulator (eight independent FMA chains hide the FMA latency), reduced together.
__attribute__((target("avx2,fma"))) void avx2_fma_kernel(size_t M, size_t n0, size_t n1, size_t K, const float *A,
                                                         size_t lda, const float *B, size_t ldb, float beta, float *C,
                                                         size_t ldc, const float *row_init) {
    const size_t K8 = K & ~size_t(7);
    size_t n = n0;
    for (; n + 8 <= n1; n += 8) {
        const float *b = B + n * ldb;
        for (size_t m = 0; m < M; ++m) {
            const float *a = A + m * lda;
            __m256 acc[8];
            for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_ps();
            for (size_t k = 0; k < K8; k += 8) {
                const __m256 x = _mm256_loadu_ps(a + k);
                for (int i = 0; i < 8; ++i) acc[i] = _mm256_fmadd_ps(_mm256_loadu_ps(b + i * ldb + k), x, acc[i]);
            }
            // acc[i] lanes summed: hadd tree, then the two 128-bit halves added.
            const __m256 s01 = _mm256_hadd_ps(acc[0], acc[1]), s23 = _mm256_hadd_ps(acc[2], acc[3]);
            const __m256 s45 = _mm256_hadd_ps(acc[4], acc[5]), s67 = _mm256_hadd_ps(acc[6], acc[7]);
            const __m256 s0123 = _mm256_hadd_ps(s01, s23), s4567 = _mm256_hadd_ps(s45, s67);
            __m256 sums = _mm256_add_ps(_mm256_permute2f128_ps(s0123, s4567, 0x20),
                                        _mm256_permute2f128_ps(s0123, s4567, 0x31));
            alignas(32) float out[8];
            _mm256_store_ps(out, sums);
            float *c = C + m * ldc + n;
            for (int i = 0; i < 8; ++i) {
                float tail = 0.0f;
                for (size_t k = K8; k < K; ++k) tail += a[k] * b[i * ldb + k];
                c[i] = start_value(beta, C, m * ldc + n + i, row_init, n + i) + (out[i] + tail);
            }
        }
    }
    if (n < n1) portable_kernel(M, n, n1, K, A, lda, B, ldb, beta, C, ldc, row_init);
}

std::atomic<bool> force_portable{false};

Kernel selected_kernel() {
    static const Kernel best = [] {
        __builtin_cpu_init();
        return (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? Kernel(avx2_fma_kernel)
                                                                                 : Kernel(portable_kernel);
    }();
    return force_portable.load(std::memory_order_relaxed) ? Kernel(portable_kernel) : best;
}

}  // namespace

void small_rows_gemm_bt(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B, size_t ldb,
                        float beta, float *C, size_t ldc, const PollFn &poll_fn, const float *row_init) {
    if (M == 0 || N == 0) return;
    const Kernel kernel = selected_kernel();
    // Rows of B per slice: at most kPollWeightBytes of weights between polls (whole blocks of 8).
    const size_t row_bytes = std::max<size_t>(K, 1) * sizeof(float);
    const size_t slice = std::max<size_t>(8, (kPollWeightBytes / row_bytes) & ~size_t(7));
    for (size_t n0 = 0; n0 < N; n0 += slice) {
        kernel(M, n0, std::min(N, n0 + slice), K, A, lda, B, ldb, beta, C, ldc, row_init);
        poll(poll_fn);
    }
}

void gemm_bt(size_t M, size_t N, size_t K, const float *A, size_t lda, const float *B, size_t ldb, float beta,
             float *C, size_t ldc, const PollFn &poll_fn, const float *row_init) {
    if (M <= kSmallBatchRows) small_rows_gemm_bt(M, N, K, A, lda, B, ldb, beta, C, ldc, poll_fn, row_init);
    else gemm_polled(false, true, M, N, K, A, lda, B, ldb, beta, C, ldc, poll_fn, row_init);
}

const char *small_batch_kernel_name() {
    return selected_kernel() == Kernel(avx2_fma_kernel) ? "avx2-fma" : "portable";
}

void force_portable_small_batch_kernel(bool portable) { force_portable.store(portable, std::memory_order_relaxed); }

}  // namespace recsys
