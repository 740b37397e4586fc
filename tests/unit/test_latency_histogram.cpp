// LatencyBuckets and latency_quantile_ns: bucket bounds, resolution, percentiles.
#include "core/latency_histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace {

using recsys::LatencyBuckets;
using recsys::latency_quantile_ns;

TEST(LatencyHistogram, BucketsTileTheRange) {
    EXPECT_EQ(LatencyBuckets::kCount, 258);
    EXPECT_EQ(LatencyBuckets::lower_ns(0), 0u);
    EXPECT_EQ(LatencyBuckets::upper_ns(0), 1024u);
    for (int i = 0; i + 1 < LatencyBuckets::kCount; ++i) {
        EXPECT_EQ(LatencyBuckets::upper_ns(i), LatencyBuckets::lower_ns(i + 1)) << i;
        EXPECT_LT(LatencyBuckets::lower_ns(i), LatencyBuckets::upper_ns(i)) << i;
    }
    EXPECT_EQ(LatencyBuckets::lower_ns(LatencyBuckets::kCount - 1), uint64_t(1) << 42);
    EXPECT_EQ(LatencyBuckets::upper_ns(LatencyBuckets::kCount - 1), UINT64_MAX);
}

TEST(LatencyHistogram, IndexAgreesWithBounds) {
    const uint64_t probes[] = {0, 1, 1023, 1024, 1025, 1151, 1152, 2047, 2048, 999999, 1000000,
                               (uint64_t(1) << 42) - 1, uint64_t(1) << 42, UINT64_MAX};
    for (uint64_t ns : probes) {
        const int i = LatencyBuckets::index(ns);
        ASSERT_GE(i, 0);
        ASSERT_LT(i, LatencyBuckets::kCount);
        EXPECT_LE(LatencyBuckets::lower_ns(i), ns) << ns;
        if (i + 1 < LatencyBuckets::kCount) {
            EXPECT_LT(ns, LatencyBuckets::upper_ns(i)) << ns;
        }
    }
    // Every bucket's lower bound maps to it, and the time just below to the one before.
    for (int i = 1; i < LatencyBuckets::kCount; ++i) {
        EXPECT_EQ(LatencyBuckets::index(LatencyBuckets::lower_ns(i)), i);
        EXPECT_EQ(LatencyBuckets::index(LatencyBuckets::lower_ns(i) - 1), i - 1);
    }
}

TEST(LatencyHistogram, ResolutionIsWithinSixPercentInTheLogRange) {
    for (int i = 1; i + 1 < LatencyBuckets::kCount; ++i) {
        const double lo = double(LatencyBuckets::lower_ns(i)), hi = double(LatencyBuckets::upper_ns(i));
        EXPECT_LE((hi - lo) / lo, 0.125 + 1e-12) << i;
        const double mid = LatencyBuckets::representative_ns(i);
        EXPECT_LE((mid - lo) / lo, 0.0625 + 1e-12) << i;
        EXPECT_LE((hi - mid) / mid, 0.0625 + 1e-12) << i;
    }
}

TEST(LatencyHistogram, EmptyHistogramHasNoQuantile) {
    std::vector<uint64_t> counts(LatencyBuckets::kCount, 0);
    EXPECT_LT(latency_quantile_ns(counts.data(), 0.5, 0), 0);
}

TEST(LatencyHistogram, QuantilesAreNearTheTrueOrderStatistics) {
    std::mt19937_64 rng(7);
    std::lognormal_distribution<double> dist(std::log(300e3), 1.0);  // about 300 us, long tail
    std::vector<uint64_t> counts(LatencyBuckets::kCount, 0), times;
    uint64_t max_ns = 0;
    for (int i = 0; i < 100000; ++i) {
        const uint64_t t = uint64_t(dist(rng));
        times.push_back(t);
        ++counts[LatencyBuckets::index(t)];
        max_ns = std::max(max_ns, t);
    }
    std::sort(times.begin(), times.end());
    for (double q : {0.5, 0.95, 0.99, 0.999}) {
        const double exact = double(times[size_t(std::ceil(q * times.size())) - 1]);
        const double got = latency_quantile_ns(counts.data(), q, max_ns);
        EXPECT_NEAR(got / exact, 1.0, 0.0625 + 1e-9) << q;
    }
    const double p100 = latency_quantile_ns(counts.data(), 1.0, max_ns);
    EXPECT_LE(p100, double(max_ns));
    EXPECT_NEAR(p100 / double(max_ns), 1.0, 0.0625 + 1e-9);
}

TEST(LatencyHistogram, QuantilesAreOrderedAndNeverExceedTheMax) {
    std::vector<uint64_t> counts(LatencyBuckets::kCount, 0);
    // One call of 5 ms: every percentile is that call's bucket, clamped to 5 ms.
    counts[LatencyBuckets::index(5000000)] = 1;
    EXPECT_LE(latency_quantile_ns(counts.data(), 0.5, 5000000), 5000000.0);
    EXPECT_NEAR(latency_quantile_ns(counts.data(), 0.5, 5000000), 5000000.0, 5000000.0 * 0.0625);
    // 90 fast calls and 10 slow ones.
    std::fill(counts.begin(), counts.end(), 0);
    counts[LatencyBuckets::index(100000)] = 90;
    counts[LatencyBuckets::index(50000000)] = 10;
    const double p50 = latency_quantile_ns(counts.data(), 0.5, 50000000);
    const double p95 = latency_quantile_ns(counts.data(), 0.95, 50000000);
    const double p99 = latency_quantile_ns(counts.data(), 0.99, 50000000);
    EXPECT_LE(p50, p95);
    EXPECT_LE(p95, p99);
    EXPECT_LE(p99, 50000000.0);
    EXPECT_NEAR(p50, 100000.0, 100000.0 * 0.0625);
    EXPECT_NEAR(p95, 50000000.0, 50000000.0 * 0.0625);
    // Under 1 us, and beyond 73 minutes: clamped to the max.
    std::fill(counts.begin(), counts.end(), 0);
    counts[0] = 3;
    EXPECT_DOUBLE_EQ(latency_quantile_ns(counts.data(), 0.5, 300), 300.0);
    counts[0] = 0;
    counts[LatencyBuckets::kCount - 1] = 1;
    EXPECT_DOUBLE_EQ(latency_quantile_ns(counts.data(), 0.99, uint64_t(1) << 43), double(uint64_t(1) << 42));
}

}  // namespace
