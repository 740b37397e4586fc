// Incremental scoring equals a full recompute: states advanced month by month (with gaps,
// late joiners and multi-month jumps) give the same scores as running the whole history, also
// past the model's window (against the same weights with a window that holds the history).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "errors.h"
#include "from_start_test_model.h"
#include "feature_encoder.h"
#include "incremental_scorer.h"
#include "lstm_forward.h"
#include "lstm_training.h"
#include "santander_features.h"

using namespace recsys;

namespace {

using test_models::kStart;

// This file's tests name the layers first, with a window of 10 by default.
Model from_start_model(uint32_t layers, uint32_t window = 10) { return test_models::from_start_model(window, layers); }

struct Row {
    int64_t id;
    int32_t month;
    float balance, age;
    uint8_t products[4];
};

std::vector<Row> history() {
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    const std::vector<std::pair<int64_t, std::vector<int>>> customers = {
        {1, {0, 1, 2, 3, 4, 5}},  // every month
        {2, {2, 3, 4, 5}},        // joins later
        {3, {0, 1, 3, 4, 5}},     // a gap
        {4, {5}},                 // new in the last month
        {5, {0, 1, 2, 3, 5}},     // a gap just before the last month
        {6, {1, 4, 5}},           // two gaps
    };
    std::vector<Row> rows;
    for (const auto &[id, months] : customers)
        for (int m : months) {
            Row r{id, kStart + m, u(rng) * 5.0f, 20.0f + 50.0f * u(rng), {}};
            for (auto &p : r.products) p = u(rng) < 0.4f ? 1 : 0;
            if (u(rng) < 0.1f) r.balance = NAN;  // a missing value
            rows.push_back(r);
        }
    return rows;
}

void append(HistoryBatch &batch, const Row &r) {
    float *v;
    uint8_t *p;
    batch.add_row(r.month, &v, &p);
    v[0] = r.balance;
    v[1] = r.age;
    std::copy(r.products, r.products + 4, p);
}

class IncrementalScorerTest : public ::testing::TestWithParam<uint32_t> {};

// Advances `m` month by month and compares with the full recompute of `reference` (the same
// weights, a window that holds the whole history).
void expect_month_by_month_equals_full_recompute(const Model &m, const Model &reference) {
    const auto rows = history();
    const size_t P = m.product_count();

    // Full recompute over each customer's whole history.
    HistoryBatch full;
    full.reset(m.features.size(), P);
    for (const Row &r : rows) {
        if (full.customer_ids.empty() || full.customer_ids.back() != r.id) full.begin_customer(r.id);
        append(full, r);
    }
    const size_t n = full.customer_count();
    FeatureEncoder encoder(reference);
    LstmForward forward(reference, n);
    std::vector<float> steps(reference.window_months * n * m.step_width()), statics(n * m.static_width()),
        expected(n * P);
    std::vector<uint8_t> held(n * P);
    std::vector<int32_t> end(n);
    std::vector<uint32_t> lengths(n);
    encoder.encode(full, 0, n, -1, steps.data(), statics.data(), held.data(), end.data(), lengths.data());
    forward.score(steps.data(), statics.data(), n, expected.data(), lengths.data());

    // Incremental: each month, customers with a snapshot advance from their stored state.
    IncrementalScorer scorer(m, n);
    std::vector<float> states(n * scorer.state_size(), 0.0f), scores(n * P);
    std::vector<int32_t> state_month(n, scorer.initial_month());
    std::vector<std::vector<uint8_t>> last_products(n);
    std::vector<float> final_scores(n * P, -1.0f);
    for (int32_t month = kStart; month <= kStart + 5; ++month) {
        HistoryBatch step;
        step.reset(m.features.size(), P);
        std::vector<size_t> who;
        for (size_t c = 0; c < n; ++c) {
            const Row *now = nullptr;
            for (const Row &r : rows)
                if (r.id == full.customer_ids[c] && r.month == month) now = &r;
            if (!now) continue;
            step.begin_customer(now->id);
            if (state_month[c] == month - 1 && !last_products[c].empty()) {  // the stored products of M - 1
                Row previous = *now;
                previous.month = month - 1;
                std::copy(last_products[c].begin(), last_products[c].end(), previous.products);
                append(step, previous);
            }
            append(step, *now);
            who.push_back(c);
        }
        const size_t k = who.size();
        std::vector<float> s(k * scorer.state_size()), sc(k * P);
        std::vector<int32_t> sm(k);
        std::vector<uint8_t> h(k * P);
        for (size_t i = 0; i < k; ++i) {
            std::copy_n(states.begin() + who[i] * scorer.state_size(), scorer.state_size(), s.begin() + i * scorer.state_size());
            sm[i] = state_month[who[i]];
        }
        scorer.advance(step, 0, k, sm.data(), s.data(), sc.data(), h.data());
        for (size_t i = 0; i < k; ++i) {
            const size_t c = who[i];
            std::copy_n(s.begin() + i * scorer.state_size(), scorer.state_size(), states.begin() + c * scorer.state_size());
            state_month[c] = sm[i];
            last_products[c].assign(h.begin() + i * P, h.begin() + (i + 1) * P);
            std::copy_n(sc.begin() + i * P, P, final_scores.begin() + c * P);
            EXPECT_EQ(sm[i], month);
        }
    }
    double worst = 0;
    for (size_t i = 0; i < n * P; ++i) worst = std::max(worst, double(std::fabs(final_scores[i] - expected[i])));
    EXPECT_LT(worst, 1e-5) << "incremental scores differ from the full recompute";
    // The scores are not trivially equal (the test would pass on constant outputs otherwise).
    double spread = 0;
    for (size_t i = 1; i < n * P; ++i) spread = std::max(spread, double(std::fabs(expected[i] - expected[0])));
    EXPECT_GT(spread, 1e-3);
}

TEST_P(IncrementalScorerTest, MonthByMonthEqualsFullRecompute) {
    const Model m = from_start_model(GetParam());
    expect_month_by_month_equals_full_recompute(m, m);
}

TEST_P(IncrementalScorerTest, PastTheWindowEqualsFullRecompute) {
    // Trained on 3 months, advanced through 6 (and customer 6 jumps 3 months at once).
    expect_month_by_month_equals_full_recompute(from_start_model(GetParam(), 3), from_start_model(GetParam()));
}

INSTANTIATE_TEST_SUITE_P(Layers, IncrementalScorerTest, ::testing::Values(1u, 2u));

TEST(IncrementalScorer, RefusesSlidingWindowModels) {
    Model m = from_start_model(1);
    m.history = HistoryMode::SlidingWindow;
    m.start_month = 0;
    EXPECT_THROW(IncrementalScorer(m, 4), Error);
}

TEST(IncrementalScorer, RefusesGoingBackInTime) {
    const Model m = from_start_model(1);
    IncrementalScorer scorer(m, 1);
    HistoryBatch batch;
    batch.reset(m.features.size(), m.product_count());
    batch.begin_customer(1);
    append(batch, Row{1, kStart + 2, 1.0f, 30.0f, {1, 0, 0, 0}});
    std::vector<float> states(scorer.state_size()), scores(m.product_count());
    std::vector<uint8_t> held(m.product_count());
    int32_t state_month = kStart + 2;  // already at that month
    EXPECT_THROW(scorer.advance(batch, 0, 1, &state_month, states.data(), scores.data(), held.data()), Error);
}

// encode() (training, evaluation) reads one window; the batch scoring paths encode longer
// histories in parts (test_batch_scoring.cpp).
TEST(IncrementalScorer, OneWindowEncodeRefusesHistoriesLongerThanTheWindow) {
    const Model m = from_start_model(1);
    HistoryBatch batch;
    batch.reset(m.features.size(), m.product_count());
    batch.begin_customer(1);
    append(batch, Row{1, kStart + int32_t(m.window_months), 1.0f, 30.0f, {0, 0, 0, 0}});
    FeatureEncoder encoder(m);
    std::vector<float> steps(m.window_months * m.step_width()), statics(m.static_width());
    std::vector<uint8_t> held(m.product_count());
    int32_t end;
    uint32_t length;
    EXPECT_THROW(encoder.encode(batch, 0, 1, -1, steps.data(), statics.data(), held.data(), &end, &length), Error);
}

}  // namespace

namespace {

// Training a from-start model runs each batch for the months since the start (fewer than T):
// the trainer's scores must then equal the forward pass over sequences of that length.
TEST(FromStartTraining, TrainerWithFewerStepsMatchesForwardWithLengths) {
    Model m = from_start_model(2);
    const size_t B = 5, W = m.step_width(), S = m.static_width(), P = m.product_count(), T = m.window_months;
    const size_t steps_used = 4;
    std::mt19937 rng(9);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> steps(T * B * W, 0.0f), statics(B * S), labels(B * P, 0.0f), mask(B * P, 1.0f);
    for (size_t i = 0; i < steps_used * B * W; ++i) steps[i] = u(rng);
    for (auto &x : statics) x = u(rng);
    LstmTrainer trainer(m, B);
    ModelGradients grads(m);
    trainer.forward_backward(steps.data(), statics.data(), labels.data(), mask.data(), B, grads, steps_used);
    std::vector<uint32_t> lengths(B, uint32_t(steps_used));
    std::vector<float> expected(B * P);
    LstmForward forward(m, B);
    forward.score(steps.data(), statics.data(), B, expected.data(), lengths.data());
    for (size_t i = 0; i < B * P; ++i) EXPECT_NEAR(trainer.last_scores()[i], expected[i], 1e-6) << i;
    // And differs from running all T steps (the later slices are zero, not absent).
    std::vector<float> all_steps(B * P);
    forward.score(steps.data(), statics.data(), B, all_steps.data());
    double diff = 0;
    for (size_t i = 0; i < B * P; ++i) diff = std::max(diff, double(std::fabs(all_steps[i] - expected[i])));
    EXPECT_GT(diff, 1e-4);
}

}  // namespace
