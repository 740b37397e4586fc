// Batched LSTM forward pass: one fused gate GEMM per layer for all time steps' inputs,
// one recurrent GEMM per time step, vectorised cell updates, then a dense sigmoid head.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "model.h"

namespace recsys {

class LstmForward {
public:
    // Buffers are sized for batches of up to max_batch customers and reused across calls.
    LstmForward(const Model &model, size_t max_batch);

    size_t max_batch() const { return max_batch_; }
    // Floats of one customer's recurrent state: for each layer, h (H floats) then c (H).
    size_t state_size() const { return model_.layers.size() * 2 * H_; }

    // Scores customers from a zero initial state. steps: T x batch x step_width
    // (time-major), statics: batch x static_width, scores: batch x P (sigmoid
    // probabilities of adding each product next month). lengths (optional, per customer):
    // the number of leading steps that belong to the customer; its state after its last
    // step feeds the head (FromStartMonth models). Without lengths every customer has T.
    void score(const float *steps, const float *statics, size_t batch, float *scores,
               const uint32_t *lengths = nullptr);

    // Advances each customer's state (batch x state_size(), read and written) through
    // n_steps steps (n_steps x batch x step_width, time-major), or through its first
    // lengths[b] of them when lengths is given (0 leaves the state as it is).
    void run(const float *steps, size_t n_steps, size_t batch, const uint32_t *lengths, float *state);

    // The final hidden state of the last layer after the last score() without lengths (batch x H).
    const float *last_hidden() const { return h_.data(); }

    // Scores from states (batch x state_size()): sigmoid(W [h of the last layer, statics] + b).
    void head(const float *state, const float *statics, size_t batch, float *scores);

private:
    const Model &model_;
    size_t max_batch_;
    size_t T_, H_, P_, S_;
    std::vector<float> gates_;          // T x batch x 4H: input projections, then per-step pre-activations
    std::vector<float> seq_a_, seq_b_;  // T x batch x H: hidden sequences between layers
    std::vector<float> h_, c_;          // batch x H
    std::vector<float> head_in_;        // batch x (H + S)
    std::vector<float> bias_;           // layers x 4H: b_ih + b_hh, summed once
    std::vector<float> state_;          // batch x state_size(): scratch for score()
};

}  // namespace recsys
