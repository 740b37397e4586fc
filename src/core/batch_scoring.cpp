#include "batch_scoring.h"

#include <algorithm>

#include "errors.h"

namespace recsys {

uint32_t score_batch(const Model &model, const FeatureEncoder &encoder, LstmForward &forward, EncodedBatch &buf,
                     const HistoryBatch &history, size_t first, size_t count, float *states) {
    const uint32_t T = model.window_months;
    float *steps = buf.steps.data(), *statics = buf.statics.data(), *scores = buf.scores.data();
    uint8_t *held = buf.held.data();
    int32_t *end_month = buf.end_month.data();
    if (model.history != HistoryMode::FromStartMonth) {
        if (states) fail(ErrorKind::Internal, "a sliding-window model has no state to keep");
        encoder.encode(history, first, count, -1, steps, statics, held, end_month, nullptr);
        forward.score(steps, statics, count, scores, nullptr);
        return T;
    }
    uint32_t *lengths = buf.lengths.data();
    const uint32_t longest =
        encoder.encode_part(history, first, count, -1, 0, steps, statics, held, end_month, lengths);
    // Parts after the first: the same buffers, re-encoded for steps [first_step, first_step + T).
    auto encode_part = [&](uint32_t first_step) {
        encoder.encode_part(history, first, count, -1, first_step, steps, statics, held, end_month, lengths);
    };
    if (states) {
        std::fill(states, states + count * model.state_size(), 0.0f);
        forward.run(steps, T, count, lengths, states);
        for (uint32_t first_step = T; first_step < longest; first_step += T) {
            encode_part(first_step);
            forward.run(steps, std::min(T, longest - first_step), count, lengths, states);
        }
        forward.head(states, statics, count, scores);
    } else if (longest <= T) {
        forward.score(steps, statics, count, scores, lengths);  // every sequence fits the window
    } else {
        forward.score_parts(
            longest,
            [&](size_t first_step, const uint32_t **part_lengths) {
                if (first_step > 0) encode_part(uint32_t(first_step));
                *part_lengths = lengths;
                return static_cast<const float *>(steps);
            },
            statics, count, scores);
    }
    return longest;
}

}  // namespace recsys
