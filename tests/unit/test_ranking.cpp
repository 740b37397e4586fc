// top_k: exclusion of held products, ordering, ties, short lists.
#include "core/ranking.h"

#include <gtest/gtest.h>

#include <vector>

namespace {

using recsys::Ranked;
using recsys::top_k;

std::vector<uint32_t> products_of(const std::vector<Ranked> &r) {
    std::vector<uint32_t> out;
    for (const auto &x : r) out.push_back(x.product);
    return out;
}

TEST(Ranking, OrdersByScoreDescending) {
    const std::vector<float> scores = {0.1f, 0.9f, 0.5f, 0.7f, 0.3f};
    const std::vector<uint8_t> held(5, 0);
    const auto r = top_k(scores.data(), held.data(), 5, 3);
    ASSERT_EQ(r.size(), 3u);
    EXPECT_EQ(products_of(r), (std::vector<uint32_t>{1, 3, 2}));
    EXPECT_FLOAT_EQ(r[0].score, 0.9f);
    EXPECT_FLOAT_EQ(r[1].score, 0.7f);
    EXPECT_FLOAT_EQ(r[2].score, 0.5f);
}

TEST(Ranking, ExcludesHeldProducts) {
    const std::vector<float> scores = {0.1f, 0.9f, 0.5f, 0.7f, 0.3f};
    const std::vector<uint8_t> held = {0, 1, 0, 1, 0};
    const auto r = top_k(scores.data(), held.data(), 5, 3);
    EXPECT_EQ(products_of(r), (std::vector<uint32_t>{2, 4, 0}));
    for (const auto &x : r) EXPECT_EQ(held[x.product], 0) << x.product;
}

TEST(Ranking, NullHeldExcludesNothing) {
    const std::vector<float> scores = {0.2f, 0.4f};
    const auto r = top_k(scores.data(), nullptr, 2, 5);
    EXPECT_EQ(products_of(r), (std::vector<uint32_t>{1, 0}));
}

TEST(Ranking, TiesBrokenByProductIndex) {
    const std::vector<float> scores = {0.5f, 0.8f, 0.5f, 0.8f, 0.5f, 0.1f};
    const std::vector<uint8_t> held(6, 0);
    const auto r = top_k(scores.data(), held.data(), 6, 6);
    EXPECT_EQ(products_of(r), (std::vector<uint32_t>{1, 3, 0, 2, 4, 5}));
    // The cut at k falls within a tie: the lower indices win.
    const auto r2 = top_k(scores.data(), held.data(), 6, 3);
    EXPECT_EQ(products_of(r2), (std::vector<uint32_t>{1, 3, 0}));
}

TEST(Ranking, TiesWithManyEqualScoresAreDeterministic) {
    std::vector<float> scores(50, 0.25f);
    std::vector<uint8_t> held(50, 0);
    held[0] = held[7] = 1;
    const auto r = top_k(scores.data(), held.data(), 50, 5);
    EXPECT_EQ(products_of(r), (std::vector<uint32_t>{1, 2, 3, 4, 5}));
}

TEST(Ranking, FewerThanKWhenNotEnoughEligible) {
    const std::vector<float> scores = {0.1f, 0.9f, 0.5f, 0.7f};
    const std::vector<uint8_t> held = {1, 0, 1, 0};
    const auto r = top_k(scores.data(), held.data(), 4, 10);
    EXPECT_EQ(products_of(r), (std::vector<uint32_t>{1, 3}));
    const std::vector<uint8_t> all_held(4, 1);
    EXPECT_TRUE(top_k(scores.data(), all_held.data(), 4, 3).empty());
}

TEST(Ranking, KZeroReturnsNothing) {
    const std::vector<float> scores = {0.1f, 0.9f};
    const std::vector<uint8_t> held(2, 0);
    EXPECT_TRUE(top_k(scores.data(), held.data(), 2, 0).empty());
}

TEST(Ranking, ZeroProducts) {
    EXPECT_TRUE(top_k(nullptr, nullptr, 0, 3).empty());
}

TEST(Ranking, NegativeAndExtremeScores) {
    const std::vector<float> scores = {-1.0f, 0.0f, 1e-30f, -1e-30f};
    const std::vector<uint8_t> held(4, 0);
    const auto r = top_k(scores.data(), held.data(), 4, 4);
    EXPECT_EQ(products_of(r), (std::vector<uint32_t>{2, 1, 3, 0}));
}

}  // namespace
