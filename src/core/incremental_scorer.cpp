#include "incremental_scorer.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>

#include "errors.h"

namespace recsys {

IncrementalScorer::IncrementalScorer(const Model &model, size_t max_batch)
    : model_(model), encoder_(model), forward_(model, max_batch), max_batch_(max_batch) {
    if (model.history != HistoryMode::FromStartMonth)
        fail(ErrorKind::InvalidParameter, "incremental scoring needs a model whose history runs from a start month",
             "A sliding-window model drops its oldest month at every step, so its state cannot be advanced.");
    // Exactly what buffer_bytes() counts.
    steps_.resize(forward_.step_block() * max_batch * model.step_width());
    group_states_.resize(max_batch * forward_.state_size());
    statics_.resize(max_batch * model.static_width());
    group_scores_.resize(max_batch * model.product_count());
    steps_of_.resize(max_batch);
    order_.resize(max_batch);
}

BatchBytes IncrementalScorer::buffer_bytes(const Model &model) {
    BatchBytes b = LstmForward::buffer_bytes(model);
    const size_t block = std::min<size_t>(model.window_months, LstmForward::kStepBlock);
    const size_t SS = model.state_size();
    b.per_customer += (block * model.step_width() + SS + model.static_width() + model.product_count()) * sizeof(float) +
                      sizeof(uint32_t) + sizeof(size_t);
    return b;
}

size_t IncrementalScorer::allocated_bytes() const {
    return forward_.allocated_bytes() + vector_bytes(steps_) + vector_bytes(group_states_) + vector_bytes(statics_) +
           vector_bytes(group_scores_) + vector_bytes(steps_of_) + vector_bytes(order_);
}

void IncrementalScorer::advance(const HistoryBatch &batch, size_t first, size_t count, int32_t *state_month,
                                float *states, float *scores, uint8_t *held) {
    if (count > max_batch_) fail(ErrorKind::Internal, "batch larger than the incremental scorer's buffers");
    const size_t P = model_.product_count(), W = model_.step_width(), SS = forward_.state_size();
    const size_t S = model_.static_width();
    for (size_t b = 0; b < count; ++b) {
        const size_t c = first + b, last = batch.row_begin[c + 1] - 1;
        if (batch.row_begin[c + 1] == batch.row_begin[c]) fail(ErrorKind::Internal, "customer without rows");
        const int32_t month = batch.month[last];
        const int32_t steps = month - state_month[b];
        if (steps < 1)
            fail(ErrorKind::DataException,
                 "customer " + std::to_string(batch.customer_ids[c]) + " already has a state for this month or a later one");
        steps_of_[b] = uint32_t(steps);
    }
    // Customers grouped by how many steps they advance (1 for nearly all of them), fewest
    // first, in batch order within a group. Group results are laid out one after another in
    // group_states_, statics_ and group_scores_ and copied to the caller only at the end, so
    // a throwing poll leaves the caller's arrays untouched.
    std::iota(order_.begin(), order_.begin() + count, size_t(0));
    std::stable_sort(order_.begin(), order_.begin() + count,
                     [&](size_t a, size_t b) { return steps_of_[a] < steps_of_[b]; });
    const size_t block = forward_.step_block();
    for (size_t g0 = 0; g0 < count;) {
        const uint32_t k = steps_of_[order_[g0]];
        size_t g1 = g0;
        while (g1 < count && steps_of_[order_[g1]] == k) ++g1;
        const size_t n = g1 - g0;
        const size_t *members = order_.data() + g0;
        float *group_states = group_states_.data() + g0 * SS;
        for (size_t i = 0; i < n; ++i) {
            const size_t b = members[i], last = batch.row_begin[first + b + 1] - 1;
            encoder_.encode_statics(batch, last, statics_.data() + (g0 + i) * S);
            std::memcpy(group_states + i * SS, states + b * SS, SS * sizeof(float));
        }
        // k - 1 all-zero steps for the months without a snapshot, then the new month, run a
        // block of steps at a time.
        for (size_t done = 0; done < k;) {
            const size_t s = std::min<size_t>(block, k - done);
            std::fill(steps_.begin(), steps_.begin() + s * n * W, 0.0f);
            if (done + s == k)
                for (size_t i = 0; i < n; ++i) {
                    const size_t c = first + members[i];
                    const size_t last = batch.row_begin[c + 1] - 1;
                    const bool has_previous = last > batch.row_begin[c] && batch.month[last - 1] == batch.month[last] - 1 &&
                                              batch.month[last - 1] >= model_.start_month;
                    encoder_.encode_step(batch, last, has_previous ? last - 1 : SIZE_MAX,
                                         steps_.data() + ((s - 1) * n + i) * W);
                }
            forward_.run(steps_.data(), s, n, nullptr, group_states);
            done += s;
        }
        forward_.head(group_states, statics_.data() + g0 * S, n, group_scores_.data() + g0 * P);
        g0 = g1;
    }
    // Nothing below can throw: the results go to the caller.
    for (size_t i = 0; i < count; ++i) {
        const size_t b = order_[i], last = batch.row_begin[first + b + 1] - 1;
        std::memcpy(states + b * SS, group_states_.data() + i * SS, SS * sizeof(float));
        std::memcpy(scores + b * P, group_scores_.data() + i * P, P * sizeof(float));
        std::memcpy(held + b * P, batch.products.data() + last * P, P);
        state_month[b] = batch.month[last];
    }
}

}  // namespace recsys
