#include "state_continuation.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "errors.h"

namespace recsys {

StateContinuation::StateContinuation(const Model &model) : model_(model), encoder_(model), forward_(model, 1) {
    if (model.history != HistoryMode::FromStartMonth)
        fail(ErrorKind::InvalidParameter, "continuing a state needs a model whose history runs from a start month",
             "A sliding-window model drops its oldest month at every step, so its state cannot be continued.");
    steps_.resize(forward_.step_block() * model.step_width());
    statics_.resize(model.static_width());
}

size_t StateContinuation::score(const HistoryBatch &history, size_t c, int32_t state_month, float *state,
                                float *scores, uint8_t *held) {
    const size_t begin = history.row_begin[c], end = history.row_begin[c + 1];
    if (end == begin) fail(ErrorKind::Internal, "customer without rows");
    const size_t W = model_.step_width(), P = model_.product_count(), block = forward_.step_block();
    const int32_t latest = history.month[end - 1];
    if (state_month > latest && state_month != initial_month())
        fail(ErrorKind::Internal, "state after the customer's latest snapshot");
    // First row after the state's month.
    size_t r = begin;
    while (r < end && history.month[r] <= state_month) ++r;
    size_t steps_run = 0;
    for (int32_t m0 = state_month + 1; m0 <= latest;) {
        const size_t s = std::min<size_t>(block, size_t(latest - m0 + 1));
        std::fill(steps_.begin(), steps_.begin() + s * W, 0.0f);
        for (; r < end && history.month[r] < m0 + int32_t(s); ++r) {
            // "Added" needs the month before, inside the sequence (as FeatureEncoder::encode).
            const bool has_previous = r > begin && history.month[r - 1] == history.month[r] - 1 &&
                                      history.month[r - 1] >= model_.start_month;
            encoder_.encode_step(history, r, has_previous ? r - 1 : SIZE_MAX,
                                 steps_.data() + size_t(history.month[r] - m0) * W);
        }
        forward_.run(steps_.data(), s, 1, nullptr, state);
        steps_run += s;
        m0 += int32_t(s);
    }
    encoder_.encode_statics(history, end - 1, statics_.data());
    forward_.head(state, statics_.data(), 1, scores);
    std::memcpy(held, history.products.data() + (end - 1) * P, P);
    return steps_run;
}

}  // namespace recsys
