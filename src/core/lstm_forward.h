// Batched LSTM forward pass: per block of time steps and per layer, one fused gate GEMM for the
// block's inputs, one recurrent GEMM per time step, vectorised cell updates, then a dense
// sigmoid head.
//
// Memory: the gate and hidden-sequence buffers hold one block of kStepBlock time steps, not
// the whole window, so a customer costs the same whatever the window (buffer_bytes()).
// Cancellation: with set_poll(), the poll is called between GEMM pieces of bounded work
// (polled_gemm.h) and between groups of cell updates, so a long batch can be stopped within
// milliseconds. A throwing poll leaves the object usable; run() leaves the caller's state as
// it was, score() and head() leave their outputs undefined.
// Precision: a bf16 or int8 model (Model::precision) runs its three products with the
// reduced-precision kernels (reduced_precision.h); the constructor throws
// Error(FeatureNotSupported) when this CPU has none for it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "batch_memory.h"
#include "model.h"
#include "polled_gemm.h"
#include "reduced_precision.h"

namespace recsys {

class LstmForward {
public:
    // Time steps processed together by one input-projection GEMM (and held in the buffers).
    static constexpr size_t kStepBlock = 16;

    // Buffers are sized for batches of up to max_batch customers and reused across calls.
    LstmForward(const Model &model, size_t max_batch);

    // What the constructor allocates for a model: fixed + per_customer x max_batch bytes.
    static BatchBytes buffer_bytes(const Model &model);
    // What this object holds (its vectors' capacities), = buffer_bytes(model).total(max_batch).
    size_t allocated_bytes() const;

    // Called between pieces of work (see the file comment); empty (the default) for none.
    void set_poll(PollFn poll) { poll_ = std::move(poll); }

    size_t max_batch() const { return max_batch_; }
    size_t step_block() const { return block_; }
    // Floats of one customer's recurrent state: for each layer, h (H floats) then c (H).
    size_t state_size() const { return model_.state_size(); }

    // Scores customers from a zero initial state. steps: T x batch x step_width
    // (time-major), statics: batch x static_width, scores: batch x P (sigmoid
    // probabilities of adding each product next month). lengths (optional, per customer):
    // the number of leading steps that belong to the customer; its state after its last
    // step feeds the head (FromStartMonth models). Without lengths every customer has T.
    void score(const float *steps, const float *statics, size_t batch, float *scores,
               const uint32_t *lengths = nullptr);

    // One part of every customer's sequence for score_parts(): the steps [first_step,
    // first_step + T) (T x batch x step_width, time-major; only the first n_steps =
    // min(T, total_steps - first_step) are read) and, through *lengths, how many of them
    // belong to each customer (0 once its sequence has ended).
    using PartFn = std::function<const float *(size_t first_step, const uint32_t **lengths)>;

    // score() for sequences of up to total_steps steps, more than the buffers' T (a from-start
    // model past its window: docs/online-scoring.md). part() is called for first_step = 0,
    // T, 2T, ... below total_steps, in order; each customer's state carries from one part to
    // the next in this object's scratch, so the scores equal those of one sequence of
    // total_steps steps, at the cost of those steps (the last part runs only the steps left).
    // statics: as score()'s, read after the last part.
    void score_parts(size_t total_steps, const PartFn &part, const float *statics, size_t batch, float *scores);

    // Advances each customer's state (batch x state_size(), read and written) through
    // n_steps steps (n_steps x batch x step_width, time-major), or through its first
    // lengths[b] of them when lengths is given (0 leaves the state as it is). Running n steps
    // and then m more equals running n + m. If the poll throws, state is left unchanged.
    void run(const float *steps, size_t n_steps, size_t batch, const uint32_t *lengths, float *state);

    // The final hidden state of the last layer after the last score() without lengths (batch x H).
    const float *last_hidden() const { return h_.data(); }

    // Scores from states (batch x state_size()): sigmoid(W [h of the last layer, statics] + b).
    void head(const float *state, const float *statics, size_t batch, float *scores);

private:
    // run() on `state` in place.
    void advance(const float *steps, size_t n_steps, size_t batch, const uint32_t *lengths, float *state);
    // C (M x N, row stride ldc) = row_init + A · Wᵀ, or C += A · Wᵀ without row_init; A is M x K
    // (stride K), W is N x K: in float32, or with `reduced` (null for a float32 model).
    void project(const float *A, size_t M, size_t K, const float *W, const ReducedMatrix *reduced, size_t N, float *C,
                 size_t ldc, const float *row_init);

    const Model &model_;
    size_t max_batch_;
    size_t T_, H_, P_, S_, block_;
    PollFn poll_;
    Buffer<float> gates_;          // block x batch x 4H: input projections, then per-step pre-activations
    Buffer<float> seq_a_, seq_b_;  // block x batch x H: hidden sequences between layers
    Buffer<float> h_, c_;          // batch x H
    Buffer<float> head_in_;        // batch x (H + S)
    std::vector<float> bias_;      // layers x 4H: b_ih + b_hh, summed once
    Buffer<float> state_;          // batch x state_size(): scratch for score(), staging for run()
    ReducedPrecisionWeights reduced_;  // a bf16 or int8 model's packed weights (empty for float32)
};

}  // namespace recsys
