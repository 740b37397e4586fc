// sigmoid_inplace / tanh_inplace (fast, vectorised) against the exact libm references.
#include "core/activations.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

std::vector<float> activation_grid() {
    std::vector<float> xs;
    // Dense grid over [-30, 30], step 1/1024, plus exact integers and small magnitudes.
    for (int i = -30 * 1024; i <= 30 * 1024; ++i) xs.push_back(float(i) / 1024.0f);
    for (float v : {1e-8f, -1e-8f, 1e-4f, -1e-4f, 0.0f, -0.0f, 1e-30f, -1e-30f}) xs.push_back(v);
    // Far outside the polynomial's range: the clamp must keep the result finite and saturated.
    for (float v : {40.0f, -40.0f, 87.5f, -87.5f, 88.7f, -88.7f, 89.0f, -89.0f, 100.0f, -100.0f, 1000.0f, -1000.0f,
                    1e10f, -1e10f, 3.0e38f, -3.0e38f})
        xs.push_back(v);
    return xs;
}

TEST(Activations, SigmoidMatchesReference) {
    const std::vector<float> xs = activation_grid();
    std::vector<float> fast = xs, ref = xs;
    recsys::sigmoid_inplace(fast.data(), fast.size());
    recsys::sigmoid_reference(ref.data(), ref.size());
    double max_err = 0.0;
    float worst_x = 0.0f;
    for (size_t i = 0; i < xs.size(); ++i) {
        ASSERT_FALSE(std::isnan(fast[i])) << "x=" << xs[i];
        ASSERT_GE(fast[i], 0.0f) << "x=" << xs[i];
        ASSERT_LE(fast[i], 1.0f) << "x=" << xs[i];
        // Also compare with a double-precision sigmoid, independent of the float reference.
        const double exact = 1.0 / (1.0 + std::exp(-double(xs[i])));
        const double err = std::max(std::fabs(double(fast[i]) - double(ref[i])), std::fabs(double(fast[i]) - exact));
        if (err > max_err) {
            max_err = err;
            worst_x = xs[i];
        }
    }
    EXPECT_LT(max_err, 1e-6) << "worst at x=" << worst_x;
}

TEST(Activations, TanhMatchesReference) {
    const std::vector<float> xs = activation_grid();
    std::vector<float> fast = xs, ref = xs;
    recsys::tanh_inplace(fast.data(), fast.size());
    recsys::tanh_reference(ref.data(), ref.size());
    double max_err = 0.0;
    float worst_x = 0.0f;
    for (size_t i = 0; i < xs.size(); ++i) {
        ASSERT_FALSE(std::isnan(fast[i])) << "x=" << xs[i];
        ASSERT_GE(fast[i], -1.0f) << "x=" << xs[i];
        ASSERT_LE(fast[i], 1.0f) << "x=" << xs[i];
        const double exact = std::tanh(double(xs[i]));
        const double err = std::max(std::fabs(double(fast[i]) - double(ref[i])), std::fabs(double(fast[i]) - exact));
        if (err > max_err) {
            max_err = err;
            worst_x = xs[i];
        }
    }
    EXPECT_LT(max_err, 2e-6) << "worst at x=" << worst_x;
}

TEST(Activations, SaturatesAtLargeMagnitudes) {
    std::vector<float> s = {100.0f, -100.0f, 1000.0f, -1000.0f};
    recsys::sigmoid_inplace(s.data(), s.size());
    EXPECT_FLOAT_EQ(s[0], 1.0f);
    EXPECT_NEAR(s[1], 0.0f, 1e-30);
    EXPECT_FLOAT_EQ(s[2], 1.0f);
    EXPECT_NEAR(s[3], 0.0f, 1e-30);
    std::vector<float> t = {100.0f, -100.0f, 1000.0f, -1000.0f};
    recsys::tanh_inplace(t.data(), t.size());
    EXPECT_FLOAT_EQ(t[0], 1.0f);
    EXPECT_FLOAT_EQ(t[1], -1.0f);
    EXPECT_FLOAT_EQ(t[2], 1.0f);
    EXPECT_FLOAT_EQ(t[3], -1.0f);
}

TEST(Activations, KnownValuesAndSymmetry) {
    std::vector<float> s = {0.0f, 2.0f, -2.0f};
    recsys::sigmoid_inplace(s.data(), s.size());
    EXPECT_NEAR(s[0], 0.5f, 1e-7);
    EXPECT_NEAR(s[1], 0.8807970779778823, 1e-6);
    EXPECT_NEAR(s[1] + s[2], 1.0f, 1e-6);
    std::vector<float> t = {0.0f, 0.5f, -0.5f};
    recsys::tanh_inplace(t.data(), t.size());
    EXPECT_NEAR(t[0], 0.0f, 1e-7);
    EXPECT_NEAR(t[1], 0.46211715726000974, 2e-6);
    EXPECT_NEAR(t[1], -t[2], 2e-6);
}

// Odd lengths exercise the vectorised loops' scalar tails.
TEST(Activations, EveryLengthUpTo67) {
    for (size_t n = 0; n <= 67; ++n) {
        std::vector<float> fast(n), ref(n);
        for (size_t i = 0; i < n; ++i) fast[i] = ref[i] = -8.0f + 0.25f * float(i);
        recsys::sigmoid_inplace(fast.data(), n);
        recsys::sigmoid_reference(ref.data(), n);
        for (size_t i = 0; i < n; ++i) ASSERT_NEAR(fast[i], ref[i], 1e-6) << "n=" << n << " i=" << i;
        for (size_t i = 0; i < n; ++i) fast[i] = ref[i] = -8.0f + 0.25f * float(i);
        recsys::tanh_inplace(fast.data(), n);
        recsys::tanh_reference(ref.data(), n);
        for (size_t i = 0; i < n; ++i) ASSERT_NEAR(fast[i], ref[i], 2e-6) << "n=" << n << " i=" << i;
    }
}

}  // namespace
