#include "incremental_scorer.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>

#include "errors.h"

namespace recsys {

IncrementalScorer::IncrementalScorer(const Model &model, size_t max_batch)
    : model_(model), encoder_(model), forward_(model, max_batch), max_batch_(max_batch) {
    if (model.history != HistoryMode::FromStartMonth)
        fail(ErrorKind::InvalidParameter, "incremental scoring needs a model whose history runs from a start month",
             "A sliding-window model drops its oldest month at every step, so its state cannot be advanced.");
    steps_.resize(size_t(model.window_months) * max_batch * model.step_width());
    group_states_.resize(max_batch * forward_.state_size());
    statics_.resize(max_batch * model.static_width());
    group_scores_.resize(max_batch * model.product_count());
}

void IncrementalScorer::advance(const HistoryBatch &batch, size_t first, size_t count, int32_t *state_month,
                                float *states, float *scores, uint8_t *held) {
    if (count > max_batch_) fail(ErrorKind::Internal, "batch larger than the incremental scorer's buffers");
    const size_t P = model_.product_count(), W = model_.step_width(), SS = forward_.state_size();
    const size_t S = model_.static_width();
    // Customers grouped by how many steps they advance (1 for nearly all of them).
    std::map<uint32_t, std::vector<size_t>> by_steps;
    for (size_t b = 0; b < count; ++b) {
        const size_t c = first + b, last = batch.row_begin[c + 1] - 1;
        if (batch.row_begin[c + 1] == batch.row_begin[c]) fail(ErrorKind::Internal, "customer without rows");
        const int32_t month = batch.month[last];
        const int32_t steps = month - state_month[b];
        if (steps < 1)
            fail(ErrorKind::DataException,
                 "customer " + std::to_string(batch.customer_ids[c]) + " already has a state for this month or a later one");
        if (month - model_.start_month + 1 > int32_t(model_.window_months))
            fail(ErrorKind::DataException,
                 "customer " + std::to_string(batch.customer_ids[c]) + " would have more months since the model's "
                 "start month than its window of " + std::to_string(model_.window_months));
        by_steps[uint32_t(steps)].push_back(b);
    }
    for (const auto &[k, members] : by_steps) {
        const size_t n = members.size();
        // k - 1 all-zero steps for the months without a snapshot, then the new month.
        std::fill(steps_.begin(), steps_.begin() + size_t(k) * n * W, 0.0f);
        for (size_t i = 0; i < n; ++i) {
            const size_t b = members[i], c = first + b;
            const size_t last = batch.row_begin[c + 1] - 1;
            const bool has_previous = last > batch.row_begin[c] && batch.month[last - 1] == batch.month[last] - 1 &&
                                      batch.month[last - 1] >= model_.start_month;
            encoder_.encode_step(batch, last, has_previous ? last - 1 : SIZE_MAX,
                                 steps_.data() + (size_t(k - 1) * n + i) * W);
            encoder_.encode_statics(batch, last, statics_.data() + i * S);
            std::memcpy(group_states_.data() + i * SS, states + b * SS, SS * sizeof(float));
        }
        forward_.run(steps_.data(), k, n, nullptr, group_states_.data());
        forward_.head(group_states_.data(), statics_.data(), n, group_scores_.data());
        for (size_t i = 0; i < n; ++i) {
            const size_t b = members[i], c = first + b, last = batch.row_begin[c + 1] - 1;
            std::memcpy(states + b * SS, group_states_.data() + i * SS, SS * sizeof(float));
            std::memcpy(scores + b * P, group_scores_.data() + i * P, P * sizeof(float));
            std::memcpy(held + b * P, batch.products.data() + last * P, P);
            state_month[b] = batch.month[last];
        }
    }
}

}  // namespace recsys
