// Incremental scoring for models whose history runs from a fixed start month: a customer's
// LSTM state after month m is all that is needed to score month m + 1, so a new monthly
// snapshot advances the stored state by one step (or by the months since it, through
// all-zero steps for months without a snapshot) instead of re-reading and re-running the
// whole history. The result equals a full recompute (tested to 1e-5). Months past the
// model's window advance like any other: the recurrence has no window (the extrapolation
// docs/online-scoring.md describes).
#pragma once

#include <cstdint>
#include <vector>

#include "batch_memory.h"
#include "feature_encoder.h"
#include "history.h"
#include "lstm_forward.h"
#include "model.h"
#include "polled_gemm.h"

namespace recsys {

class IncrementalScorer {
public:
    IncrementalScorer(const Model &model, size_t max_batch);

    // What the constructor allocates for batches (its LstmForward included): fixed +
    // per_customer x max_batch bytes. The encoder's per-feature tables are not counted.
    static BatchBytes buffer_bytes(const Model &model);
    size_t allocated_bytes() const;

    // Called between pieces of work (LstmForward::set_poll); empty for none.
    void set_poll(PollFn poll) { forward_.set_poll(std::move(poll)); }

    size_t state_size() const { return forward_.state_size(); }
    // The month of a customer's state before any snapshot: the zero state.
    int32_t initial_month() const { return model_.start_month - 1; }

    // Customers [first, first + count) of `batch`: each customer's LAST row is the new
    // month M to advance to; a row just before it for month M - 1, if present, supplies the
    // products that M's "added" flags compare with (pass the stored products there).
    // state_month[b] is the month states[b] is at (initial_month() for none); it must be
    // before M. On return states[b] and state_month[b] are at M, scores[b] holds the
    // probabilities for month M + 1 and held[b] the products of month M. If it throws (bad
    // input, or the poll), none of state_month, states, scores and held has been written.
    void advance(const HistoryBatch &batch, size_t first, size_t count, int32_t *state_month, float *states,
                 float *scores, uint8_t *held);

private:
    const Model &model_;
    FeatureEncoder encoder_;
    LstmForward forward_;
    size_t max_batch_;
    Buffer<float> steps_;                   // block x batch x step_width: one block of steps of a group
    Buffer<float> group_states_, statics_;  // batch x state_size(), batch x static_width: by group
    Buffer<float> group_scores_;            // batch x P, by group
    Buffer<uint32_t> steps_of_;             // batch: steps each customer advances
    Buffer<size_t> order_;                  // batch: customers grouped by steps
};

}  // namespace recsys
