#include "batch_memory.h"

#include <limits>

namespace recsys {

size_t BatchBytes::total(size_t batch) const {
    constexpr size_t kMax = std::numeric_limits<size_t>::max();
    if (per_customer != 0 && batch > (kMax - fixed) / per_customer) return kMax;
    return fixed + per_customer * batch;
}

size_t BatchBytes::max_batch(size_t budget) const {
    if (budget < fixed) return 0;
    if (per_customer == 0) return std::numeric_limits<size_t>::max();
    return (budget - fixed) / per_customer;
}

EncodedBatch::EncodedBatch(const Model &model, size_t max_batch) {
    const size_t P = model.product_count();
    steps.resize(size_t(model.window_months) * max_batch * model.step_width());
    statics.resize(max_batch * model.static_width());
    scores.resize(max_batch * P);
    held.resize(max_batch * P);
    end_month.resize(max_batch);
    lengths.resize(max_batch);
}

BatchBytes EncodedBatch::buffer_bytes(const Model &model) {
    const size_t P = model.product_count();
    BatchBytes b;
    b.per_customer = (size_t(model.window_months) * model.step_width() + model.static_width() + P) * sizeof(float) +
                     P * sizeof(uint8_t) + sizeof(int32_t) + sizeof(uint32_t);
    return b;
}

size_t EncodedBatch::allocated_bytes() const {
    return vector_bytes(steps) + vector_bytes(statics) + vector_bytes(scores) + vector_bytes(held) +
           vector_bytes(end_month) + vector_bytes(lengths);
}

size_t history_row_bytes(const Model &model) {
    return sizeof(int32_t) + model.features.size() * sizeof(float) + model.product_count() * sizeof(uint8_t);
}

BatchBytes history_bytes(const Model &model) {
    BatchBytes b;
    // Rows, their customer's id and row offset; twice for the vectors' growth.
    b.per_customer = 2 * ((size_t(model.window_months) + 1) * history_row_bytes(model) + sizeof(int64_t) + sizeof(size_t));
    return b;
}

size_t weight_bytes(const Model &model) {
    // From the dimensions, so that it holds before the weights are sized.
    const size_t H = model.hidden, G = 4 * H, P = model.product_count();
    size_t floats = P * (H + model.static_width()) + P;
    for (size_t l = 0; l < model.layers.size(); ++l) floats += G * model.layer_input_width(l) + G * H + 2 * G;
    return floats * sizeof(float);
}

}  // namespace recsys
