// The small-batch product (the online path's replacement for sgemm at a few rows) equals a
// double-precision reference within 1e-5, for both kernels, every shape edge (rows of B not a
// multiple of 8, K not a multiple of 8, strides wider than K) and the three ways C starts
// (beta 0, beta 1, a bias row), and LstmForward at batch 1 equals the same model at a batch
// that goes through sgemm.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "lstm_forward.h"
#include "lstm_training.h"
#include "small_batch_gemv.h"
#include "santander_features.h"

using namespace recsys;

namespace {

struct Shape {
    size_t M, N, K, pad;
};

void check_against_reference(bool portable) {
    force_portable_small_batch_kernel(portable);
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    const Shape shapes[] = {{1, 512, 128, 0}, {1, 24, 144, 0}, {16, 512, 48, 0}, {3, 13, 37, 5}, {1, 7, 5, 1},
                            {2, 9, 8, 0},     {1, 1, 1, 0}};
    for (const Shape &s : shapes)
        for (int mode = 0; mode < 3; ++mode) {  // 0: beta 0, 1: beta 1, 2: bias row
            const size_t lda = s.K + s.pad, ldb = s.K + s.pad, ldc = s.N + s.pad;
            std::vector<float> A(s.M * lda), B(s.N * ldb), C(s.M * ldc), bias(s.N);
            for (auto &x : A) x = u(rng);
            for (auto &x : B) x = u(rng);
            for (auto &x : C) x = u(rng);
            for (auto &x : bias) x = u(rng);
            std::vector<double> expected(s.M * s.N);
            for (size_t m = 0; m < s.M; ++m)
                for (size_t n = 0; n < s.N; ++n) {
                    double sum = mode == 0 ? 0.0 : mode == 1 ? C[m * ldc + n] : bias[n];
                    for (size_t k = 0; k < s.K; ++k) sum += double(A[m * lda + k]) * double(B[n * ldb + k]);
                    expected[m * s.N + n] = sum;
                }
            int polls = 0;
            small_rows_gemm_bt(s.M, s.N, s.K, A.data(), lda, B.data(), ldb, mode == 0 ? 0.0f : 1.0f, C.data(), ldc,
                               [&] { ++polls; }, mode == 2 ? bias.data() : nullptr);
            EXPECT_GE(polls, 1);
            for (size_t m = 0; m < s.M; ++m)
                for (size_t n = 0; n < s.N; ++n)
                    ASSERT_NEAR(C[m * ldc + n], expected[m * s.N + n], 1e-5)
                        << "M=" << s.M << " N=" << s.N << " K=" << s.K << " mode=" << mode << " at " << m << "," << n;
        }
    force_portable_small_batch_kernel(false);
}

}  // namespace

TEST(SmallBatchGemv, PortableKernelEqualsReference) { check_against_reference(true); }

TEST(SmallBatchGemv, SelectedKernelEqualsReference) {
    std::printf("small-batch kernel on this CPU: %s\n", small_batch_kernel_name());
    check_against_reference(false);
}

TEST(SmallBatchGemv, BatchOfOneEqualsSgemmBatch) {
    // Customer 0 of a 64-customer batch goes through sgemm; alone it goes through the kernel.
    Model m = santander_model_skeleton({"s.t", "id", "month"}, 16, 128, 2);
    m.index();
    size_weights(m);
    initialize_weights(m, 9);
    const size_t B = 64, W = m.step_width(), S = m.static_width(), P = m.product_count(), T = m.window_months;
    std::mt19937 rng(4);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    std::vector<float> steps(T * B * W), statics(B * S), batch_scores(B * P);
    for (auto &x : steps) x = u(rng) < 0.3f ? 1.0f : 0.0f;
    for (auto &x : statics) x = u(rng) - 0.5f;
    LstmForward batched(m, B);
    batched.score(steps.data(), statics.data(), B, batch_scores.data());
    std::vector<float> one_steps(T * W), one_scores(P);
    for (size_t t = 0; t < T; ++t) std::copy_n(steps.data() + (t * B) * W, W, one_steps.data() + t * W);
    LstmForward single(m, 1);
    single.score(one_steps.data(), statics.data(), 1, one_scores.data());
    for (size_t p = 0; p < P; ++p) EXPECT_NEAR(one_scores[p], batch_scores[p], 1e-5);
}
