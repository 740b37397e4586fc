// The statistics of drift and skew monitoring (docs/monitoring.md, "Drift and skew"):
//   - the population stability index (PSI) between a reference distribution and a month's,
//     and the quantile bins numeric features are compared on (the C++ twins of the SQL that
//     recsys.record_feature_reference and recsys.feature_drift run: percentile_disc and
//     width_bucket);
//   - the moments of a model's encoded inputs: what the reference recorded at training implies
//     for each input of the FeatureEncoder, what serving encodes, and the standardized
//     difference between the two (recsys.training_serving_skew).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "model.h"

namespace recsys {

// Shares below this are raised to it before the PSI's logarithm (an empty bin would make it
// infinite): PSI = sum over bins of (a - e) * ln(a / e), a and e the month's and the
// reference's shares of the bin, each max(share, kPsiEpsilon).
constexpr double kPsiEpsilon = 1e-4;
// PSI above these: "warn", "alert" (at most kPsiWarn: "ok").
constexpr double kPsiWarn = 0.1;
constexpr double kPsiAlert = 0.25;
// Quantile bins of a numeric feature's reference (fewer when quantiles coincide).
constexpr unsigned kReferenceBins = 10;

// counts / their sum. Throws InvalidParameter for a negative or non-finite count or a zero sum.
std::vector<double> shares_of(const std::vector<double> &counts);

// PSI between two distributions over the same bins, given as counts (or shares: each is
// normalised by its own sum). Throws InvalidParameter when the lengths differ or are 0, or
// for what shares_of() refuses.
double population_stability_index(const std::vector<double> &expected, const std::vector<double> &actual,
                                  double epsilon = kPsiEpsilon);

// "ok", "warn" or "alert" for a PSI.
const char *drift_status(double psi);

// The bin of x among ascending, distinct edges: the number of edges <= x, 0 .. edges.size()
// (PostgreSQL's width_bucket(x, edges)); bin 0 holds values below the first edge. NaN sorts
// above every number, as in PostgreSQL.
size_t bin_index(double x, const std::vector<double> &edges);

// The edges of `bins` quantile bins of values (NaN not allowed), as percentile_disc gives them:
// for q = k / bins, k = 1 .. bins - 1, the first value in ascending order whose position
// (1-based) is at least q * n; duplicates removed. Empty for no values.
std::vector<double> quantile_edges(std::vector<double> values, unsigned bins = kReferenceBins);

// What the reference recorded for one feature over its months (recsys.feature_references).
struct FeatureReference {
    double rows = 0;        // rows counted
    double null_count = 0;  // rows whose value is NULL
    // Numeric: mean and population standard deviation of the non-NULL values after the
    // feature's clip and transform (what the encoder standardises).
    double transformed_mean = 0, transformed_stddev = 0;
    // Categorical: rows per vocabulary value (the model's vocabulary order) and non-NULL rows
    // with a value outside it.
    std::vector<double> value_counts;
    double unknown_count = 0;
};

struct InputMoments {
    double mean = 0, variance = 0;
};

// The names of a feature's encoded inputs, in the encoder's order: a numeric feature's
// standardised value ("age") and missing flag ("age:missing"); a categorical feature's
// one-hot slots ("sexo=H", ...) and the slot of unknown and NULL values ("sexo:unknown").
std::vector<std::string> encoded_input_names(const FeatureSpec &f);

// The mean and variance of each of feature f's encoded inputs over the reference's rows,
// as FeatureEncoder::encode_feature() would produce them (NULL: value 0 and missing flag 1;
// unknown or NULL category: the last slot). Throws InvalidParameter when the reference does
// not fit the feature (no rows, a vocabulary of another size).
std::vector<InputMoments> reference_input_moments(const FeatureSpec &f, const FeatureReference &r);

// Sums of encoded inputs (width floats a row) for their means and variances.
class InputMomentsAccumulator {
public:
    explicit InputMomentsAccumulator(size_t width) : sum_(width, 0.0), sum_squares_(width, 0.0) {}
    void add(const float *encoded);
    uint64_t count() const { return n_; }
    // Population moments; all zero before the first add().
    std::vector<InputMoments> moments() const;

private:
    std::vector<double> sum_, sum_squares_;
    uint64_t n_ = 0;
};

// (serving mean - training mean) / sqrt((training variance + serving variance) / 2): the
// standardized mean difference. 0 when the means are equal; +-infinity when they differ and
// neither varies.
double standardized_difference(const InputMoments &training, const InputMoments &serving);

// recsys.training_serving_skew flags an input when |standardized difference| exceeds this, or
// when its feature's NULL share moved by more than kSkewNullRateFlag.
constexpr double kSkewDifferenceFlag = 0.25;
constexpr double kSkewNullRateFlag = 0.05;

}  // namespace recsys
