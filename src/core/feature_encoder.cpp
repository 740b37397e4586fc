#include "feature_encoder.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "errors.h"

namespace recsys {

bool is_finite_value(float v) { return std::isfinite(v); }

FeatureEncoder::FeatureEncoder(const Model &model)
    : model_(model),
      window_(model.window_months),
      step_width_(model.step_width()),
      static_width_(model.static_width()),
      products_(model.product_count()),
      adds_(model.include_product_adds) {
    for (uint32_t i = 0; i < model.features.size(); ++i)
        (model.features[i].role == FeatureRole::Dynamic ? dynamic_features_ : static_features_).push_back(i);
}

void FeatureEncoder::encode_feature(const FeatureSpec &f, float raw, float *out) const {
    if (f.kind == FeatureKind::Categorical) {
        const uint32_t width = f.encoded_width();
        std::fill(out, out + width, 0.0f);
        const int32_t code = static_cast<int32_t>(raw);
        out[(code >= 0 && uint32_t(code) < width - 1) ? uint32_t(code) : width - 1] = 1.0f;
        return;
    }
    if (std::isnan(raw)) {  // NULL: the mean (0 after standardisation), flagged as missing
        out[0] = 0.0f;
        if (f.missing_indicator) out[1] = 1.0f;
        return;
    }
    double x = std::min<double>(std::max<double>(raw, f.clip_min), f.clip_max);
    if (f.transform == NumericTransform::Log1p) x = std::log1p(std::max(x, 0.0));
    out[0] = static_cast<float>((x - f.mean) / f.stddev);
    if (f.missing_indicator) out[1] = 0.0f;
}

void FeatureEncoder::encode_step(const HistoryBatch &batch, size_t r, size_t r_previous, float *step) const {
    const size_t F = batch.feature_count, P = products_;
    const uint8_t *prod = batch.products.data() + r * P;
    const uint8_t *prev = r_previous == SIZE_MAX ? nullptr : batch.products.data() + r_previous * P;
    for (size_t p = 0; p < P; ++p) step[p] = prod[p];
    size_t pos = P;
    if (adds_) {
        for (size_t p = 0; p < P; ++p) step[P + p] = (prev && prod[p] && !prev[p]) ? 1.0f : 0.0f;
        pos += P;
    }
    const float *vals = batch.values.data() + r * F;
    for (uint32_t i : dynamic_features_) {
        encode_feature(model_.features[i], vals[i], step + pos);
        pos += model_.features[i].encoded_width();
    }
}

void FeatureEncoder::encode_statics(const HistoryBatch &batch, size_t r, float *statics) const {
    const float *vals = batch.values.data() + r * batch.feature_count;
    for (uint32_t i : static_features_) {
        encode_feature(model_.features[i], vals[i], statics);
        statics += model_.features[i].encoded_width();
    }
}

void FeatureEncoder::encode(const HistoryBatch &batch, size_t first, size_t count, int32_t as_of_month,
                            float *steps, float *statics, uint8_t *held, int32_t *end_month, uint32_t *lengths) const {
    encode_steps(batch, first, count, as_of_month, 0, true, steps, statics, held, end_month, lengths);
}

uint32_t FeatureEncoder::encode_part(const HistoryBatch &batch, size_t first, size_t count, int32_t as_of_month,
                                     uint32_t first_step, float *steps, float *statics, uint8_t *held,
                                     int32_t *end_month, uint32_t *lengths) const {
    if (model_.history != HistoryMode::FromStartMonth)
        fail(ErrorKind::Internal, "only a from-start model's sequences are encoded in parts");
    return encode_steps(batch, first, count, as_of_month, first_step, false, steps, statics, held, end_month, lengths);
}

uint32_t FeatureEncoder::encode_steps(const HistoryBatch &batch, size_t first, size_t count, int32_t as_of_month,
                                      uint32_t first_step, bool refuse_past_window, float *steps, float *statics,
                                      uint8_t *held, int32_t *end_month, uint32_t *lengths) const {
    const size_t F = batch.feature_count, P = products_;
    if (F != model_.features.size() || batch.product_count != P)
        fail(ErrorKind::Internal, "history batch shape does not match the model");
    const bool from_start = model_.history == HistoryMode::FromStartMonth;
    if (from_start && !lengths) fail(ErrorKind::Internal, "a from-start model needs sequence lengths");
    // Month of step 0 of this part (from-start models).
    const int32_t first_month = model_.start_month + int32_t(first_step);
    uint32_t longest = 0;
    std::fill(steps, steps + size_t(window_) * count * step_width_, 0.0f);
    std::fill(statics, statics + count * static_width_, 0.0f);
    std::fill(held, held + count * P, uint8_t(0));

    for (size_t b = 0; b < count; ++b) {
        const size_t c = first + b;
        size_t begin = batch.row_begin[c], end = batch.row_begin[c + 1];
        if (as_of_month >= 0)
            while (end > begin && batch.month[end - 1] > as_of_month) --end;
        const int32_t last = as_of_month >= 0 ? as_of_month : (end > begin ? batch.month[end - 1] : 0);
        end_month[b] = last;
        if (from_start) {
            const int32_t length = last - model_.start_month + 1;
            if (refuse_past_window && length > int32_t(window_))
                fail(ErrorKind::DataException,
                     "customer " + std::to_string(batch.customer_ids[c]) + " has " + std::to_string(length) +
                         " months from the model's start month to month index " + std::to_string(last) +
                         ", more than the model's window of " + std::to_string(window_),
                     "", "Train or export a model with a larger window, or a later start month.");
            const uint32_t total = length > 0 ? uint32_t(length) : 0u;
            longest = std::max(longest, total);
            lengths[b] = total > first_step ? std::min(total - first_step, window_) : 0u;
        }
        if (end == begin) continue;  // no snapshot at all: an all-zero input

        for (size_t r = begin; r < end; ++r) {
            // Step index: from the window's end (sliding) or from the part's first month.
            const int32_t slot = from_start ? batch.month[r] - first_month
                                            : int32_t(window_) - 1 - (last - batch.month[r]);
            if (slot < 0 || slot >= int32_t(window_) || batch.month[r] > last) continue;
            // "Added" needs the month before, inside the sequence for from-start models.
            const bool has_previous = r > begin && batch.month[r - 1] == batch.month[r] - 1 &&
                                      (!from_start || batch.month[r - 1] >= model_.start_month);
            encode_step(batch, r, has_previous ? r - 1 : SIZE_MAX, steps + (size_t(slot) * count + b) * step_width_);
        }
        // Static features and held products come from the window's last month when present;
        // otherwise from the latest earlier snapshot for the statics (a customer is still the
        // same person), and nothing is held.
        const size_t r_last = end - 1;
        if (batch.month[r_last] == last) std::memcpy(held + b * P, batch.products.data() + r_last * P, P);
        encode_statics(batch, r_last, statics + b * static_width_);
    }
    return longest;
}

}  // namespace recsys
