// The batch paths' compute (score_batch) on a from-start model past its window: customers with
// more months since the start than the window run in parts of T steps and get the scores and
// states of the whole sequence, equal (within 1e-5) to the online path (StateContinuation)
// and to the same weights in a model whose window holds the whole sequence (the independent
// full computation). Within the window, and for sliding-window models, score_batch is the
// single encode and forward pass it always was (bit for bit).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include "batch_scoring.h"
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
constexpr uint32_t kWindow = 6;

// The same weights with another window: the independent computation of a longer sequence.
Model with_window(const Model &m, uint32_t window) {
    Model longer = m;
    longer.window_months = window;
    longer.index();
    return longer;
}

std::vector<int> months(int from, int to, int skip_every = 0) {
    std::vector<int> out;
    for (int i = from; i <= to; ++i)
        if (skip_every == 0 || i % skip_every != 2) out.push_back(i);
    return out;
}

// The online path: each customer continued from the zero state, and its final state.
void online_scores(const Model &m, const HistoryBatch &b, std::vector<float> *scores, std::vector<float> *states) {
    StateContinuation cont(m);
    const size_t n = b.customer_count(), P = m.product_count(), SS = cont.state_size();
    scores->assign(n * P, 0.0f);
    states->assign(n * SS, 0.0f);
    std::vector<uint8_t> held(P);
    for (size_t c = 0; c < n; ++c)
        cont.score(b, c, cont.initial_month(), states->data() + c * SS, scores->data() + c * P, held.data());
}

class BatchScoringTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(BatchScoringTest, PastTheWindowEqualsTheOnlinePathAndALongerWindow) {
    const Model m = from_start_model(kWindow, GetParam());
    // Sequences of W, W + 1 and W + 3 months, 4W + 1 months with gaps, one that left before
    // the window's end, one with nothing after the month before the start, and one starting
    // late; every part boundary is crossed by someone.
    const HistoryBatch b = history({months(0, kWindow - 1), months(-1, kWindow), months(0, kWindow + 2),
                                    months(-1, 4 * kWindow, 5), months(2, 3), {-1}, months(kWindow + 1, 2 * kWindow)},
                                   21);
    const size_t n = b.customer_count(), P = m.product_count(), SS = m.state_size();
    std::vector<float> online, online_states;
    online_scores(m, b, &online, &online_states);
    const std::vector<float> longer = one_window_scores(with_window(m, 4 * kWindow + 1), b);

    FeatureEncoder encoder(m);
    for (size_t max_batch : {n, size_t(2)}) {  // the whole group at once, or in small batches
        LstmForward forward(m, max_batch);
        EncodedBatch buf(m, max_batch);
        for (bool keep_states : {false, true}) {
            std::vector<float> states(max_batch * SS, -7.0f);
            for (size_t first = 0; first < n; first += max_batch) {
                const size_t count = std::min(max_batch, n - first);
                uint32_t expected_longest = 0;
                for (size_t c = first; c < first + count; ++c)
                    expected_longest = std::max<uint32_t>(
                        expected_longest, uint32_t(std::max(0, b.month[b.row_begin[c + 1] - 1] - kStart + 1)));
                const uint32_t longest =
                    score_batch(m, encoder, forward, buf, b, first, count, keep_states ? states.data() : nullptr);
                EXPECT_EQ(longest, expected_longest);
                for (size_t i = 0; i < count; ++i) {
                    const size_t c = first + i;
                    EXPECT_EQ(buf.end_month[i], b.month[b.row_begin[c + 1] - 1]);
                    for (size_t p = 0; p < P; ++p) {
                        EXPECT_NEAR(buf.scores[i * P + p], online[c * P + p], 1e-5) << "customer " << c;
                        EXPECT_NEAR(buf.scores[i * P + p], longer[c * P + p], 1e-5) << "customer " << c;
                        EXPECT_EQ(buf.held[i * P + p], b.products[(b.row_begin[c + 1] - 1) * P + p]);
                    }
                    if (!keep_states) continue;
                    for (size_t s = 0; s < SS; ++s)
                        EXPECT_NEAR(states[i * SS + s], online_states[c * SS + s], 1e-5) << "customer " << c;
                }
            }
        }
    }
}

TEST_P(BatchScoringTest, WithinTheWindowItIsTheSingleForwardPass) {
    const Model m = from_start_model(kWindow, GetParam());
    const HistoryBatch b = history({months(0, kWindow - 1), months(-1, 3), months(1, kWindow - 1, 3), {-1}}, 5);
    const size_t n = b.customer_count(), P = m.product_count();
    const std::vector<float> expected = one_window_scores(m, b);
    FeatureEncoder encoder(m);
    LstmForward forward(m, n);
    EncodedBatch buf(m, n);
    EXPECT_EQ(score_batch(m, encoder, forward, buf, b, 0, n), kWindow);
    for (size_t i = 0; i < n * P; ++i) EXPECT_EQ(buf.scores[i], expected[i]) << i;
}

INSTANTIATE_TEST_SUITE_P(Layers, BatchScoringTest, ::testing::Values(1u, 2u));

TEST(BatchScoring, SlidingWindowModelsReadTheLatestWindow) {
    Model m = from_start_model(kWindow, 1);
    m.history = HistoryMode::SlidingWindow;
    // Histories longer than the window: a sliding model reads their latest T months.
    const HistoryBatch b = history({months(0, 3 * kWindow), months(-1, kWindow + 1, 4)}, 9);
    const size_t n = b.customer_count(), P = m.product_count();
    const std::vector<float> expected = one_window_scores(m, b);
    FeatureEncoder encoder(m);
    LstmForward forward(m, n);
    EncodedBatch buf(m, n);
    EXPECT_EQ(score_batch(m, encoder, forward, buf, b, 0, n), kWindow);
    for (size_t i = 0; i < n * P; ++i) EXPECT_EQ(buf.scores[i], expected[i]) << i;
    std::vector<float> states(n * m.state_size());
    EXPECT_THROW(score_batch(m, encoder, forward, buf, b, 0, n, states.data()), Error);
}

TEST(BatchScoring, APartIsTheSliceOfTheLongerSequence) {
    const Model m = from_start_model(kWindow, 1);
    const Model longer = with_window(m, 3 * kWindow);
    const HistoryBatch b = history({months(-1, 3 * kWindow - 1, 4), months(0, kWindow + 1), months(0, 2)}, 3);
    const size_t n = b.customer_count(), W = m.step_width(), S = m.static_width(), P = m.product_count();
    FeatureEncoder encoder(m), long_encoder(longer);
    std::vector<float> long_steps(longer.window_months * n * W), long_statics(n * S);
    std::vector<uint8_t> long_held(n * P);
    std::vector<int32_t> long_end(n);
    std::vector<uint32_t> long_lengths(n);
    long_encoder.encode(b, 0, n, -1, long_steps.data(), long_statics.data(), long_held.data(), long_end.data(),
                        long_lengths.data());
    EXPECT_EQ(long_lengths, (std::vector<uint32_t>{3 * kWindow, kWindow + 2, 3}));
    // encode() keeps refusing a sequence longer than the window (training and evaluation).
    std::vector<float> steps(kWindow * n * W, 777.0f), statics(n * S);
    std::vector<uint8_t> held(n * P);
    std::vector<int32_t> end(n);
    std::vector<uint32_t> lengths(n);
    EXPECT_THROW(encoder.encode(b, 0, n, -1, steps.data(), statics.data(), held.data(), end.data(), lengths.data()),
                 Error);
    for (uint32_t first_step = 0; first_step < 3 * kWindow; first_step += kWindow) {
        EXPECT_EQ(encoder.encode_part(b, 0, n, -1, first_step, steps.data(), statics.data(), held.data(), end.data(),
                                      lengths.data()),
                  3 * kWindow);
        for (size_t c = 0; c < n; ++c) {
            const uint32_t total = long_lengths[c];
            EXPECT_EQ(lengths[c], total > first_step ? std::min(total - first_step, kWindow) : 0u) << c;
        }
        for (size_t t = 0; t < kWindow; ++t)
            for (size_t i = 0; i < n * W; ++i)
                ASSERT_EQ(steps[t * n * W + i], long_steps[(first_step + t) * n * W + i])
                    << "step " << first_step + t << " element " << i;
        EXPECT_EQ(statics, long_statics);
        EXPECT_EQ(held, long_held);
        EXPECT_EQ(end, long_end);
    }
}

TEST(BatchScoring, ACancelStopsTheLaterParts) {
    const Model m = from_start_model(kWindow, 1);
    const HistoryBatch b = history({months(0, 5 * kWindow), months(0, 4 * kWindow)}, 4);
    const size_t n = b.customer_count(), P = m.product_count();
    FeatureEncoder encoder(m);
    LstmForward forward(m, n);
    EncodedBatch buf(m, n);
    score_batch(m, encoder, forward, buf, b, 0, n);
    const std::vector<float> expected(buf.scores.begin(), buf.scores.begin() + n * P);
    // The poll runs at least once a part (between parts): a cancel there stops the batch.
    size_t polls = 0;
    forward.set_poll([&] { ++polls; });
    score_batch(m, encoder, forward, buf, b, 0, n);
    EXPECT_GE(polls, 6u);
    size_t left = 3;
    forward.set_poll([&] {
        if (left-- == 0) throw std::runtime_error("cancel");
    });
    EXPECT_THROW(score_batch(m, encoder, forward, buf, b, 0, n), std::runtime_error);
    // The forward pass is usable after the cancel, with the same results.
    forward.set_poll(PollFn());
    score_batch(m, encoder, forward, buf, b, 0, n);
    for (size_t i = 0; i < n * P; ++i) EXPECT_EQ(buf.scores[i], expected[i]);
}

}  // namespace
