#include "drift_prediction_skew.h"

#include <algorithm>
#include <cmath>

#include "errors.h"
#include "example_batch.h"
#include "lstm_forward.h"
#include "month_evaluation.h"

namespace recsys {

double subsample_correction(const float *scores, const uint8_t *held, uint32_t products, double q) {
    if (!(q > 0 && q <= 1)) fail(ErrorKind::InvalidParameter, "the no-add sample rate must lie in (0, 1]");
    if (q == 1) return 1.0;
    double none = 1;  // the model's chance of no add at all
    for (uint32_t p = 0; p < products; ++p)
        if (!held[p]) none *= 1.0 - double(scores[p]);
    const double t = 1 - none;
    const double a = q * t / (1 - t + q * t);
    return a + q * (1 - a);
}

const char *skew_status(const SkewCell &cell) {
    const double expected = cell.calibrated, observed = double(cell.adds);
    if (cell.customers == 0 || std::max(expected, observed) < kSkewMinAdds) return "ok";
    if (!(expected > 1e-12)) return "alert";
    const double z = std::fabs(observed - expected) / std::sqrt(expected);
    if (z <= kSkewMinZ) return "ok";
    // observed = 0 is an infinite ratio.
    const double ratio = observed > 0 ? expected / observed : HUGE_VAL;
    if (ratio > kSkewAlertRatio || ratio < 1 / kSkewAlertRatio) return "alert";
    if (ratio > kSkewWarnRatio || ratio < 1 / kSkewWarnRatio) return "warn";
    return "ok";
}

PredictionSkew prediction_skew(const Model &model, const FeatureEncoder &encoder, CustomerSource &source, int32_t month,
                               const PredictionSkewOptions &options) {
    const uint32_t P = model.product_count();
    const size_t batch_size = options.batch_size;
    if (batch_size == 0) fail(ErrorKind::InvalidParameter, "prediction skew batch size must be at least 1");
    if (!(options.no_add_sample_rate > 0 && options.no_add_sample_rate <= 1))
        fail(ErrorKind::InvalidParameter, "the no-add sample rate must lie in (0, 1]");

    PredictionSkew result;
    result.products = P;
    result.segments.push_back("all");
    long segment_feature = -1;
    for (size_t i = 0; i < model.features.size(); ++i)
        if (model.features[i].column == kSegmentColumn && model.features[i].kind == FeatureKind::Categorical)
            segment_feature = long(i);
    if (segment_feature >= 0) {
        for (const auto &v : model.features[size_t(segment_feature)].vocabulary) result.segments.push_back(v);
        result.segments.push_back("unknown");
    }
    result.cells.assign(result.segments.size() * P, SkewCell{});

    LstmForward forward(model, batch_size);
    forward.set_poll(options.poll);
    ExampleBatch batch(encoder, batch_size, P);
    std::vector<uint8_t> held_after(batch_size * P);
    std::vector<size_t> segment(batch_size);
    std::vector<float> scores(batch_size * P);

    auto score_batch = [&] {
        if (batch.size() == 0) return;
        batch.finish();
        forward.score(batch.steps(), batch.statics(), batch.size(), scores.data(), batch.lengths());
        for (size_t b = 0; b < batch.size(); ++b) {
            const float *s = scores.data() + b * P;
            const uint8_t *held = batch.held(b), *after = held_after.data() + b * P;
            const double factor = subsample_correction(s, held, P, options.no_add_sample_rate);
            for (uint32_t p = 0; p < P; ++p) {
                if (held[p]) continue;
                for (SkewCell *cell : {&result.at(0, p), segment[b] > 0 ? &result.at(segment[b], p) : nullptr}) {
                    if (!cell) continue;
                    cell->customers += 1;
                    cell->adds += after[p] ? 1 : 0;
                    cell->predicted += double(s[p]);
                    cell->calibrated += double(s[p]) * factor;
                }
            }
        }
        result.customers += batch.size();
        batch.clear();
        poll(options.poll);
    };

    // The window before M (from the start month for a from-start model), through M + 1.
    int32_t first = month - int32_t(model.window_months);
    if (model.history == HistoryMode::FromStartMonth) first = std::min(first, model.start_month);
    result.rows = source.for_each_customer(first, month + 2, [&](const HistoryBatch &h, size_t c) {
        const long r_now = find_month_row(h, c, month), r_after = find_month_row(h, c, month + 1);
        if (r_now < 0 || r_after < 0) return;
        const size_t slot = batch.add(h, c, month);
        std::copy_n(h.products.data() + size_t(r_after) * P, P, held_after.data() + slot * P);
        size_t g = 0;
        if (segment_feature >= 0) {
            const long code = long(h.values[size_t(r_now) * h.feature_count + size_t(segment_feature)]);
            const size_t vocabulary = result.segments.size() - 2;
            g = code >= 0 && size_t(code) < vocabulary ? size_t(code) + 1 : vocabulary + 1;
        }
        segment[slot] = g;
        if (batch.full()) score_batch();
    });
    score_batch();
    return result;
}

}  // namespace recsys
