// A mini-batch of (customer, window end) examples in the LSTM's input layout, shared by the
// month evaluation and the training loop. Examples are encoded one at a time (each may end
// at a different month) and laid out time-major by finish().
#pragma once

#include <cstddef>
#include <cstdint>

#include "batch_memory.h"
#include "feature_encoder.h"
#include "history.h"
#include "model.h"

namespace recsys {

class ExampleBatch {
public:
    ExampleBatch(const FeatureEncoder &encoder, size_t capacity, uint32_t products);
    // What the constructor allocates for a model's examples: per_customer x capacity bytes.
    static BatchBytes buffer_bytes(const Model &model);

    size_t size() const { return n_; }
    bool full() const { return n_ == capacity_; }
    void clear() { n_ = 0; }

    // Adds customer c of `history`, its window ending at as_of. Returns the example's slot.
    size_t add(const HistoryBatch &history, size_t c, int32_t as_of);
    // Lays the examples out time-major (T x size() x step_width) for the LSTM.
    void finish();

    const float *steps() const { return steps_.data(); }
    const float *statics() const { return statics_.data(); }
    uint8_t *held(size_t slot) { return held_.data() + slot * products_; }
    float *labels(size_t slot) { return labels_.data() + slot * products_; }
    float *mask(size_t slot) { return mask_.data() + slot * products_; }
    const float *labels() const { return labels_.data(); }
    const float *mask() const { return mask_.data(); }
    int64_t customer(size_t slot) const { return customers_[slot]; }
    // Sequence lengths for models whose history runs from a start month, else nullptr.
    const uint32_t *lengths() const { return from_start_ ? lengths_.data() : nullptr; }

private:
    const FeatureEncoder &encoder_;
    size_t capacity_, n_ = 0;
    uint32_t products_, T_, W_;
    // Batch buffers, allocated without initialisation (every slot is written by add()).
    Buffer<float> staged_;  // capacity x T x W, example-major
    Buffer<float> steps_, statics_, labels_, mask_;
    Buffer<uint8_t> held_;
    Buffer<int64_t> customers_;
    Buffer<int32_t> end_month_;
    Buffer<uint32_t> lengths_;
    bool from_start_;
};

// Index of customer c's row for `month` in history, or -1. An example for target month m
// needs the customer's rows of m - 1 (its inputs' last month) and m (its labels).
long find_month_row(const HistoryBatch &history, size_t c, int32_t month);

}  // namespace recsys
