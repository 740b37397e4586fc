// Bounded memory and cancellation in the core:
//  - buffer_bytes(model), computed before allocating, equals what each object allocates;
//  - the poll callback is called often (at least once per kPollFlops of work), its exception
//    propagates, and the object stays usable with the caller's data untouched where promised;
//  - the pieces gemm_polled() splits a product into, and the time blocks of LstmForward,
//    give the same results as one product / one pass.
#include <cblas.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include "batch_memory.h"
#include "errors.h"
#include "feature_encoder.h"
#include "incremental_scorer.h"
#include "lstm_forward.h"
#include "lstm_training.h"
#include "polled_gemm.h"
#include "santander_features.h"

using namespace recsys;

namespace {

constexpr int32_t kStart = 2015 * 12;

Model make_model(uint32_t T, uint32_t H, uint32_t L, bool with_static, bool from_start = false, uint64_t seed = 3) {
    Model m;
    m.source = {"s.t", "id", "month"};
    m.window_months = T;
    m.hidden = H;
    m.include_product_adds = true;
    if (from_start) {
        m.history = HistoryMode::FromStartMonth;
        m.start_month = kStart;
    }
    FeatureSpec dyn;
    dyn.column = "balance";
    dyn.role = FeatureRole::Dynamic;
    dyn.mean = 1.0f;
    dyn.stddev = 2.0f;
    m.features = {dyn};
    if (with_static) {
        FeatureSpec stat;
        stat.column = "segment";
        stat.kind = FeatureKind::Categorical;
        stat.role = FeatureRole::Static;
        stat.vocabulary = {"a", "b", "c"};
        m.features.push_back(stat);
    }
    m.products = {"p0", "p1", "p2", "p3", "p4"};
    m.layers.resize(L);
    m.index();
    size_weights(m);
    initialize_weights(m, seed);
    return m;
}

std::vector<float> random_vector(size_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-scale, scale);
    std::vector<float> v(n);
    for (auto &x : v) x = u(rng);
    return v;
}

struct Stop : std::runtime_error {
    Stop() : std::runtime_error("stop") {}
};

// A poll that counts its calls and throws on call number `throw_at` (0: never).
struct CountingPoll {
    size_t calls = 0, throw_at = 0;
    PollFn fn() {
        return [this] {
            ++calls;
            if (throw_at != 0 && calls == throw_at) throw Stop();
        };
    }
};

double max_abs_diff(const float *a, const float *b, size_t n) {
    double worst = 0.0;
    for (size_t i = 0; i < n; ++i) worst = std::max(worst, double(std::fabs(a[i] - b[i])));
    return worst;
}

// ---------------------------------------------------------------------------------------------
// Bytes before allocating = bytes allocated

TEST(BatchMemory, BufferBytesEqualAllocations) {
    for (uint32_t T : {1u, 5u, 16u, 17u, 40u})
        for (uint32_t H : {1u, 7u, 33u})
            for (uint32_t L : {1u, 2u, 3u})
                for (bool with_static : {false, true})
                    for (size_t batch : {size_t(1), size_t(3), size_t(64)}) {
                        Model m = make_model(T, H, L, with_static, true);
                        const std::string shape = "T=" + std::to_string(T) + " H=" + std::to_string(H) +
                                                  " L=" + std::to_string(L) + " batch=" + std::to_string(batch);
                        EXPECT_EQ(LstmForward(m, batch).allocated_bytes(), LstmForward::buffer_bytes(m).total(batch))
                            << shape;
                        EXPECT_EQ(IncrementalScorer(m, batch).allocated_bytes(),
                                  IncrementalScorer::buffer_bytes(m).total(batch))
                            << shape;
                        EXPECT_EQ(LstmTrainer(m, batch).allocated_bytes(), LstmTrainer::buffer_bytes(m).total(batch))
                            << shape;
                        EXPECT_EQ(EncodedBatch(m, batch).allocated_bytes(), EncodedBatch::buffer_bytes(m).total(batch))
                            << shape;
                    }
}

TEST(BatchMemory, WeightBytesFromDimensions) {
    Model m = make_model(6, 9, 3, true);
    size_t floats = m.dense_w.size() + m.dense_b.size();
    for (const auto &l : m.layers) floats += l.w_ih.size() + l.w_hh.size() + l.b_ih.size() + l.b_hh.size();
    EXPECT_EQ(weight_bytes(m), floats * sizeof(float));
}

// The forward pass holds one block of time steps, so a customer costs the same whatever the window.
TEST(BatchMemory, ForwardBytesPerCustomerIndependentOfTheWindow) {
    const size_t at_block = LstmForward::buffer_bytes(make_model(LstmForward::kStepBlock, 64, 2, true)).per_customer;
    EXPECT_EQ(LstmForward::buffer_bytes(make_model(240, 64, 2, true)).per_customer, at_block);
    EXPECT_LT(LstmForward::buffer_bytes(make_model(4, 64, 2, true)).per_customer, at_block);
    // The trainer keeps every step for backpropagation: it grows with the window.
    EXPECT_GT(LstmTrainer::buffer_bytes(make_model(240, 64, 2, true)).per_customer,
              10 * LstmTrainer::buffer_bytes(make_model(16, 64, 2, true)).per_customer);
}

TEST(BatchMemory, TotalAndMaxBatch) {
    const BatchBytes b{100, 30};
    EXPECT_EQ(b.total(0), 100u);
    EXPECT_EQ(b.total(3), 190u);
    EXPECT_EQ(b.max_batch(190), 3u);
    EXPECT_EQ(b.max_batch(219), 3u);
    EXPECT_EQ(b.max_batch(129), 0u);
    EXPECT_EQ(b.max_batch(99), 0u);
    EXPECT_EQ(b.total(SIZE_MAX / 2), SIZE_MAX);  // saturates instead of wrapping
    EXPECT_EQ((b + BatchBytes{1, 2}).per_customer, 32u);
}

// ---------------------------------------------------------------------------------------------
// Pieces give the result of the whole

TEST(GemmPolled, PiecesEqualOneProduct) {
    struct Case {
        bool ta, tb;
        size_t M, N, K;
    };
    // Each is above kPollFlops; the third has a weight matrix above kPollWeightBytes (column
    // pieces), the fifth an output above it (row pieces of C).
    for (const Case c : {Case{false, true, 3000, 512, 100}, Case{false, false, 2500, 300, 120},
                         Case{false, true, 40, 4096, 1024}, Case{true, false, 512, 100, 3000},
                         Case{true, false, 2048, 1024, 64}}) {
        const size_t a_rows = c.ta ? c.K : c.M, a_cols = c.ta ? c.M : c.K;
        const size_t b_rows = c.tb ? c.N : c.K, b_cols = c.tb ? c.K : c.N;
        const auto A = random_vector(a_rows * a_cols, 1), B = random_vector(b_rows * b_cols, 2);
        const auto C0 = random_vector(c.M * c.N, 3);
        std::vector<float> whole = C0, pieces = C0;
        cblas_sgemm(CblasRowMajor, c.ta ? CblasTrans : CblasNoTrans, c.tb ? CblasTrans : CblasNoTrans, int(c.M), int(c.N),
                    int(c.K), 1.0f, A.data(), int(a_cols), B.data(), int(b_cols), 0.5f, whole.data(), int(c.N));
        CountingPoll counter;
        gemm_polled(c.ta, c.tb, c.M, c.N, c.K, A.data(), a_cols, B.data(), b_cols, 0.5f, pieces.data(), c.N,
                    counter.fn());
        EXPECT_LT(max_abs_diff(whole.data(), pieces.data(), whole.size()), 1e-3)
            << c.M << "x" << c.N << "x" << c.K;  // sums of up to 3000 products of +-1 values
        EXPECT_GE(double(counter.calls), 2.0 * c.M * c.N * c.K / kPollFlops) << c.M << "x" << c.N << "x" << c.K;
    }
}

TEST(GemmPolled, RowInitIsTheBias) {
    const size_t M = 5000, N = 64, K = 8;
    const auto A = random_vector(M * K, 4), W = random_vector(N * K, 5), bias = random_vector(N, 6);
    std::vector<float> expected(M * N), got(M * N, 123.0f);
    for (size_t r = 0; r < M; ++r) std::copy(bias.begin(), bias.end(), expected.begin() + r * N);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(M), int(N), int(K), 1.0f, A.data(), int(K), W.data(), int(K),
                1.0f, expected.data(), int(N));
    gemm_polled(false, true, M, N, K, A.data(), K, W.data(), K, 1.0f, got.data(), N, nullptr, bias.data());
    EXPECT_LT(max_abs_diff(expected.data(), got.data(), M * N), 1e-5);
}

// Windows longer than a block: the blocked scorer equals the trainer's unblocked forward pass.
TEST(LstmForwardBlocks, LongWindowsMatchTheTrainersForwardPass) {
    for (uint32_t T : {17u, 40u})
        for (uint32_t L : {1u, 3u}) {
            Model m = make_model(T, 24, L, true);
            const size_t B = 7, P = m.product_count();
            const auto steps = random_vector(size_t(T) * B * m.step_width(), 7);
            const auto statics = random_vector(B * m.static_width(), 8);
            std::vector<float> labels(B * P, 0.0f), mask(B * P, 1.0f), scores(B * P);
            LstmTrainer trainer(m, B);
            ModelGradients grads(m);
            LstmForward forward(m, B);
            for (size_t used : {size_t(0), size_t(T - 3)}) {  // all T steps, then fewer (from-start batches)
                trainer.forward_backward(steps.data(), statics.data(), labels.data(), mask.data(), B, grads, used);
                std::vector<uint32_t> lengths(B, uint32_t(used ? used : T));
                forward.score(steps.data(), statics.data(), B, scores.data(), used ? lengths.data() : nullptr);
                EXPECT_LT(max_abs_diff(scores.data(), trainer.last_scores(), B * P), 1e-6) << "T=" << T << " L=" << L;
            }
        }
}

// Running n steps then m more equals n + m, across block boundaries.
TEST(LstmForwardBlocks, RunInPartsEqualsRunAtOnce) {
    Model m = make_model(40, 16, 2, false);
    const size_t B = 3, SS = LstmForward(m, B).state_size();
    const auto steps = random_vector(size_t(40) * B * m.step_width(), 9);
    LstmForward forward(m, B);
    std::vector<float> once(B * SS, 0.0f), parts(B * SS, 0.0f);
    const std::vector<uint32_t> lengths = {40, 23, 0};
    forward.run(steps.data(), 40, B, lengths.data(), once.data());
    // Customer by customer lengths in two parts: 21 steps, then the remaining 19 (shifted).
    const std::vector<uint32_t> first = {21, 21, 0}, second = {19, 2, 0};
    forward.run(steps.data(), 21, B, first.data(), parts.data());
    forward.run(steps.data() + 21 * B * m.step_width(), 19, B, second.data(), parts.data());
    EXPECT_LT(max_abs_diff(once.data(), parts.data(), B * SS), 1e-6);
    for (size_t i = 2 * SS; i < 3 * SS; ++i) EXPECT_EQ(once[i], 0.0f);  // length 0: untouched
}

// ---------------------------------------------------------------------------------------------
// Polls: called often, exceptions propagate, objects stay usable

TEST(Poll, ForwardPollsAtLeastOncePerPieceOfWork) {
    Model m = make_model(20, 256, 2, true);
    const size_t B = 64, W = m.step_width(), H = m.hidden;
    const auto steps = random_vector(size_t(20) * B * W, 10), statics = random_vector(B * m.static_width(), 11);
    std::vector<float> scores(B * m.product_count());
    LstmForward forward(m, B);
    CountingPoll counter;
    forward.set_poll(counter.fn());
    forward.score(steps.data(), statics.data(), B, scores.data());
    const double flops = 2.0 * B * 20 * 4 * H * ((W + H) + (H + H));
    EXPECT_GE(double(counter.calls), flops / kPollFlops);
    EXPECT_GE(counter.calls, size_t(20 * 2));  // at least once per step and layer
}

TEST(Poll, ForwardExceptionPropagatesAndLeavesTheScorerUsable) {
    Model m = make_model(40, 32, 2, true);
    const size_t B = 6, P = m.product_count();
    const auto steps = random_vector(size_t(40) * B * m.step_width(), 12), statics = random_vector(B * m.static_width(), 13);
    std::vector<float> expected(B * P), scores(B * P);
    LstmForward fresh(m, B);
    fresh.score(steps.data(), statics.data(), B, expected.data());

    LstmForward forward(m, B);
    CountingPoll counter;
    forward.set_poll(counter.fn());
    forward.score(steps.data(), statics.data(), B, scores.data());
    const size_t total = counter.calls;
    ASSERT_GT(total, 4u);
    for (size_t at : {size_t(1), total / 2, total}) {
        counter.calls = 0;
        counter.throw_at = at;
        EXPECT_THROW(forward.score(steps.data(), statics.data(), B, scores.data()), Stop) << at;
        // run(): the caller's state is as it was.
        const size_t SS = forward.state_size();
        std::vector<float> state = random_vector(B * SS, 14, 0.5f), before = state;
        counter.calls = 0;
        EXPECT_THROW(forward.run(steps.data(), 40, B, nullptr, state.data()), Stop) << at;
        EXPECT_EQ(state, before);
        // And the next call is right.
        counter.throw_at = 0;
        forward.score(steps.data(), statics.data(), B, scores.data());
        EXPECT_EQ(scores, expected);
    }
}

TEST(Poll, IncrementalExceptionLeavesTheCallersArraysUntouched) {
    Model m = make_model(40, 16, 2, true, true);
    const size_t P = m.product_count();
    // Three customers: one advancing a month, one jumping 30 months (two blocks of steps), one new.
    HistoryBatch batch;
    batch.reset(m.features.size(), P);
    const std::vector<std::pair<int64_t, int32_t>> rows = {{1, kStart + 31}, {2, kStart + 31}, {3, kStart + 31}};
    for (const auto &[id, month] : rows) {
        batch.begin_customer(id);
        float *v;
        uint8_t *p;
        batch.add_row(month, &v, &p);
        v[0] = float(id);
        v[1] = float(id % 3);
        for (size_t i = 0; i < P; ++i) p[i] = uint8_t((id + i) % 2);
    }
    IncrementalScorer scorer(m, 3);
    const size_t SS = scorer.state_size();
    const std::vector<int32_t> months0 = {kStart + 30, kStart + 1, scorer.initial_month()};
    const std::vector<float> states0 = [&] {
        auto s = random_vector(3 * SS, 15, 0.5f);
        std::fill(s.begin() + 2 * SS, s.end(), 0.0f);
        return s;
    }();
    std::vector<int32_t> expected_months = months0;
    std::vector<float> expected_states = states0, expected_scores(3 * P);
    std::vector<uint8_t> expected_held(3 * P);
    {
        IncrementalScorer fresh(m, 3);
        fresh.advance(batch, 0, 3, expected_months.data(), expected_states.data(), expected_scores.data(),
                      expected_held.data());
    }
    CountingPoll counter;
    scorer.set_poll(counter.fn());
    {
        std::vector<int32_t> months = months0;
        std::vector<float> states = states0, scores(3 * P);
        std::vector<uint8_t> held(3 * P);
        scorer.advance(batch, 0, 3, months.data(), states.data(), scores.data(), held.data());
    }
    const size_t total = counter.calls;
    ASSERT_GT(total, 2u);
    for (size_t at = 1; at <= total; ++at) {
        std::vector<int32_t> months = months0;
        std::vector<float> states = states0, scores(3 * P, -1.0f);
        std::vector<uint8_t> held(3 * P, 7);
        counter.calls = 0;
        counter.throw_at = at;
        EXPECT_THROW(scorer.advance(batch, 0, 3, months.data(), states.data(), scores.data(), held.data()), Stop);
        EXPECT_EQ(months, months0);
        EXPECT_EQ(states, states0);
        EXPECT_EQ(scores, std::vector<float>(3 * P, -1.0f));
        EXPECT_EQ(held, std::vector<uint8_t>(3 * P, 7));
        counter.throw_at = 0;
        scorer.advance(batch, 0, 3, months.data(), states.data(), scores.data(), held.data());
        EXPECT_EQ(months, expected_months);
        EXPECT_EQ(states, expected_states);
        EXPECT_EQ(scores, expected_scores);
        EXPECT_EQ(held, expected_held);
    }
}

// The jump of 30 months (two blocks of steps) equals the full recompute from the start month.
TEST(IncrementalBlocks, LongJumpEqualsFullRecompute) {
    Model m = make_model(40, 16, 2, true, true);
    const size_t P = m.product_count();
    HistoryBatch full;
    full.reset(m.features.size(), P);
    full.begin_customer(1);
    float *v;
    uint8_t *p;
    for (int32_t month : {kStart, kStart + 30}) {
        full.add_row(month, &v, &p);
        v[0] = 0.5f * float(month - kStart);
        v[1] = 1.0f;
        for (size_t i = 0; i < P; ++i) p[i] = uint8_t(i % 2);
    }
    FeatureEncoder encoder(m);
    std::vector<float> steps(40 * m.step_width()), statics(m.static_width()), expected(P);
    std::vector<uint8_t> held(P);
    int32_t end;
    uint32_t length;
    encoder.encode(full, 0, 1, -1, steps.data(), statics.data(), held.data(), &end, &length);
    LstmForward forward(m, 1);
    forward.score(steps.data(), statics.data(), 1, expected.data(), &length);

    IncrementalScorer scorer(m, 1);
    std::vector<float> state(scorer.state_size(), 0.0f), scores(P);
    int32_t state_month = scorer.initial_month();
    HistoryBatch first;
    first.reset(m.features.size(), P);
    first.begin_customer(1);
    first.add_row(kStart, &v, &p);
    std::copy(full.values.begin(), full.values.begin() + 2, v);
    std::copy(full.products.begin(), full.products.begin() + P, p);
    scorer.advance(first, 0, 1, &state_month, state.data(), scores.data(), held.data());
    HistoryBatch second;
    second.reset(m.features.size(), P);
    second.begin_customer(1);
    second.add_row(kStart + 30, &v, &p);
    std::copy(full.values.begin() + 2, full.values.begin() + 4, v);
    std::copy(full.products.begin() + P, full.products.begin() + 2 * P, p);
    scorer.advance(second, 0, 1, &state_month, state.data(), scores.data(), held.data());
    EXPECT_EQ(state_month, kStart + 30);
    EXPECT_LT(max_abs_diff(scores.data(), expected.data(), P), 1e-5);
}

TEST(Poll, TrainerExceptionLeavesTheTrainerUsable) {
    Model m = make_model(20, 24, 2, true);
    Model reference_model = m;
    const size_t B = 9, P = m.product_count();
    const auto steps = random_vector(size_t(20) * B * m.step_width(), 16), statics = random_vector(B * m.static_width(), 17);
    std::vector<float> labels(B * P), mask(B * P, 1.0f);
    for (size_t i = 0; i < labels.size(); ++i) labels[i] = float(i % 3 == 0);
    auto step = [&](LstmTrainer &t, ModelGradients &g) {
        const double loss = t.forward_backward(steps.data(), statics.data(), labels.data(), mask.data(), B, g);
        t.adam_step(g);
        return loss;
    };

    // Reference: a trainer without polls, two steps.
    LstmTrainer reference(reference_model, B);
    ModelGradients reference_grads(reference_model);
    const double reference_loss0 = step(reference, reference_grads);
    const double reference_loss1 = step(reference, reference_grads);

    LstmTrainer trainer(m, B);
    ModelGradients grads(m);
    CountingPoll counter;
    trainer.set_poll(counter.fn());
    trainer.forward_backward(steps.data(), statics.data(), labels.data(), mask.data(), B, grads);
    const size_t polls = counter.calls;
    ASSERT_GT(polls, 3u);
    for (size_t at : {size_t(1), polls / 2, polls}) {
        counter.calls = 0;
        counter.throw_at = at;
        EXPECT_THROW(trainer.forward_backward(steps.data(), statics.data(), labels.data(), mask.data(), B, grads), Stop)
            << at;
    }
    counter.throw_at = 0;
    // The interrupted trainer continues exactly as the reference.
    EXPECT_EQ(step(trainer, grads), reference_loss0);
    EXPECT_EQ(step(trainer, grads), reference_loss1);
    EXPECT_EQ(m.layers[1].w_hh, reference_model.layers[1].w_hh);
    EXPECT_EQ(m.dense_w, reference_model.dense_w);
    EXPECT_EQ(trainer.steps_taken(), 2u);
}

// adam_step polls while it measures the gradient norm, before it changes anything.
TEST(Poll, AdamStepChangesNothingUntilItsLastPoll) {
    Model m = make_model(8, 16, 2, true), reference_model = m;
    const size_t B = 4, P = m.product_count();
    const auto steps = random_vector(size_t(8) * B * m.step_width(), 18), statics = random_vector(B * m.static_width(), 19);
    std::vector<float> labels(B * P, 1.0f), mask(B * P, 1.0f);
    LstmTrainer reference(reference_model, B);
    ModelGradients reference_grads(reference_model);
    reference.forward_backward(steps.data(), statics.data(), labels.data(), mask.data(), B, reference_grads);
    reference.adam_step(reference_grads);

    LstmTrainer trainer(m, B);
    ModelGradients grads(m);
    trainer.forward_backward(steps.data(), statics.data(), labels.data(), mask.data(), B, grads);
    const Model before = m;
    CountingPoll counter;
    trainer.set_poll(counter.fn());
    size_t thrown = 0;
    for (size_t at = 1;; ++at) {
        counter.calls = 0;
        counter.throw_at = at;
        try {
            trainer.adam_step(grads);
            break;
        } catch (const Stop &) {
            ++thrown;
            ASSERT_EQ(trainer.steps_taken(), 0u);
            for (size_t l = 0; l < m.layers.size(); ++l) {
                ASSERT_EQ(m.layers[l].w_ih, before.layers[l].w_ih);
                ASSERT_EQ(m.layers[l].b_hh, before.layers[l].b_hh);
            }
            ASSERT_EQ(m.dense_w, before.dense_w);
        }
    }
    EXPECT_EQ(thrown, 4 * m.layers.size() + 2);  // one poll per (small) tensor
    EXPECT_EQ(trainer.steps_taken(), 1u);
    EXPECT_EQ(m.layers[0].w_ih, reference_model.layers[0].w_ih);
    EXPECT_EQ(m.dense_b, reference_model.dense_b);
}

}  // namespace
