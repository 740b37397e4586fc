// The one feature pipeline: turns raw monthly snapshots into LSTM inputs, driven only by
// the feature spec stored in the model. Serving and training both call it.
#pragma once

#include <cstdint>
#include <vector>

#include "history.h"
#include "model.h"

namespace recsys {

// Window of one customer: the T months ending at the customer's latest month (or at
// as_of_month when given). A month missing from the data, including months before the
// customer's first snapshot, is an all-zero step: the model sees "no snapshot", exactly as
// in training. "Added" flags compare a month with the month before it and are 0 when that
// month is absent.
class FeatureEncoder {
public:
    explicit FeatureEncoder(const Model &model);

    uint32_t window() const { return window_; }
    uint32_t step_width() const { return step_width_; }
    uint32_t static_width() const { return static_width_; }
    bool history_from_start() const { return model_.history == HistoryMode::FromStartMonth; }

    // Encodes customers [first, first + count) of the batch.
    //   steps:   time-major, T x count x step_width (step t of customer b at (t*count + b))
    //   statics: count x static_width
    //   held:    count x P, the product flags of each customer's last month in the window
    //            (all zero when that month is absent); used to exclude held products
    // end_month[b] is the month the window ends at (the customer's latest month when
    // as_of_month < 0, else as_of_month; rows after it are ignored).
    // FromStartMonth models: step t is month start_month + t, the sequence ends at
    // end_month, and lengths[b] (required) receives its number of steps; a customer with more
    // months since the start than the model's window is refused (DataException).
    void encode(const HistoryBatch &batch, size_t first, size_t count, int32_t as_of_month, float *steps,
                float *statics, uint8_t *held, int32_t *end_month, uint32_t *lengths = nullptr) const;

    // A FromStartMonth model's sequences of any length, one part of T steps at a time (the
    // batch scoring paths past the model's window: batch_scoring.h). As encode(), except that
    // step t is month start_month + first_step + t, lengths[b] receives how many of customer
    // b's steps fall in [first_step, first_step + T) (0 once its sequence has ended), and no
    // customer is refused for having more months than the window. Returns the longest
    // sequence of the batch in steps (months from the start month to the end month): the
    // caller encodes parts first_step = 0, T, 2T, ... below it, carrying each customer's
    // state from one part to the next.
    uint32_t encode_part(const HistoryBatch &batch, size_t first, size_t count, int32_t as_of_month,
                         uint32_t first_step, float *steps, float *statics, uint8_t *held, int32_t *end_month,
                         uint32_t *lengths) const;

    // One step's input for month row r of `batch` (r_previous: the customer's row for the
    // month before, or SIZE_MAX when there is none), as encode() writes it.
    void encode_step(const HistoryBatch &batch, size_t r, size_t r_previous, float *step) const;
    // The static input from month row r.
    void encode_statics(const HistoryBatch &batch, size_t r, float *statics) const;

    // Encodes one feature value (raw numeric or categorical code) into out[0..width).
    void encode_feature(const FeatureSpec &f, float raw, float *out) const;

private:
    // encode() (refuse_past_window, first_step 0) and encode_part().
    uint32_t encode_steps(const HistoryBatch &batch, size_t first, size_t count, int32_t as_of_month,
                          uint32_t first_step, bool refuse_past_window, float *steps, float *statics, uint8_t *held,
                          int32_t *end_month, uint32_t *lengths) const;

    const Model &model_;
    uint32_t window_, step_width_, static_width_, products_;
    bool adds_;
    std::vector<uint32_t> dynamic_features_, static_features_;
};

// Throws DataException if a raw numeric value is NaN or infinite: the glue reports the
// customer, month and column.
bool is_finite_value(float v);

}  // namespace recsys
