// Continuing a from-start model's recurrence from a state equals the full computation: from
// the zero state, from a state one month or a few months behind, from a state at the latest
// month (head only), with gaps and a month before the start; and past the model's window it
// equals the same weights scored by a model whose window is long enough (the independent full
// recurrence of FeatureEncoder::encode + LstmForward::score).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "errors.h"
#include "from_start_test_model.h"
#include "feature_encoder.h"
#include "lstm_forward.h"
#include "lstm_training.h"
#include "santander_features.h"
#include "state_continuation.h"

using namespace recsys;

namespace {

using test_models::from_start_model;
using test_models::history;
using test_models::kStart;
using test_models::one_window_scores;

// Customer c's rows up to (and including) month `last`, as a batch of one.
HistoryBatch prefix(const HistoryBatch &b, size_t c, int32_t last) {
    HistoryBatch out;
    out.reset(b.feature_count, b.product_count);
    out.begin_customer(b.customer_ids[c]);
    for (size_t r = b.row_begin[c]; r < b.row_begin[c + 1]; ++r) {
        if (b.month[r] > last) break;
        float *v;
        uint8_t *p;
        out.add_row(b.month[r], &v, &p);
        std::copy_n(b.values.data() + r * b.feature_count, b.feature_count, v);
        std::copy_n(b.products.data() + r * b.product_count, b.product_count, p);
    }
    return out;
}

const std::vector<std::vector<int>> kCustomers = {
    {0, 1, 2, 3, 4, 5, 6, 7},  // every month
    {-1, 0, 1, 2, 5, 6, 7},    // a month before the start, a gap
    {3, 4, 7},                 // joins late, a gap before the last month
    {7},                       // new in the last month
    {-3, -2},                  // only before the start: zero state, statics of the latest row
};

}  // namespace

class StateContinuationTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(StateContinuationTest, FromZeroStateEqualsFullComputation) {
    const Model m = from_start_model(10, GetParam());
    const HistoryBatch b = history(kCustomers, 5);
    const std::vector<float> expected = one_window_scores(m, b);
    StateContinuation cont(m);
    const size_t P = m.product_count();
    for (size_t c = 0; c < b.customer_count(); ++c) {
        std::vector<float> state(cont.state_size(), 0.0f), scores(P);
        std::vector<uint8_t> held(P);
        cont.score(b, c, cont.initial_month(), state.data(), scores.data(), held.data());
        for (size_t p = 0; p < P; ++p) EXPECT_NEAR(scores[p], expected[c * P + p], 1e-5) << "customer " << c;
        const size_t last = b.row_begin[c + 1] - 1;
        for (size_t p = 0; p < P; ++p) EXPECT_EQ(held[p], b.products[last * P + p]);
    }
}

TEST_P(StateContinuationTest, FromAStoredStateEqualsFullComputation) {
    const Model m = from_start_model(10, GetParam());
    const HistoryBatch b = history(kCustomers, 6);
    const std::vector<float> expected = one_window_scores(m, b);
    StateContinuation cont(m);
    const size_t P = m.product_count();
    for (size_t c = 0; c < 3; ++c) {
        const int32_t latest = b.month[b.row_begin[c + 1] - 1];
        // States at each snapshot month of the customer: 0 (head only), 1, or several months behind.
        for (size_t r = b.row_begin[c]; r < b.row_begin[c + 1]; ++r) {
            const int32_t state_month = b.month[r];
            if (state_month < kStart) continue;
            std::vector<float> state(cont.state_size(), 0.0f), scores(P);
            std::vector<uint8_t> held(P);
            // The state after state_month, as the write path stores it: the history up to it.
            const HistoryBatch before = prefix(b, c, state_month);
            cont.score(before, 0, cont.initial_month(), state.data(), scores.data(), held.data());
            // Continued with the rows from state_month on (the state month's row gives "added").
            HistoryBatch since;
            since.reset(b.feature_count, P);
            since.begin_customer(b.customer_ids[c]);
            for (size_t q = r; q < b.row_begin[c + 1]; ++q) {
                float *v;
                uint8_t *p;
                since.add_row(b.month[q], &v, &p);
                std::copy_n(b.values.data() + q * b.feature_count, b.feature_count, v);
                std::copy_n(b.products.data() + q * P, P, p);
            }
            const size_t steps = cont.score(since, 0, state_month, state.data(), scores.data(), held.data());
            EXPECT_EQ(steps, size_t(latest - state_month));
            for (size_t p = 0; p < P; ++p)
                EXPECT_NEAR(scores[p], expected[c * P + p], 1e-5) << "customer " << c << " state month " << state_month;
        }
    }
}

TEST_P(StateContinuationTest, PastTheWindowEqualsALongerWindow) {
    // 25 and 31 months since the start on a model trained with a window of 10: three and
    // four blocks of steps. The same weights with a window of 32 are the independent result.
    const Model m = from_start_model(10, GetParam());
    Model longer = m;
    longer.window_months = 32;
    longer.index();
    std::vector<int> every, gaps;
    for (int i = 0; i < 25; ++i) every.push_back(i);
    for (int i = -1; i < 31; ++i)
        if (i % 7 != 3) gaps.push_back(i);
    const HistoryBatch b = history({every, gaps}, 8);
    const std::vector<float> expected = one_window_scores(longer, b);
    StateContinuation cont(m);
    const size_t P = m.product_count();
    for (size_t c = 0; c < 2; ++c) {
        std::vector<float> state(cont.state_size(), 0.0f), scores(P);
        std::vector<uint8_t> held(P);
        cont.score(b, c, cont.initial_month(), state.data(), scores.data(), held.data());
        for (size_t p = 0; p < P; ++p) EXPECT_NEAR(scores[p], expected[c * P + p], 1e-5) << "customer " << c;
    }
    // encode() still refuses such a history in one window (training and evaluation); the batch
    // scoring paths encode it in parts (test_batch_scoring.cpp).
    EXPECT_THROW(one_window_scores(m, b), Error);
}

INSTANTIATE_TEST_SUITE_P(Layers, StateContinuationTest, ::testing::Values(1u, 2u));

TEST(StateContinuation, RefusesASlidingWindowModel) {
    Model m = from_start_model(10, 1);
    m.history = HistoryMode::SlidingWindow;
    EXPECT_THROW(StateContinuation{m}, Error);
}
