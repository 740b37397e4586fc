// The training loop of recsys.train(), apart from the database: epochs over the customers of
// a CustomerSource, one example per (customer, target month), mini-batch Adam steps, a
// validation evaluation after each epoch (the core month evaluation), early stopping with
// patience, and the best epoch's weights kept.
//
// Each customer's rows give one example per target month m (inputs end at m - 1, labels =
// products held in m but not in m - 1, mask = products not held in m - 1). Examples fill
// mini-batches of batch_size and every full batch takes one Adam step, so memory holds one
// mini-batch (and what the source buffers), never the data.
//
// Subsampling: an example whose customer adds nothing in the target month is kept with
// probability no_add_sample_rate (a hash of seed, customer and month decides, so runs are
// reproducible); examples with at least one add are always kept. Adds are ~3.5% of
// customer-months, so this cuts an epoch ~7x while keeping most of the signal; the ranking
// within a customer, which is all MAP@7 sees, is hardly affected by the shifted base rate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

#include "batch_memory.h"
#include "customer_source.h"
#include "lstm_training.h"
#include "model.h"
#include "month_evaluation.h"
#include "polled_gemm.h"

namespace recsys {

constexpr double kNoAddSampleRate = 0.1;

struct TrainingOptions {
    int32_t first_target = 0;  // the first target month (month index)
    int32_t validation = 0;    // the validation month: targets run from first_target to validation - 1
    uint32_t epochs = 5;
    uint32_t patience = 2;  // epochs without a better validation MAP@7 before stopping
    size_t batch_size = 256;
    size_t validation_batch = 256;  // customers scored together by the validation evaluation
    AdamOptions adam;
    uint64_t seed = 1;
    double no_add_sample_rate = kNoAddSampleRate;
};

// Where an epoch stands, for a progress display.
struct TrainingProgress {
    uint32_t epoch = 0, epochs = 0;
    bool validating = false;  // the epoch's examples are done; the validation month is scored
    uint64_t batches = 0, examples = 0;
    double mean_loss = 0;  // over the epoch's examples so far
};

// One finished epoch.
struct EpochSummary {
    uint32_t epoch = 0, epochs = 0;
    double train_loss = 0, validation_map7 = 0;
    uint64_t validation_customers = 0, examples = 0;
    double examples_per_second = 0, seconds = 0;  // examples over the epoch's training time; whole epoch
};

struct TrainingCallbacks {
    // During an epoch, at most every progress_seconds, and once before each validation.
    std::function<void(const TrainingProgress &)> progress;
    double progress_seconds = 2.0;
    std::function<void(const EpochSummary &)> epoch_done;
    // Early stopping: no improvement for `epochs_without_improvement` epochs; best_epoch is kept.
    std::function<void(uint32_t epochs_without_improvement, uint32_t best_epoch)> stopped_early;
    // Called between batches and inside the LSTM's work; may throw to stop the training.
    PollFn poll;
};

struct TrainingResult {
    // No target month of any customer gave an example (nothing was trained; the model is
    // unchanged). The rest is meaningful only when false.
    bool no_examples = false;
    MonthEvaluation best_evaluation{0};
    double best_train_loss = 0;
    uint32_t best_epoch = 0, epochs_run = 0;
    // Of the last epoch: rows read, customers read, examples used, and candidate examples
    // (customer-months with the month before, before subsampling).
    uint64_t rows = 0, customers = 0, examples = 0, candidates = 0;
    double train_seconds = 0;  // all epochs, validation excluded
};

// Whether the example of `customer` for target month `month` without adds is kept.
bool keep_no_add_example(uint64_t seed, double rate, int64_t customer, int32_t month);

// The first month of rows the training reads: the window before the first target's inputs,
// or the start month of a from-start model. It reads up to validation - 1 for training and
// evaluation_first_month(model, validation, {}) .. validation for validation.
int32_t training_first_month(const Model &model, const TrainingOptions &options);

// Bytes the loop allocates besides the model: the trainer (LstmTrainer::buffer_bytes), the
// gradients, the best epoch's copy and the working copy of the weights, and the example
// batches (one per target month for a from-start model) of batch_size customers. The
// validation's evaluation_bytes() come on top, while the trainer is held.
BatchBytes training_bytes(const Model &model, const TrainingOptions &options);

// Trains `model` (weights initialised by the caller) and leaves the best epoch's weights in it.
// The work happens on a copy: if a callback or the source throws (a cancel), `model` is
// exactly as it was passed in. With no examples, returns no_examples and leaves it unchanged.
TrainingResult train_model(Model &model, CustomerSource &source, const TrainingOptions &options,
                           const TrainingCallbacks &callbacks);

}  // namespace recsys
