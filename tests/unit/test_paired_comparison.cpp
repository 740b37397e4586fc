#include "core/paired_comparison.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/splitmix64.h"

namespace {

using recsys::compare_subpopulations;
using recsys::DifferenceInterval;
using recsys::paired_bootstrap;
using recsys::splitmix64;
using recsys::SubpopulationComparison;
using recsys::Subpopulations;

// FNV-1a 64-bit, written out from its definition for the reference seeds below.
uint64_t reference_fnv1a64(const std::string &text) {
    uint64_t hash = 14695981039346656037ull;
    for (char c : text) {
        hash ^= uint64_t(static_cast<unsigned char>(c));
        hash *= 1099511628211ull;
    }
    return hash;
}

// The documented bootstrap, done the plain way: every draw reads a and b through the index,
// every rank is worked out from the documented formula.
DifferenceInterval reference_bootstrap(const std::vector<double> &a, const std::vector<double> &b,
                                       const std::vector<uint32_t> &list, uint32_t resamples, double confidence,
                                       uint64_t seed) {
    DifferenceInterval out;
    const uint64_t n = list.size();
    out.customers = n;
    if (n == 0) return out;
    double sa = 0, sb = 0, sd = 0;
    for (uint32_t c : list) {
        sa += a[c];
        sb += b[c];
        sd += a[c] - b[c];
    }
    out.mean_a = sa / double(n);
    out.mean_b = sb / double(n);
    out.difference = sd / double(n);
    std::vector<double> means;
    for (uint32_t r = 0; r < resamples; ++r) {
        const uint64_t first = splitmix64(splitmix64(seed) ^ (uint64_t(r) + 1));
        double sum = 0;
        for (uint64_t j = 0; j < n; ++j) {
            const uint64_t h = splitmix64(first + j);
            const uint64_t position = ((h >> 32) * n) >> 32;
            const uint32_t c = list[position];
            sum += a[c] - b[c];
        }
        means.push_back(sum / double(n));
    }
    std::sort(means.begin(), means.end());
    const double alpha = (1 - confidence) / 2;
    long low = long(std::floor(alpha * resamples + 1e-9));
    long high = long(std::ceil((1 - alpha) * resamples - 1e-9)) - 1;
    low = std::min<long>(std::max<long>(low, 0), long(resamples) - 1);
    high = std::min<long>(std::max<long>(high, 0), long(resamples) - 1);
    out.low = means[size_t(low)];
    out.high = means[size_t(high)];
    return out;
}

std::vector<uint32_t> all_of(size_t n) {
    std::vector<uint32_t> list(n);
    for (size_t i = 0; i < n; ++i) list[i] = uint32_t(i);
    return list;
}

// A uniform double in [0, 1) from a splitmix64 stream: the same data on every platform.
struct Uniform {
    uint64_t state;
    double operator()() { return double(splitmix64(state++) >> 11) * 0x1.0p-53; }
};

// MAP@7-shaped scores: most customers add nothing (0 for both rankers), adders score in (0, 1].
void simulated_scores(uint64_t seed, size_t n, double candidate_edge, std::vector<double> &a,
                      std::vector<double> &b, std::vector<uint8_t> *adder = nullptr) {
    Uniform u{seed};
    a.assign(n, 0.0);
    b.assign(n, 0.0);
    if (adder) adder->assign(n, 0);
    for (size_t i = 0; i < n; ++i) {
        if (u() >= 0.3) continue;
        a[i] = u();
        b[i] = u() * (1 - candidate_edge);
        if (adder) (*adder)[i] = 1;
    }
}

void expect_same(const DifferenceInterval &x, const DifferenceInterval &y) {
    EXPECT_EQ(x.customers, y.customers);
    EXPECT_DOUBLE_EQ(x.mean_a, y.mean_a);
    EXPECT_DOUBLE_EQ(x.mean_b, y.mean_b);
    EXPECT_DOUBLE_EQ(x.difference, y.difference);
    EXPECT_DOUBLE_EQ(x.low, y.low);
    EXPECT_DOUBLE_EQ(x.high, y.high);
}

TEST(PairedBootstrap, MatchesTheDocumentedDrawRuleOverAllCustomers) {
    std::vector<double> a, b;
    simulated_scores(7, 1234, 0.1, a, b);
    for (double confidence : {0.95, 0.9, 0.8}) {
        const auto got = paired_bootstrap(a.data(), b.data(), nullptr, a.size(), 300, confidence, 42);
        expect_same(got, reference_bootstrap(a, b, all_of(a.size()), 300, confidence, 42));
        EXPECT_LE(got.low, got.difference);
        EXPECT_GE(got.high, got.difference);
    }
}

TEST(PairedBootstrap, MatchesTheDocumentedDrawRuleOverAnIndexList) {
    std::vector<double> a, b;
    simulated_scores(11, 5000, 0.2, a, b);
    std::vector<uint32_t> list;
    for (uint32_t c = 3; c < a.size(); c += 7) list.push_back(c);
    const auto got = paired_bootstrap(a.data(), b.data(), list.data(), list.size(), 1000, 0.95, 99);
    expect_same(got, reference_bootstrap(a, b, list, 1000, 0.95, 99));
}

TEST(PairedBootstrap, MatchesTheDrawRuleWithMoreDistinctDifferencesThanCodes) {
    // Every customer a different difference: more than the 65,536 values the compact
    // representation codes, so the differences are read directly.
    const size_t n = 100000;
    Uniform u{77};
    std::vector<double> a(n), b(n);
    for (size_t i = 0; i < n; ++i) {
        a[i] = u();
        b[i] = u();
    }
    const auto got = paired_bootstrap(a.data(), b.data(), nullptr, n, 40, 0.9, 5);
    expect_same(got, reference_bootstrap(a, b, all_of(n), 40, 0.9, 5));
}

TEST(PairedBootstrap, RanksAreClampedForTinyResampleCounts) {
    std::vector<double> a, b;
    simulated_scores(5, 200, 0.0, a, b);
    // One resample: both bounds are that resample's mean.
    const auto one = paired_bootstrap(a.data(), b.data(), nullptr, a.size(), 1, 0.95, 1);
    expect_same(one, reference_bootstrap(a, b, all_of(a.size()), 1, 0.95, 1));
    EXPECT_DOUBLE_EQ(one.low, one.high);
    // alpha * R below 1: the extreme order statistics.
    const auto wide = paired_bootstrap(a.data(), b.data(), nullptr, a.size(), 100, 0.999, 1);
    expect_same(wide, reference_bootstrap(a, b, all_of(a.size()), 100, 0.999, 1));
}

TEST(PairedBootstrap, SameSeedSameFiguresOtherSeedOtherInterval) {
    std::vector<double> a, b;
    simulated_scores(3, 2000, 0.1, a, b);
    const auto first = paired_bootstrap(a.data(), b.data(), nullptr, a.size(), 500, 0.95, 42);
    const auto again = paired_bootstrap(a.data(), b.data(), nullptr, a.size(), 500, 0.95, 42);
    const auto other = paired_bootstrap(a.data(), b.data(), nullptr, a.size(), 500, 0.95, 43);
    expect_same(first, again);
    EXPECT_DOUBLE_EQ(first.difference, other.difference);  // the point estimate needs no draws
    EXPECT_TRUE(first.low != other.low || first.high != other.high);
    // Small seeds too: they differ only in a few low bits, which the draw rule must not keep.
    for (uint64_t seed = 1; seed < 8; ++seed) {
        const auto x = paired_bootstrap(a.data(), b.data(), nullptr, a.size(), 500, 0.95, seed);
        const auto y = paired_bootstrap(a.data(), b.data(), nullptr, a.size(), 500, 0.95, seed + 1);
        EXPECT_TRUE(x.low != y.low || x.high != y.high) << seed;
    }
}

TEST(PairedBootstrap, CoversTheTrueDifferenceInAboutTheConfidenceShare) {
    // E[a - b] = 0.3 * (0.5 - 0.5 * (1 - edge)) for the simulated scores.
    const double edge = 0.2, true_difference = 0.3 * 0.5 * edge;
    const int experiments = 200;
    int covered = 0;
    for (int e = 0; e < experiments; ++e) {
        std::vector<double> a, b;
        simulated_scores(1000 + uint64_t(e) * 7919, 400, edge, a, b);
        const auto got = paired_bootstrap(a.data(), b.data(), nullptr, a.size(), 400, 0.9, uint64_t(e));
        if (got.low <= true_difference && true_difference <= got.high) ++covered;
    }
    // 90% nominal; the binomial standard deviation over 200 experiments is about 2.1 points,
    // and percentile intervals run slightly narrow on samples this small.
    const double share = double(covered) / experiments;
    EXPECT_GE(share, 0.82);
    EXPECT_LE(share, 0.96);
}

TEST(PairedBootstrap, EqualScoresGiveAZeroInterval) {
    std::vector<double> a, b;
    simulated_scores(8, 1000, 0.3, a, b);
    const auto got = paired_bootstrap(a.data(), a.data(), nullptr, a.size(), 200, 0.95, 42);
    EXPECT_EQ(got.difference, 0.0);
    EXPECT_EQ(got.low, 0.0);
    EXPECT_EQ(got.high, 0.0);
    EXPECT_DOUBLE_EQ(got.mean_a, got.mean_b);
}

TEST(PairedBootstrap, NoCustomersGiveZeros) {
    const auto got = paired_bootstrap(nullptr, nullptr, nullptr, 0, 1000, 0.95, 42);
    EXPECT_EQ(got.customers, 0u);
    EXPECT_EQ(got.mean_a, 0.0);
    EXPECT_EQ(got.mean_b, 0.0);
    EXPECT_EQ(got.difference, 0.0);
    EXPECT_EQ(got.low, 0.0);
    EXPECT_EQ(got.high, 0.0);
}

TEST(PairedBootstrap, RefusesMeaninglessParameters) {
    const double a[] = {1.0, 0.0}, b[] = {0.0, 0.0};
    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (double confidence : {0.0, 1.0, -0.5, 1.5, nan})
        EXPECT_THROW(paired_bootstrap(a, b, nullptr, 2, 100, confidence, 1), recsys::Error) << confidence;
    EXPECT_THROW(paired_bootstrap(a, b, nullptr, 2, 0, 0.95, 1), recsys::Error);
}

TEST(PairedBootstrap, PollsOftenAndAThrowingPollStopsIt) {
    std::vector<double> a, b;
    simulated_scores(9, 50000, 0.1, a, b);
    size_t polls = 0;
    paired_bootstrap(a.data(), b.data(), nullptr, a.size(), 20, 0.95, 1, [&] { ++polls; });
    EXPECT_GE(polls, 20u * 50000u / 10000u);  // at least once every 10,000 draws

    size_t calls = 0;
    auto cancel = [&] {
        if (++calls == 3) throw std::runtime_error("canceling statement due to user request");
    };
    EXPECT_THROW(paired_bootstrap(a.data(), b.data(), nullptr, a.size(), 1000, 0.95, 1, cancel),
                 std::runtime_error);
    EXPECT_EQ(calls, 3u);  // stopped at once, not at the end
}

// Customers 0 .. n - 1 of segment "A" or "B" (and a few with no segment), age bands cycling.
Subpopulations segments_and_ages(size_t n, bool with_ages, bool with_segment_c) {
    Subpopulations groups(with_ages ? std::vector<std::string>{"segment", "age"} : std::vector<std::string>{"segment"});
    for (size_t c = 0; c < n; ++c) {
        std::vector<uint32_t> codes;
        if (c % 17 == 0) codes.push_back(Subpopulations::kNone);
        else codes.push_back(groups.code(0, c % 3 == 0 ? "B" : "A"));
        if (with_ages) codes.push_back(groups.code(1, recsys::age_band(18 + double(c % 60))));
        groups.add_customer(codes.data());
    }
    if (with_segment_c) {
        // Customers appended after the first n: segment "C" only.
        for (size_t c = 0; c < 300; ++c) {
            std::vector<uint32_t> codes{groups.code(0, "C")};
            if (with_ages) codes.push_back(Subpopulations::kNone);
            groups.add_customer(codes.data());
        }
    }
    return groups;
}

const SubpopulationComparison *find(const std::vector<SubpopulationComparison> &all, const std::string &dimension,
                                    const std::string &value) {
    for (const auto &s : all)
        if (s.dimension == dimension && s.value == value) return &s;
    return nullptr;
}

TEST(Subpopulations, CodesAreStableAndUnknownCodesRefused) {
    Subpopulations groups({"channel"});
    EXPECT_EQ(groups.code(0, "KAT"), 0u);
    EXPECT_EQ(groups.code(0, "KFC"), 1u);
    EXPECT_EQ(groups.code(0, "KAT"), 0u);
    EXPECT_EQ(groups.value_count(0), 2u);
    EXPECT_EQ(groups.label(0, 1), "KFC");
    const uint32_t bad = 7, none = Subpopulations::kNone, good = 1;
    EXPECT_THROW(groups.add_customer(&bad), recsys::Error);
    groups.add_customer(&none);
    groups.add_customer(&good);
    EXPECT_EQ(groups.customers(), 2u);
    EXPECT_EQ(groups.code_of(1, 0), 1u);
    EXPECT_THROW(groups.code(1, "x"), recsys::Error);
}

TEST(Subpopulations, EachValueIsResampledWithItsOwnDocumentedSeed) {
    // The FNV-1a test vectors of its authors' page.
    EXPECT_EQ(reference_fnv1a64(""), 0xcbf29ce484222325ull);
    EXPECT_EQ(reference_fnv1a64("a"), 0xaf63dc4c8601ec8cull);

    const size_t n = 3000;
    std::vector<double> a, b;
    std::vector<uint8_t> adder;
    simulated_scores(21, n, 0.1, a, b, &adder);
    const Subpopulations groups = segments_and_ages(n, true, false);
    const auto all = compare_subpopulations(groups, a.data(), b.data(), adder.data(), 200, 0.95, 42);

    // Dimension order, then label order; customers without a segment are in no segment value.
    std::vector<std::string> seen;
    for (const auto &s : all) seen.push_back(s.dimension + "=" + s.value);
    EXPECT_EQ(seen, (std::vector<std::string>{"segment=A", "segment=B", "age=25-34", "age=35-44", "age=45-54",
                                              "age=55-64", "age=65+", "age=<25"}));

    for (const auto &s : all) {
        std::vector<uint32_t> members;
        uint64_t adders = 0;
        const size_t dim = s.dimension == "segment" ? 0 : 1;
        for (uint32_t c = 0; c < n; ++c) {
            const uint32_t code = groups.code_of(c, dim);
            if (code != Subpopulations::kNone && groups.label(dim, code) == s.value) {
                members.push_back(c);
                adders += adder[c];
            }
        }
        const uint64_t seed = splitmix64(42 ^ reference_fnv1a64(s.dimension + "=" + s.value));
        expect_same(s.interval, reference_bootstrap(a, b, members, 200, 0.95, seed));
        EXPECT_EQ(s.adders, adders) << s.value;
    }
    size_t segment_customers = find(all, "segment", "A")->interval.customers + find(all, "segment", "B")->interval.customers;
    EXPECT_EQ(segment_customers, n - (n + 16) / 17);  // every 17th customer has no segment
}

TEST(Subpopulations, AnIntervalDoesNotDependOnTheOtherSubpopulations) {
    const size_t n = 2000;
    std::vector<double> a, b;
    simulated_scores(33, n + 300, 0.1, a, b);
    const auto alone = compare_subpopulations(segments_and_ages(n, false, false), a.data(), b.data(), nullptr, 300,
                                              0.95, 7);
    const auto crowded = compare_subpopulations(segments_and_ages(n, true, true), a.data(), b.data(), nullptr, 300,
                                                0.95, 7);
    ASSERT_EQ(alone.size(), 2u);
    ASSERT_NE(find(crowded, "segment", "C"), nullptr);
    for (const char *value : {"A", "B"}) {
        ASSERT_NE(find(crowded, "segment", value), nullptr);
        expect_same(find(alone, "segment", value)->interval, find(crowded, "segment", value)->interval);
        EXPECT_EQ(find(crowded, "segment", value)->adders, 0u);  // no adder flags given
    }
    // Different values get different streams even over the same customers' scores.
    EXPECT_NE(find(alone, "segment", "A")->interval.low, find(alone, "segment", "B")->interval.low);
}

TEST(Bands, AgeBoundariesAreInclusiveBelow) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    EXPECT_EQ(recsys::age_band(nan), "unknown");
    EXPECT_EQ(recsys::age_band(0), "<25");
    EXPECT_EQ(recsys::age_band(24.99), "<25");
    EXPECT_EQ(recsys::age_band(25), "25-34");
    EXPECT_EQ(recsys::age_band(34), "25-34");
    EXPECT_EQ(recsys::age_band(35), "35-44");
    EXPECT_EQ(recsys::age_band(44), "35-44");
    EXPECT_EQ(recsys::age_band(45), "45-54");
    EXPECT_EQ(recsys::age_band(55), "55-64");
    EXPECT_EQ(recsys::age_band(64.5), "55-64");
    EXPECT_EQ(recsys::age_band(65), "65+");
    EXPECT_EQ(recsys::age_band(164), "65+");
}

TEST(Bands, IncomeBoundariesAreInclusiveBelow) {
    EXPECT_EQ(recsys::income_band(std::numeric_limits<double>::quiet_NaN()), "unknown");
    EXPECT_EQ(recsys::income_band(0), "<50k");
    EXPECT_EQ(recsys::income_band(49999.99), "<50k");
    EXPECT_EQ(recsys::income_band(50000), "50k-100k");
    EXPECT_EQ(recsys::income_band(99999.99), "50k-100k");
    EXPECT_EQ(recsys::income_band(100000), "100k-200k");
    EXPECT_EQ(recsys::income_band(199999.99), "100k-200k");
    EXPECT_EQ(recsys::income_band(200000), "200k+");
    EXPECT_EQ(recsys::income_band(28894395.51), "200k+");
}

TEST(Bands, TenureBoundariesAndMissingValues) {
    EXPECT_EQ(recsys::tenure_band(std::numeric_limits<double>::quiet_NaN()), "unknown");
    EXPECT_EQ(recsys::tenure_band(-999999), "unknown");
    EXPECT_EQ(recsys::tenure_band(-1), "unknown");
    EXPECT_EQ(recsys::tenure_band(0), "new (<12 months)");
    EXPECT_EQ(recsys::tenure_band(11), "new (<12 months)");
    EXPECT_EQ(recsys::tenure_band(12), "1-5 years");
    EXPECT_EQ(recsys::tenure_band(59), "1-5 years");
    EXPECT_EQ(recsys::tenure_band(60), "5+ years");
    EXPECT_EQ(recsys::tenure_band(256), "5+ years");
}

}  // namespace
