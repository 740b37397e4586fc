#include "core/metrics.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <vector>

namespace {

using recsys::average_precision_at_k;
using recsys::RankingMetrics;

// Kaggle's apk, transcribed from the Python reference (ml_metrics.average_precision.apk).
double reference_apk(const std::vector<uint32_t> &actual, const std::vector<uint32_t> &predicted, size_t k) {
    std::vector<uint32_t> pred(predicted.begin(), predicted.begin() + std::min(k, predicted.size()));
    if (actual.empty()) return 0.0;
    double score = 0.0, hits = 0.0;
    for (size_t i = 0; i < pred.size(); ++i) {
        const uint32_t p = pred[i];
        const bool in_actual = std::find(actual.begin(), actual.end(), p) != actual.end();
        const bool seen = std::find(pred.begin(), pred.begin() + i, p) != pred.begin() + i;
        if (in_actual && !seen) {
            hits += 1.0;
            score += hits / double(i + 1);
        }
    }
    return score / double(std::min(actual.size(), k));
}

std::vector<uint8_t> flags(uint32_t products, const std::vector<uint32_t> &set) {
    std::vector<uint8_t> f(products, 0);
    for (uint32_t p : set) f[p] = 1;
    return f;
}

double apk(const std::vector<uint32_t> &actual, const std::vector<uint32_t> &ranked, uint32_t k, uint32_t P = 24) {
    const auto a = flags(P, actual);
    return average_precision_at_k(ranked.data(), ranked.size(), a.data(), P, k);
}

TEST(Metrics, HandCheckedAveragePrecision) {
    EXPECT_DOUBLE_EQ(apk({}, {1, 2, 3}, 7), 0.0);
    EXPECT_DOUBLE_EQ(apk({1}, {1, 2, 3}, 7), 1.0);
    EXPECT_DOUBLE_EQ(apk({2}, {1, 2, 3}, 7), 0.5);
    EXPECT_DOUBLE_EQ(apk({3}, {1, 2, 3}, 7), 1.0 / 3.0);
    EXPECT_DOUBLE_EQ(apk({9}, {1, 2, 3}, 7), 0.0);
    // Hits at ranks 1 and 3 of two actual products: (1/1 + 2/3) / 2.
    EXPECT_DOUBLE_EQ(apk({1, 3}, {1, 2, 3}, 7), (1.0 + 2.0 / 3.0) / 2.0);
    // Only the first k count; the denominator is min(|A|, k).
    EXPECT_DOUBLE_EQ(apk({1, 2, 3}, {1, 2, 3}, 2), 1.0);
    EXPECT_DOUBLE_EQ(apk({3}, {1, 2, 3}, 2), 0.0);
    // A duplicate in the ranking is not a second hit.
    EXPECT_DOUBLE_EQ(apk({1, 2}, {1, 1, 2}, 7), (1.0 + 2.0 / 3.0) / 2.0);
    // Kaggle examples: apk([1..5], [6,4,7,1,2], 2) = 0.25, apk(range(1,6), [1,1,1,1,1], 5) = 0.2.
    EXPECT_DOUBLE_EQ(apk({1, 2, 3, 4, 5}, {6, 4, 7, 1, 2}, 2), 0.25);
    EXPECT_DOUBLE_EQ(apk({1, 2, 3, 4, 5}, {1, 1, 1, 1, 1}, 5), 0.2);
}

TEST(Metrics, HandCheckedAccumulator) {
    const uint32_t P = 5;
    RankingMetrics m(P, 2);
    const std::vector<uint32_t> r1{0, 1}, r2{2, 0}, r3{0, 1};
    const auto a1 = flags(P, {1}), a2 = flags(P, {}), a3 = flags(P, {0, 3});
    m.add(r1.data(), r1.size(), a1.data());  // AP 0.5, hits 1
    m.add(r2.data(), r2.size(), a2.data());  // no adds
    m.add(r3.data(), r3.size(), a3.data());  // AP (1/1)/2 = 0.5, hits 1
    EXPECT_EQ(m.customers(), 3u);
    EXPECT_EQ(m.adders(), 2u);
    EXPECT_DOUBLE_EQ(m.map(), 1.0 / 3.0);
    EXPECT_DOUBLE_EQ(m.map_adders(), 0.5);
    EXPECT_DOUBLE_EQ(m.precision(), 0.5);           // (1/2 + 1/2) / 2
    EXPECT_DOUBLE_EQ(m.recall(), (1.0 + 0.5) / 2);  // 1/1 and 1/2
    EXPECT_DOUBLE_EQ(m.coverage(), 3.0 / 5.0);      // products 0, 1, 2
}

TEST(Metrics, EmptyAccumulatorIsZero) {
    RankingMetrics m(24, 7);
    EXPECT_EQ(m.map(), 0.0);
    EXPECT_EQ(m.map_adders(), 0.0);
    EXPECT_EQ(m.precision(), 0.0);
    EXPECT_EQ(m.recall(), 0.0);
    EXPECT_EQ(m.coverage(), 0.0);
}

TEST(Metrics, RandomCasesMatchReference) {
    std::mt19937_64 rng(7);
    const uint32_t P = 24;
    for (int trial = 0; trial < 200; ++trial) {
        const uint32_t k = 1 + uint32_t(rng() % 10);
        RankingMetrics m(P, k);
        double ap_sum = 0, prec_sum = 0, rec_sum = 0;
        size_t n = 0, adders = 0;
        std::set<uint32_t> covered;
        const int customers = 1 + int(rng() % 50);
        for (int c = 0; c < customers; ++c) {
            std::vector<uint32_t> actual, ranked;
            for (uint32_t p = 0; p < P; ++p)
                if (rng() % 10 == 0) actual.push_back(p);
            const size_t len = rng() % 12;
            for (size_t i = 0; i < len; ++i) ranked.push_back(uint32_t(rng() % P));
            const auto a = flags(P, actual);
            const double ref = reference_apk(actual, ranked, k);
            ASSERT_NEAR(average_precision_at_k(ranked.data(), ranked.size(), a.data(), P, k), ref, 1e-12);
            m.add(ranked.data(), ranked.size(), a.data());
            ++n;
            std::set<uint32_t> top(ranked.begin(), ranked.begin() + std::min<size_t>(k, ranked.size()));
            covered.insert(top.begin(), top.end());
            if (actual.empty()) continue;
            ++adders;
            ap_sum += ref;
            double hits = 0;
            for (uint32_t p : top) hits += a[p];
            prec_sum += hits / k;
            rec_sum += hits / double(actual.size());
        }
        EXPECT_NEAR(m.map(), ap_sum / double(n), 1e-12);
        EXPECT_NEAR(m.map_adders(), adders ? ap_sum / double(adders) : 0.0, 1e-12);
        EXPECT_NEAR(m.precision(), adders ? prec_sum / double(adders) : 0.0, 1e-12);
        EXPECT_NEAR(m.recall(), adders ? rec_sum / double(adders) : 0.0, 1e-12);
        EXPECT_NEAR(m.coverage(), double(covered.size()) / P, 1e-12);
        EXPECT_EQ(m.customers(), n);
        EXPECT_EQ(m.adders(), adders);
    }
}

}  // namespace
