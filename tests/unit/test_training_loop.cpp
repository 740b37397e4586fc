// Unit tests for the core training loop (src/core/training_loop.h) on generated customers
// served by an in-memory CustomerSource: the loss falls, early stopping keeps the best epoch's
// weights, the same seed gives the same weights, and a cancel leaves the model untouched.
#include <gtest/gtest.h>

#include <cstdint>
#include <stdexcept>
#include <vector>

#include "feature_encoder.h"
#include "month_evaluation.h"
#include "synthetic_customer_source.h"
#include "training_loop.h"

namespace recsys {
namespace {

using testing::kLastMonth;
using testing::SyntheticCustomerSource;
using testing::synthetic_model;

constexpr size_t kCustomers = 1200;

TrainingOptions small_options(uint32_t epochs, uint32_t patience) {
    TrainingOptions o;
    o.first_target = kLastMonth - 4;
    o.validation = kLastMonth;
    o.epochs = epochs;
    o.patience = patience;
    o.batch_size = 64;
    o.validation_batch = 128;
    o.adam.learning_rate = 0.01f;
    o.seed = 7;
    return o;
}

bool same_weights(const Model &a, const Model &b) {
    if (a.layers.size() != b.layers.size()) return false;
    for (size_t l = 0; l < a.layers.size(); ++l)
        if (a.layers[l].w_ih != b.layers[l].w_ih || a.layers[l].w_hh != b.layers[l].w_hh ||
            a.layers[l].b_ih != b.layers[l].b_ih || a.layers[l].b_hh != b.layers[l].b_hh)
            return false;
    return a.dense_w == b.dense_w && a.dense_b == b.dense_b;
}

struct TrainedRun {
    Model model;
    TrainingResult result;
    std::vector<EpochSummary> epochs;
    std::vector<TrainingProgress> progress;
    uint32_t stopped_without_improvement = 0, stopped_best = 0;
};

TrainedRun train(const TrainingOptions &options, CustomerSource &source, uint64_t init_seed = 11) {
    TrainedRun run{synthetic_model(6, 8, init_seed), {}, {}, {}};
    TrainingCallbacks callbacks;
    callbacks.progress_seconds = 0;  // every batch
    callbacks.progress = [&](const TrainingProgress &p) { run.progress.push_back(p); };
    callbacks.epoch_done = [&](const EpochSummary &e) { run.epochs.push_back(e); };
    callbacks.stopped_early = [&](uint32_t without, uint32_t best) {
        run.stopped_without_improvement = without;
        run.stopped_best = best;
    };
    run.result = train_model(run.model, source, options, callbacks);
    return run;
}

double validation_map(const Model &model, CustomerSource &source) {
    FeatureEncoder encoder(model);
    EvaluationOptions options;
    options.batch_size = 128;
    return evaluate_month(model, encoder, source, kLastMonth, options).lstm.map();
}

TEST(TrainingLoop, LossFallsAndCountsAreConsistent) {
    const Model probe = synthetic_model(6, 8, 11);
    SyntheticCustomerSource source(probe, kCustomers);
    const TrainedRun run = train(small_options(3, 5), source);
    ASSERT_FALSE(run.result.no_examples);
    ASSERT_EQ(run.epochs.size(), 3u);
    EXPECT_EQ(run.result.epochs_run, 3u);
    EXPECT_LT(run.epochs.back().train_loss, run.epochs.front().train_loss);
    EXPECT_LT(run.epochs.front().train_loss, 0.6);  // an untrained model's is about ln 2
    // Every customer-month pair with an add is an example, about 10% of the others.
    uint64_t pairs = 0, with_adds = 0;
    const HistoryBatch &h = source.all();
    const uint32_t P = probe.product_count();
    for (size_t c = 0; c < h.customer_count(); ++c)
        for (size_t r = h.row_begin[c] + 1; r < h.row_begin[c + 1]; ++r) {
            const int32_t m = h.month[r];
            if (m < kLastMonth - 4 || m >= kLastMonth || h.month[r - 1] != m - 1) continue;
            ++pairs;
            bool add = false;
            for (uint32_t p = 0; p < P; ++p) add = add || (h.products[r * P + p] && !h.products[(r - 1) * P + p]);
            with_adds += add;
        }
    EXPECT_EQ(run.result.candidates, pairs);
    EXPECT_GE(run.result.examples, with_adds);
    EXPECT_NEAR(double(run.result.examples - with_adds), 0.1 * double(pairs - with_adds), 0.03 * double(pairs));
    // Customers read: those with a row in the months the examples need.
    const int32_t first_row = training_first_month(probe, small_options(3, 5));
    EXPECT_EQ(first_row, kLastMonth - 4 - 1 - 6);
    uint64_t customers = 0, rows = 0;
    for (size_t c = 0; c < h.customer_count(); ++c) {
        uint64_t n = 0;
        for (size_t r = h.row_begin[c]; r < h.row_begin[c + 1]; ++r) n += h.month[r] >= first_row && h.month[r] < kLastMonth;
        customers += n > 0;
        rows += n;
    }
    EXPECT_EQ(run.result.customers, customers);
    EXPECT_EQ(run.result.rows, rows);
    // Progress: batches counted from 1 in each epoch, then one "validating" report.
    ASSERT_FALSE(run.progress.empty());
    EXPECT_EQ(run.progress.front().epoch, 1u);
    EXPECT_EQ(run.progress.front().batches, 1u);
    EXPECT_TRUE(run.progress.back().validating);
    EXPECT_EQ(run.progress.back().epoch, 3u);
    EXPECT_EQ(run.progress.back().examples, run.result.examples);
}

TEST(TrainingLoop, KeepsTheBestEpochAndStopsEarly) {
    const Model probe = synthetic_model(6, 8, 11);
    SyntheticCustomerSource source(probe, kCustomers);
    TrainingOptions options = small_options(6, 6);
    options.adam.learning_rate = 0.05f;  // noisy, so that some epoch is worse than an earlier one
    const TrainedRun full = train(options, source);
    ASSERT_EQ(full.epochs.size(), 6u);
    // The best epoch is the first with the highest validation MAP@7, and its weights are kept.
    uint32_t best = 1;
    for (const EpochSummary &e : full.epochs)
        if (e.validation_map7 > full.epochs[best - 1].validation_map7) best = e.epoch;
    EXPECT_EQ(full.result.best_epoch, best);
    EXPECT_EQ(full.result.best_evaluation.lstm.map(), full.epochs[best - 1].validation_map7);
    EXPECT_EQ(validation_map(full.model, source), full.epochs[best - 1].validation_map7);
    TrainingOptions until_best = options;
    until_best.epochs = best;
    EXPECT_TRUE(same_weights(train(until_best, source).model, full.model));

    // Patience 0: training stops at the first epoch that is not better than the best so far,
    // and keeps the best; the epochs before the stop are those of the full run.
    uint32_t stop = 0, best_so_far = 1;
    for (uint32_t e = 2; e <= 6 && stop == 0; ++e) {
        if (full.epochs[e - 1].validation_map7 > full.epochs[best_so_far - 1].validation_map7) best_so_far = e;
        else stop = e;
    }
    ASSERT_NE(stop, 0u) << "every epoch improved; raise the learning rate of this test";
    options.patience = 0;
    const TrainedRun early = train(options, source);
    EXPECT_EQ(early.result.epochs_run, stop);
    EXPECT_EQ(early.result.best_epoch, best_so_far);
    EXPECT_EQ(early.stopped_without_improvement, 1u);
    EXPECT_EQ(early.stopped_best, best_so_far);
    until_best.epochs = best_so_far;
    EXPECT_TRUE(same_weights(early.model, train(until_best, source).model));
}

TEST(TrainingLoop, SameSeedSameWeights) {
    const Model probe = synthetic_model(6, 8, 11);
    SyntheticCustomerSource source(probe, 600);
    const TrainedRun a = train(small_options(2, 2), source), b = train(small_options(2, 2), source);
    EXPECT_TRUE(same_weights(a.model, b.model));
    EXPECT_FALSE(same_weights(a.model, probe));
    EXPECT_EQ(a.result.examples, b.result.examples);
    TrainingOptions other = small_options(2, 2);
    other.seed = 8;  // another subsample of the examples without adds
    const TrainedRun c = train(other, source);
    EXPECT_FALSE(same_weights(a.model, c.model));
    EXPECT_NE(a.result.examples, c.result.examples);
    EXPECT_FALSE(same_weights(a.model, train(small_options(2, 2), source, 12).model));  // other initial weights
}

TEST(TrainingLoop, CancelLeavesTheModelUntouched) {
    const Model initial = synthetic_model(6, 8, 11);
    SyntheticCustomerSource source(initial, 600);
    const TrainedRun uninterrupted = train(small_options(2, 2), source);
    int total_polls = 0;
    {
        Model model = initial;
        TrainingCallbacks callbacks;
        callbacks.poll = [&] { ++total_polls; };
        train_model(model, source, small_options(2, 2), callbacks);
        ASSERT_TRUE(same_weights(model, uninterrupted.model));
        ASSERT_GT(total_polls, 100);
    }
    // A cancel inside the first batch, in the first epoch, and late in the second epoch (past
    // the first epoch's best weights).
    for (int cancel_at : {3, total_polls / 4, total_polls - 2}) {
        Model model = initial;
        TrainingCallbacks callbacks;
        int polls = 0;
        callbacks.poll = [&] {
            if (++polls == cancel_at) throw std::runtime_error("canceled");
        };
        EXPECT_THROW(train_model(model, source, small_options(2, 2), callbacks), std::runtime_error) << cancel_at;
        EXPECT_TRUE(same_weights(model, initial)) << cancel_at;
        // Nothing is left behind: the same model trains as if nothing had happened.
        train_model(model, source, small_options(2, 2), TrainingCallbacks{});
        EXPECT_TRUE(same_weights(model, uninterrupted.model)) << cancel_at;
    }
    Model model = initial;
    int customers = 0;
    source.before_customer = [&] {
        if (++customers == 1000) throw std::runtime_error("canceled in the stream");
    };
    EXPECT_THROW(train_model(model, source, small_options(2, 2), TrainingCallbacks{}), std::runtime_error);
    EXPECT_TRUE(same_weights(model, initial));
}

TEST(TrainingLoop, NoExamples) {
    const Model initial = synthetic_model(6, 8, 11);
    SyntheticCustomerSource source(initial, 100);
    // Targets before the data begins: no customer has two consecutive months there.
    TrainingOptions options = small_options(2, 2);
    options.first_target = testing::kFirstMonth - 10;
    options.validation = testing::kFirstMonth - 5;
    Model model = initial;
    const TrainingResult r = train_model(model, source, options, TrainingCallbacks{});
    EXPECT_TRUE(r.no_examples);
    EXPECT_EQ(r.examples, 0u);
    EXPECT_TRUE(same_weights(model, initial));
}

}  // namespace
}  // namespace recsys
