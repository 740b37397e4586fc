#include "training_loop.h"

#include <chrono>
#include <memory>
#include <vector>

#include "errors.h"
#include "example_batch.h"
#include "feature_encoder.h"
#include "splitmix64.h"

namespace recsys {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct WeightsSnapshot {
    std::vector<LstmLayer> layers;
    std::vector<float> dense_w, dense_b;
    void take(const Model &m) {
        layers = m.layers;
        dense_w = m.dense_w;
        dense_b = m.dense_b;
    }
    void restore(Model &m) const {
        m.layers = layers;
        m.dense_w = dense_w;
        m.dense_b = dense_b;
    }
};

bool from_start(const Model &model) { return model.history == HistoryMode::FromStartMonth; }

// A sliding-window model mixes target months in one batch. A from-start model's sequences
// grow with the month, so it keeps one batch per target month, each run for exactly the
// months since the start.
size_t example_batch_count(const Model &model, const TrainingOptions &options) {
    return from_start(model) ? size_t(options.validation - options.first_target) : 1;
}

}  // namespace

bool keep_no_add_example(uint64_t seed, double rate, int64_t customer, int32_t month) {
    const uint64_t h = splitmix64(splitmix64(seed ^ 0x7261696E) ^ splitmix64(uint64_t(customer)) ^ uint64_t(month));
    return double(h >> 11) * (1.0 / 9007199254740992.0) < rate;
}

int32_t training_first_month(const Model &model, const TrainingOptions &options) {
    return from_start(model) ? model.start_month : options.first_target - 1 - int32_t(model.window_months);
}

BatchBytes training_bytes(const Model &model, const TrainingOptions &options) {
    BatchBytes need = LstmTrainer::buffer_bytes(model);
    need.fixed += 3 * weight_bytes(model);  // gradients, the best epoch's copy, the working copy
    need.per_customer += example_batch_count(model, options) * ExampleBatch::buffer_bytes(model).per_customer;
    return need;
}

TrainingResult train_model(Model &model, CustomerSource &source, const TrainingOptions &options,
                           const TrainingCallbacks &callbacks) {
    if (options.epochs == 0 || options.batch_size == 0 || options.validation_batch == 0)
        fail(ErrorKind::InvalidParameter, "epochs, batch_size and the validation batch must be at least 1");
    if (options.first_target >= options.validation)
        fail(ErrorKind::InvalidParameter, "the first target month must come before the validation month");
    if (from_start(model) && options.first_target - 1 < model.start_month)
        fail(ErrorKind::InvalidParameter, "a from-start model's first target month must follow its start month");
    const uint32_t P = model.product_count();
    const int32_t first_target = options.first_target, validation = options.validation;

    // Everything below changes `working`, never `model`, until the last line.
    Model working = model;
    FeatureEncoder encoder(working);
    LstmTrainer trainer(working, options.batch_size, options.adam);
    trainer.set_poll(callbacks.poll);
    ModelGradients grads(working);
    std::vector<std::unique_ptr<ExampleBatch>> batches;
    for (size_t i = 0; i < example_batch_count(working, options); ++i)
        batches.push_back(std::make_unique<ExampleBatch>(encoder, options.batch_size, P));
    auto batch_for = [&](int32_t target) -> ExampleBatch & {
        return *batches[from_start(working) ? size_t(target - first_target) : 0];
    };
    auto steps_for = [&](int32_t target) -> size_t {
        return from_start(working) ? size_t(target - working.start_month) : 0;  // inputs end at target - 1
    };

    TrainingResult result;
    WeightsSnapshot best;
    double best_map = -1.0;
    uint32_t since_best = 0;

    for (uint32_t epoch = 1; epoch <= options.epochs; ++epoch) {
        const Clock::time_point epoch_start = Clock::now();
        Clock::time_point last_report = epoch_start - std::chrono::hours(1);
        TrainingProgress progress;
        progress.epoch = epoch;
        progress.epochs = options.epochs;
        uint64_t epoch_customers = 0, epoch_candidates = 0;
        double loss_sum = 0.0;
        auto step = [&](int32_t target) {
            ExampleBatch &batch = batch_for(target);
            if (batch.size() == 0) return;
            batch.finish();
            const double loss = trainer.forward_backward(batch.steps(), batch.statics(), batch.labels(), batch.mask(),
                                                         batch.size(), grads, steps_for(target));
            trainer.adam_step(grads);
            loss_sum += loss * double(batch.size());
            progress.examples += batch.size();
            ++progress.batches;
            batch.clear();
            poll(callbacks.poll);
            if (callbacks.progress && seconds_since(last_report) >= callbacks.progress_seconds) {
                last_report = Clock::now();
                progress.mean_loss = loss_sum / double(progress.examples);
                callbacks.progress(progress);
            }
        };
        const uint64_t epoch_rows = source.for_each_customer(
            training_first_month(working, options), validation, [&](const HistoryBatch &h, size_t c) {
                ++epoch_customers;
                for (int32_t m = first_target; m < validation; ++m) {
                    const long rp = find_month_row(h, c, m - 1);
                    if (rp < 0) continue;
                    const long rm = find_month_row(h, c, m);
                    if (rm < 0) continue;
                    ++epoch_candidates;
                    const uint8_t *now = h.products.data() + size_t(rm) * P;
                    const uint8_t *before = h.products.data() + size_t(rp) * P;
                    bool any_add = false;
                    for (uint32_t p = 0; p < P; ++p) any_add = any_add || (now[p] && !before[p]);
                    if (!any_add && !keep_no_add_example(options.seed, options.no_add_sample_rate, h.customer_ids[c], m))
                        continue;
                    ExampleBatch &batch = batch_for(m);
                    const size_t slot = batch.add(h, c, m - 1);
                    float *labels = batch.labels(slot), *mask = batch.mask(slot);
                    for (uint32_t p = 0; p < P; ++p) {
                        labels[p] = now[p] && !before[p] ? 1.0f : 0.0f;
                        mask[p] = before[p] ? 0.0f : 1.0f;
                    }
                    if (batch.full()) step(m);
                }
            });
        for (int32_t m = first_target; m < validation; ++m) step(m);  // the last, partial batches
        const double epoch_train_seconds = seconds_since(epoch_start);
        result.train_seconds += epoch_train_seconds;
        result.rows = epoch_rows;
        result.customers = epoch_customers;
        result.examples = progress.examples;
        result.candidates = epoch_candidates;
        if (progress.examples == 0) {
            result.no_examples = true;
            return result;
        }
        const double train_loss = loss_sum / double(progress.examples);

        if (callbacks.progress) {
            progress.validating = true;
            progress.mean_loss = train_loss;
            callbacks.progress(progress);
        }
        EvaluationOptions evaluation;
        evaluation.batch_size = options.validation_batch;
        evaluation.poll = callbacks.poll;
        MonthEvaluation ev = evaluate_month(working, encoder, source, validation, evaluation);
        ++result.epochs_run;
        const double map7 = ev.lstm.map();
        if (callbacks.epoch_done) {
            EpochSummary summary;
            summary.epoch = epoch;
            summary.epochs = options.epochs;
            summary.train_loss = train_loss;
            summary.validation_map7 = map7;
            summary.validation_customers = ev.lstm.customers();
            summary.examples = progress.examples;
            summary.examples_per_second = double(progress.examples) / epoch_train_seconds;
            summary.seconds = seconds_since(epoch_start);
            callbacks.epoch_done(summary);
        }
        if (map7 > best_map) {
            best_map = map7;
            result.best_epoch = epoch;
            result.best_train_loss = train_loss;
            best.take(working);
            result.best_evaluation = std::move(ev);
            since_best = 0;
        } else if (++since_best > options.patience) {
            if (callbacks.stopped_early) callbacks.stopped_early(since_best, result.best_epoch);
            break;
        }
    }
    best.restore(model);
    return result;
}

}  // namespace recsys
