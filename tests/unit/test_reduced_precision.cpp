// Reduced-precision scoring: the kernels against a plain reference, the arithmetic against
// float32 within stated bounds, the kernel choice for a CPU, the precision in the model format,
// and LstmForward on bf16 and int8 models against the float32 model.
#include "core/reduced_precision.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/lstm_forward.h"
#include "core/lstm_training.h"
#include "core/model_format.h"
#include "core/santander_features.h"
#include "core/sha256.h"

namespace {

using namespace recsys;

std::vector<float> random_values(size_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v(n);
    for (auto &x : v) x = d(rng);
    return v;
}

// Every kernel this CPU can run, and the portable reference.
std::vector<ReducedKernel> runnable_kernels(WeightPrecision p) {
    std::vector<ReducedKernel> kernels{ReducedKernel::Portable};
    const CpuFeatures cpu = CpuFeatures::detect();
    if (cpu.avx2 && cpu.fma) kernels.push_back(ReducedKernel::Avx2Fma);
    if (cpu.avx512f && cpu.avx512bw && p == WeightPrecision::Bf16 && cpu.avx512_bf16)
        kernels.push_back(ReducedKernel::Avx512Bf16);
    if (cpu.avx512f && cpu.avx512bw && p == WeightPrecision::Int8 && cpu.avx512_vnni)
        kernels.push_back(ReducedKernel::Avx512Vnni);
    // In the test's XML/JSON output, so a run on another CPU shows which kernels it compared.
    std::string names;
    for (ReducedKernel k : kernels) names += std::string(names.empty() ? "" : ",") + kernel_name(k);
    ::testing::Test::RecordProperty(std::string(precision_name(p)) + "_kernels_compared", names);
    return kernels;
}

// C = bias + A · Wᵀ through ReducedMatrix with a given kernel.
std::vector<float> reduced_product(WeightPrecision p, ReducedKernel kernel, const std::vector<float> &A,
                                   const std::vector<float> &W, const std::vector<float> &bias, size_t M, size_t N,
                                   size_t K) {
    ReducedMatrix matrix(p, W.data(), N, K);
    std::vector<float> scratch(ReducedMatrix::scratch_floats(p, N, K));
    std::vector<float> C(M * N);
    for (size_t m = 0; m < M; ++m) std::memcpy(&C[m * N], bias.data(), N * sizeof(float));
    int polls = 0;
    matrix.multiply_add(kernel, A.data(), K, M, C.data(), N, scratch.data(), [&] { ++polls; });
    EXPECT_GE(polls, 1);
    return C;
}

// Odd sizes on purpose: N and K not multiples of the vector widths, M not a multiple of the
// row block or of the quantization chunk.
struct Shape {
    size_t M, N, K;
};
const Shape kShapes[] = {{1, 512, 128}, {7, 37, 53}, {33, 64, 48}, {70, 24, 144}, {5, 3, 1}};

TEST(ReducedPrecision, Bf16RoundsToNearestEven) {
    EXPECT_EQ(to_bf16(1.0f), 0x3f80);
    EXPECT_EQ(from_bf16(to_bf16(1.0f)), 1.0f);
    // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
    EXPECT_EQ(from_bf16(to_bf16(1.0f + 1.0f / 256)), 1.0f);
    EXPECT_EQ(from_bf16(to_bf16(1.0f + 3.0f / 256)), 1.0f + 4.0f / 256);
    EXPECT_EQ(from_bf16(to_bf16(-2.5f)), -2.5f);
}

// int8 dot products are exact in int32: every kernel gives the same bits.
TEST(ReducedPrecision, Int8KernelsAgreeBitForBit) {
    for (const Shape &s : kShapes) {
        const auto A = random_values(s.M * s.K, 1), W = random_values(s.N * s.K, 2, 0.2f),
                   bias = random_values(s.N, 3);
        const auto ref = reduced_product(WeightPrecision::Int8, ReducedKernel::Portable, A, W, bias, s.M, s.N, s.K);
        for (ReducedKernel k : runnable_kernels(WeightPrecision::Int8)) {
            const auto got = reduced_product(WeightPrecision::Int8, k, A, W, bias, s.M, s.N, s.K);
            EXPECT_EQ(std::memcmp(got.data(), ref.data(), got.size() * sizeof(float)), 0)
                << kernel_name(k) << " M=" << s.M << " N=" << s.N << " K=" << s.K;
        }
    }
}

// bf16 kernels differ from each other only in the float32 summation order.
TEST(ReducedPrecision, Bf16KernelsAgreeUpToSummationOrder) {
    for (const Shape &s : kShapes) {
        const auto A = random_values(s.M * s.K, 4), W = random_values(s.N * s.K, 5, 0.2f),
                   bias = random_values(s.N, 6);
        const auto ref = reduced_product(WeightPrecision::Bf16, ReducedKernel::Portable, A, W, bias, s.M, s.N, s.K);
        for (ReducedKernel k : runnable_kernels(WeightPrecision::Bf16)) {
            const auto got = reduced_product(WeightPrecision::Bf16, k, A, W, bias, s.M, s.N, s.K);
            for (size_t i = 0; i < got.size(); ++i)
                ASSERT_NEAR(got[i], ref[i], 1e-5f * (1.0f + std::fabs(ref[i])))
                    << kernel_name(k) << " M=" << s.M << " N=" << s.N << " K=" << s.K << " at " << i;
        }
    }
}

// Against the exact product: bf16 keeps 8 significant bits of each factor (relative error
// 2^-9 each), so |error| <= (2^-8 + 2^-18) x sum |a w| (plus float32 summation); int8 rounds each
// factor by half a step (max|a| / 254, max|w| / 254), so
// |error| <= sum (|a| dw + |w| da + da dw).
TEST(ReducedPrecision, ProductsWithinTheirErrorBounds) {
    const Shape s{40, 96, 128};
    const auto A = random_values(s.M * s.K, 7), W = random_values(s.N * s.K, 8, 0.2f);
    const std::vector<float> bias(s.N, 0.0f);
    for (WeightPrecision p : {WeightPrecision::Bf16, WeightPrecision::Int8}) {
        const auto got = reduced_product(p, choose_kernel(p, CpuFeatures::detect()), A, W, bias, s.M, s.N, s.K);
        double worst_ratio = 0;
        for (size_t m = 0; m < s.M; ++m) {
            double amax = 0;
            for (size_t k = 0; k < s.K; ++k) amax = std::max(amax, double(std::fabs(A[m * s.K + k])));
            for (size_t n = 0; n < s.N; ++n) {
                double exact = 0, abs_sum = 0, wmax = 0;
                for (size_t k = 0; k < s.K; ++k) wmax = std::max(wmax, double(std::fabs(W[n * s.K + k])));
                double bound = 0;
                const double da = amax / 254, dw = wmax / 254;
                for (size_t k = 0; k < s.K; ++k) {
                    const double a = A[m * s.K + k], w = W[n * s.K + k];
                    exact += a * w;
                    abs_sum += std::fabs(a * w);
                    bound += std::fabs(a) * dw + std::fabs(w) * da + da * dw;
                }
                if (p == WeightPrecision::Bf16) bound = abs_sum * (1.0 / 256 + 1.0 / 65536);
                bound += 1e-5 * (1 + abs_sum);  // float32 summation
                const double err = std::fabs(got[m * s.N + n] - exact);
                ASSERT_LE(err, bound) << precision_name(p) << " m=" << m << " n=" << n;
                worst_ratio = std::max(worst_ratio, err / bound);
            }
        }
        // The bound is not vacuous: the error uses a visible part of it.
        EXPECT_GT(worst_ratio, 0.05) << precision_name(p);
    }
}

TEST(ReducedPrecision, KernelChoiceFollowsTheCpu) {
    CpuFeatures none;
    CpuFeatures avx2;
    avx2.avx2 = avx2.fma = true;
    CpuFeatures zen4 = avx2;
    zen4.avx512f = zen4.avx512bw = zen4.avx512_vnni = zen4.avx512_bf16 = true;
    CpuFeatures vnni_only = avx2;
    vnni_only.avx512f = vnni_only.avx512bw = vnni_only.avx512_vnni = true;

    EXPECT_EQ(choose_kernel(WeightPrecision::Bf16, zen4), ReducedKernel::Avx512Bf16);
    EXPECT_EQ(choose_kernel(WeightPrecision::Int8, zen4), ReducedKernel::Avx512Vnni);
    EXPECT_EQ(choose_kernel(WeightPrecision::Bf16, vnni_only), ReducedKernel::Avx2Fma);
    EXPECT_EQ(choose_kernel(WeightPrecision::Int8, vnni_only), ReducedKernel::Avx512Vnni);
    EXPECT_EQ(choose_kernel(WeightPrecision::Int8, avx2), ReducedKernel::Avx2Fma);
    EXPECT_EQ(choose_kernel(WeightPrecision::Bf16, avx2), ReducedKernel::Avx2Fma);

    CpuFeatures avx2_without_fma;
    avx2_without_fma.avx2 = true;
    for (const CpuFeatures &cpu : {none, avx2_without_fma})
        for (WeightPrecision p : {WeightPrecision::Bf16, WeightPrecision::Int8}) {
            try {
                choose_kernel(p, cpu);
                ADD_FAILURE() << "no error for " << precision_name(p);
            } catch (const Error &e) {
                EXPECT_EQ(e.kind(), ErrorKind::FeatureNotSupported);
                EXPECT_EQ(std::string(e.what()), std::string("this CPU cannot score ") +
                                                     (p == WeightPrecision::Int8 ? "an " : "a ") + precision_name(p) +
                                                     " model");
                EXPECT_NE(e.detail().find(p == WeightPrecision::Bf16 ? "lacks AVX-512 BF16" : "lacks AVX-512 VNNI"),
                          std::string::npos)
                    << e.detail();
            }
        }
}

TEST(ReducedPrecision, PrecisionNames) {
    for (WeightPrecision p : {WeightPrecision::Fp32, WeightPrecision::Bf16, WeightPrecision::Int8})
        EXPECT_EQ(parse_precision(precision_name(p)), p);
    try {
        parse_precision("fp16");
        ADD_FAILURE();
    } catch (const Error &e) {
        EXPECT_EQ(e.kind(), ErrorKind::InvalidParameter);
    }
}

// ---- Models

Model test_model(WeightPrecision p, uint32_t hidden = 32, uint32_t layers = 1) {
    Model m = santander_model_skeleton({"public.s", "ncodpers", "fecha_dato"}, 6, hidden, layers);
    m.index();
    size_weights(m);
    initialize_weights(m, 11);
    m.precision = p;
    return m;
}

void reseal(std::vector<uint8_t> &bytes) {
    const Sha256Digest d = sha256(bytes.data(), bytes.size() - 32);
    std::memcpy(bytes.data() + bytes.size() - 32, d.data(), 32);
}

uint32_t format_version(const std::vector<uint8_t> &bytes) {
    uint32_t v;
    std::memcpy(&v, bytes.data() + 8, 4);
    return v;
}

TEST(ReducedPrecisionFormat, Fp32BytesUnchangedAndPrecisionSurvives) {
    const Model fp32 = test_model(WeightPrecision::Fp32);
    const auto fp32_bytes = serialize_model(fp32);
    EXPECT_EQ(format_version(fp32_bytes), 1u);  // what every earlier release wrote and reads
    EXPECT_EQ(parse_model(fp32_bytes.data(), fp32_bytes.size()).precision, WeightPrecision::Fp32);
    for (WeightPrecision p : {WeightPrecision::Bf16, WeightPrecision::Int8}) {
        Model m = fp32;
        m.precision = p;
        const auto bytes = serialize_model(m);
        EXPECT_EQ(format_version(bytes), 2u);
        EXPECT_EQ(bytes.size(), fp32_bytes.size() + 1);
        const Model r = parse_model(bytes.data(), bytes.size());
        EXPECT_EQ(r.precision, p);
        EXPECT_EQ(r.layers[0].w_hh, fp32.layers[0].w_hh);  // the float32 weights are kept
        EXPECT_EQ(serialize_model(r), bytes);
    }
}

TEST(ReducedPrecisionFormat, BadPrecisionByteRefused) {
    const Model m = test_model(WeightPrecision::Int8);
    const auto good = serialize_model(m);
    // The precision byte follows the window and the flags.
    const size_t at = 20 + 12 + m.source.relation.size() + m.source.id_column.size() + m.source.month_column.size() + 8;
    ASSERT_EQ(good[at], uint8_t(WeightPrecision::Int8));
    for (uint8_t bad : {uint8_t(0), uint8_t(3), uint8_t(255)}) {
        auto bytes = good;
        bytes[at] = bad;
        reseal(bytes);  // only the precision byte is wrong
        try {
            parse_model(bytes.data(), bytes.size());
            ADD_FAILURE() << "accepted precision byte " << int(bad);
        } catch (const Error &e) {
            EXPECT_EQ(e.kind(), ErrorKind::CorruptModel);
            EXPECT_NE(e.detail().find("precision byte is " + std::to_string(bad)), std::string::npos) << e.detail();
        }
    }
}

// The whole forward pass of a reduced model stays close to the float32 model (the bound is
// loose on purpose: it is about 10x what these weights show; docs/reduced-precision.md gives
// the measured differences on trained models), and the memory accounting holds.
TEST(ReducedPrecisionForward, ScoresCloseToFloat32) {
    for (uint32_t layers : {1u, 2u}) {
        const Model fp32 = test_model(WeightPrecision::Fp32, 48, layers);
        const size_t B = 37, T = fp32.window_months, W = fp32.step_width(), S = fp32.static_width(),
                     P = fp32.product_count();
        std::mt19937 rng(5);
        std::uniform_real_distribution<float> u(0.0f, 1.0f);
        std::vector<float> steps(T * B * W), statics(B * S), ref(B * P), got(B * P);
        for (auto &x : steps) x = u(rng) < 0.2f ? 1.0f : 0.0f;
        for (auto &x : statics) x = u(rng) * 2 - 1;
        LstmForward f32(fp32, B);
        f32.score(steps.data(), statics.data(), B, ref.data());
        for (WeightPrecision p : {WeightPrecision::Bf16, WeightPrecision::Int8}) {
            Model m = fp32;
            m.precision = p;
            LstmForward f(m, B);
            EXPECT_EQ(f.allocated_bytes(), LstmForward::buffer_bytes(m).total(B));
            EXPECT_GT(LstmForward::buffer_bytes(m).fixed, LstmForward::buffer_bytes(fp32).fixed);
            f.score(steps.data(), statics.data(), B, got.data());
            double worst = 0;
            for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, double(std::fabs(got[i] - ref[i])));
            EXPECT_LT(worst, 0.02) << precision_name(p) << " layers=" << layers;
            EXPECT_GT(worst, 0.0) << precision_name(p) << ": the reduced path did not run";
            // Scoring one customer at a time gives the same scores (bit for bit for int8).
            LstmForward single(m, 1);
            std::vector<float> one_steps(T * W), one(P);
            for (size_t b : {size_t(0), B - 1}) {
                for (size_t t = 0; t < T; ++t)
                    std::memcpy(&one_steps[t * W], &steps[(t * B + b) * W], W * sizeof(float));
                single.score(one_steps.data(), statics.data() + b * S, 1, one.data());
                for (size_t j = 0; j < P; ++j) EXPECT_NEAR(one[j], got[b * P + j], 1e-6) << precision_name(p);
            }
        }
    }
}

}  // namespace
