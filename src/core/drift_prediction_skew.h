// Prediction skew (recsys.prediction_skew; docs/monitoring.md, "Drift and skew"): per product,
// the model's mean predicted probability of an add against the add rate observed the month
// after, overall and per segment.
//
// Who counts, for `month` M: every customer with snapshots in M and in M + 1, scored with
// inputs ending at M (exactly as recommend() scores a customer whose latest month is M);
// for product p, only the customers who do not hold p in M (the products the training loss
// is masked to, and the only ones recommend() ranks). Observed: p held in M + 1. So
//   mean_predicted     = mean of the sigmoid score of p over those customers,
//   observed_add_rate  = share of them holding p in M + 1.
// recsys.train() keeps only a sample (no_add_sample_rate, 0.1) of the training examples without
// any add, so its scores overstate probabilities several times over. The calibrated
// prediction undoes that per customer (subsample_correction()), and the ratio and the status
// compare it, not the raw score, with what was observed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "customer_source.h"
#include "feature_encoder.h"
#include "model.h"
#include "polled_gemm.h"

namespace recsys {

// A calibrated-to-observed ratio outside [1 / r, r] is "warn" (r = kSkewWarnRatio) or "alert"
// (r = kSkewAlertRatio), but only when the observed adds are also more than kSkewMinZ
// Poisson standard deviations, sqrt(expected), from the calibrated expected adds, and there
// are at least kSkewMinAdds adds observed or expected: a product or segment with a handful of
// adds is never flagged for noise.
constexpr double kSkewWarnRatio = 1.5;
constexpr double kSkewAlertRatio = 2.0;
constexpr double kSkewMinZ = 3.0;
constexpr double kSkewMinAdds = 10.0;

// The factor turning a score trained with no-add examples kept at rate q into a probability.
// Training sees a customer x without adds with weight q, so its scores s_p(x) estimate
// P(add p | x) / (A + q (1 - A)), A = P(any add | x). The model's own chance of any add,
// t = 1 - prod over products not held of (1 - s_p) (adds taken as independent), estimates
// A / (A + q (1 - A)); solving gives A = q t / (1 - t + q t), and the factor is A + q (1 - A).
// q = 1 (no sampling) gives 1.
double subsample_correction(const float *scores, const uint8_t *held, uint32_t products, double q);

struct SkewCell {
    uint64_t customers = 0;  // customers not holding the product in M
    uint64_t adds = 0;       // ... holding it in M + 1
    double predicted = 0;    // sum of their raw scores
    double calibrated = 0;   // sum of their calibrated scores

    double mean_predicted() const { return customers ? predicted / double(customers) : 0.0; }
    double mean_calibrated() const { return customers ? calibrated / double(customers) : 0.0; }
    double observed_rate() const { return customers ? double(adds) / double(customers) : 0.0; }
};

// "ok", "warn" or "alert" for a cell (see the thresholds above).
const char *skew_status(const SkewCell &cell);

struct PredictionSkewOptions {
    size_t batch_size = 256;         // customers scored together
    double no_add_sample_rate = 1;   // q of the training (1: not sampled)
    PollFn poll;                     // called between batches and inside the LSTM
};

struct PredictionSkew {
    // Segment 0 is "all"; then the model's segment values (the vocabulary of its "segmento"
    // feature, when it has one) and "unknown" (NULL or not in the vocabulary).
    std::vector<std::string> segments;
    uint32_t products = 0;
    std::vector<SkewCell> cells;  // segments x products
    uint64_t customers = 0;       // customers scored
    uint64_t rows = 0;            // rows the source read

    SkewCell &at(size_t segment, size_t product) { return cells[segment * products + product]; }
    const SkewCell &at(size_t segment, size_t product) const { return cells[segment * products + product]; }
};

PredictionSkew prediction_skew(const Model &model, const FeatureEncoder &encoder, CustomerSource &source, int32_t month,
                               const PredictionSkewOptions &options);

}  // namespace recsys
