// Training the LSTM recommender: backpropagation through time, Adam, gradient clipping.
//
// The forward pass here keeps every intermediate activation for the backward pass; its
// outputs equal LstmForward's (tested). Loss: binary cross-entropy on the sigmoid scores,
// averaged over the (customer, product) entries whose mask is 1 (products not held in the
// window's last month, so the model learns "adds", as the Santander task defines them).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "batch_memory.h"
#include "model.h"
#include "polled_gemm.h"

namespace recsys {

// Gradients with exactly the shapes of the model's weights.
struct ModelGradients {
    std::vector<LstmLayer> layers;
    std::vector<float> dense_w, dense_b;

    explicit ModelGradients(const Model &model);
    void zero();
    double squared_norm() const;
};

struct AdamOptions {
    float learning_rate = 1e-3f;
    float beta1 = 0.9f;
    float beta2 = 0.999f;
    float epsilon = 1e-8f;
    float clip_norm = 5.0f;  // global L2 norm; <= 0 disables clipping
};

// Fills the weights as torch.nn.LSTM / torch.nn.Linear do by default (uniform in
// +-1/sqrt(fan)), from a deterministic generator: the same seed gives the same bits.
void initialize_weights(Model &model, uint64_t seed);

class LstmTrainer {
public:
    // model must outlive the trainer; adam_step() updates it in place.
    LstmTrainer(Model &model, size_t max_batch, AdamOptions options = {});

    // What the constructor allocates: fixed (the Adam moments, twice the weights; a transposed
    // copy of each layer's [W_ih | W_hh] and a scratch for one layer's, the largest, transposed
    // weight gradients; small per-layer sums) + per_customer x max_batch (the activation caches and
    // backward buffers of one example). Not counted: the model and the gradients, which the
    // caller owns.
    static BatchBytes buffer_bytes(const Model &model);
    size_t allocated_bytes() const;

    // Called between pieces of work of forward_backward() (GEMM pieces, groups of cell
    // updates; see polled_gemm.h) and while adam_step() measures the gradient norm, before it
    // changes anything; empty for none. A throwing poll leaves the trainer usable: the next
    // forward_backward() overwrites every cache and all of grads, and the weights, the Adam
    // moments and steps_taken() change only in adam_step() after its last poll.
    void set_poll(PollFn poll) { poll_ = std::move(poll); }

    // steps: T x batch x step_width (time-major, as FeatureEncoder writes them),
    // statics: batch x static_width, labels and mask: batch x P (0 or 1).
    // Writes d(loss)/d(weights) into grads (overwriting) and returns the mean loss.
    // When no mask entry is 1, the loss is 0 and the gradients are zero.
    // n_steps (0: the model's window T) runs only the first n_steps of the T time slices,
    // for models whose history runs from a start month (every example of the batch has the
    // same number of months).
    double forward_backward(const float *steps, const float *statics, const float *labels, const float *mask,
                            size_t batch, ModelGradients &grads, size_t n_steps = 0);

    // Scores of the last forward_backward() call (batch x P), for metrics during training.
    const float *last_scores() const;

    // Clips grads to options.clip_norm (global norm, in place) and takes one Adam step.
    // Returns the gradient norm before clipping.
    double adam_step(ModelGradients &grads);

    size_t steps_taken() const;

private:
    struct State;
    Model &model_;
    size_t max_batch_;
    AdamOptions options_;
    PollFn poll_;
    std::shared_ptr<State> state_;  // activation caches, gradient buffers, Adam moments (see lstm_training.cpp)
};

}  // namespace recsys
