// One customer of a model whose history runs from a fixed start month, scored by continuing
// the recurrence from a known state: the zero state before the start month, or a state stored
// after some month. Runs only the months after that state, up to the customer's latest
// snapshot, then the head. This is the online path's compute (recommend() from
// recsys.customer_states), and the full computation for a customer with more months since the
// start than the model's window: the recurrence has no window, so a model kept in production
// longer than the span it was trained on goes on scoring by running more steps (the
// extrapolation docs/online-scoring.md describes). Within the window it equals
// FeatureEncoder::encode + LstmForward::score (tested to 1e-5).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "feature_encoder.h"
#include "history.h"
#include "lstm_forward.h"
#include "model.h"
#include "polled_gemm.h"

namespace recsys {

class StateContinuation {
public:
    // model: a FromStartMonth model (InvalidParameter otherwise), which must outlive this.
    explicit StateContinuation(const Model &model);

    void set_poll(PollFn poll) { forward_.set_poll(std::move(poll)); }
    size_t state_size() const { return forward_.state_size(); }
    // The month the zero state is "after": the month before the model's start month.
    int32_t initial_month() const { return model_.start_month - 1; }

    // Customer c of `history` (at least one row, rows ascending by month). state (state_size()
    // floats, read and written) is the customer's state after month state_month
    // (initial_month() with all zeros for none; never after the customer's latest month).
    // Advances it through every month from state_month + 1 to the customer's latest month (a
    // month without a snapshot is an all-zero step, as in training), then writes scores (P
    // probabilities for the month after the latest) and held (the latest month's products).
    // The row for state_month, when the batch holds it, gives the first step's "added" flags;
    // earlier rows are ignored. Returns the number of steps run. If it throws (bad input, the
    // poll) state may be partly advanced: the caller discards it.
    size_t score(const HistoryBatch &history, size_t c, int32_t state_month, float *state, float *scores,
                 uint8_t *held);

private:
    const Model &model_;
    FeatureEncoder encoder_;
    LstmForward forward_;
    std::vector<float> steps_;    // step_block() x step_width: one block of steps
    std::vector<float> statics_;  // static_width
};

}  // namespace recsys
