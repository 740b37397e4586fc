// Batched LSTM forward pass: one fused gate GEMM per layer for all time steps' inputs,
// one recurrent GEMM per time step, vectorised activations, then a dense sigmoid head.
#pragma once

#include <cstddef>
#include <vector>

#include "model.h"

namespace recsys {

class LstmForward {
public:
    // Buffers are sized for batches of up to max_batch customers and reused across calls.
    LstmForward(const Model &model, size_t max_batch);

    size_t max_batch() const { return max_batch_; }

    // steps: T x batch x step_width (time-major), statics: batch x static_width.
    // scores: batch x P, each the sigmoid probability of adding the product next month.
    void score(const float *steps, const float *statics, size_t batch, float *scores);

    // The final hidden state of the last layer for the last scored batch (batch x H).
    const float *last_hidden() const { return h_.data(); }

private:
    const Model &model_;
    size_t max_batch_;
    size_t T_, H_, P_, S_;
    std::vector<float> gates_;   // T x batch x 4H: input projections, then per-step pre-activations
    std::vector<float> seq_a_, seq_b_;  // T x batch x H: hidden sequences between layers
    std::vector<float> h_, c_;   // batch x H
    std::vector<float> head_in_; // batch x (H + S)
    std::vector<float> bias_;    // layers x 4H: b_ih + b_hh, summed once
};

}  // namespace recsys
