#include "example_batch.h"

#include <cstring>

#include "errors.h"

namespace recsys {

ExampleBatch::ExampleBatch(const FeatureEncoder &encoder, size_t capacity, uint32_t products)
    : encoder_(encoder), capacity_(capacity), products_(products), T_(encoder.window()), W_(encoder.step_width()) {
    staged_.resize(capacity * T_ * W_);
    steps_.resize(capacity * T_ * W_);
    statics_.resize(capacity * encoder.static_width());
    labels_.resize(capacity * products);
    mask_.resize(capacity * products);
    held_.resize(capacity * products);
    customers_.resize(capacity);
    end_month_.resize(capacity);
    lengths_.resize(capacity);
    from_start_ = encoder.history_from_start();
}

BatchBytes ExampleBatch::buffer_bytes(const Model &model) {
    const size_t T = model.window_months, W = model.step_width(), P = model.product_count();
    BatchBytes b;
    b.per_customer = (2 * T * W + model.static_width() + 2 * P) * sizeof(float) + P * sizeof(uint8_t) +
                     sizeof(int64_t) + sizeof(int32_t) + sizeof(uint32_t);
    return b;
}

size_t ExampleBatch::add(const HistoryBatch &history, size_t c, int32_t as_of) {
    if (n_ >= capacity_) fail(ErrorKind::Internal, "example batch is full");
    const size_t slot = n_++;
    encoder_.encode(history, c, 1, as_of, staged_.data() + slot * T_ * W_, statics_.data() + slot * encoder_.static_width(),
                    held_.data() + slot * products_, end_month_.data() + slot, lengths_.data() + slot);
    customers_[slot] = history.customer_ids[c];
    return slot;
}

void ExampleBatch::finish() {
    for (size_t b = 0; b < n_; ++b)
        for (size_t t = 0; t < T_; ++t)
            std::memcpy(steps_.data() + (t * n_ + b) * W_, staged_.data() + (b * T_ + t) * W_, W_ * sizeof(float));
}

long find_month_row(const HistoryBatch &history, size_t c, int32_t month) {
    for (size_t r = history.row_begin[c]; r < history.row_begin[c + 1]; ++r) {
        if (history.month[r] == month) return long(r);
        if (history.month[r] > month) break;
    }
    return -1;
}

}  // namespace recsys
