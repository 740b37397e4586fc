#include "drift_statistics.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "errors.h"

namespace recsys {

std::vector<double> shares_of(const std::vector<double> &counts) {
    double total = 0;
    for (double c : counts) {
        if (!std::isfinite(c) || c < 0)
            fail(ErrorKind::InvalidParameter, "bin counts must be finite and not negative");
        total += c;
    }
    if (!(total > 0)) fail(ErrorKind::InvalidParameter, "bin counts must not all be zero");
    std::vector<double> shares(counts.size());
    for (size_t i = 0; i < counts.size(); ++i) shares[i] = counts[i] / total;
    return shares;
}

double population_stability_index(const std::vector<double> &expected, const std::vector<double> &actual,
                                  double epsilon) {
    if (expected.size() != actual.size())
        fail(ErrorKind::InvalidParameter, "the two distributions must have the same number of bins (" +
                                              std::to_string(expected.size()) + " and " +
                                              std::to_string(actual.size()) + ")");
    if (expected.empty()) fail(ErrorKind::InvalidParameter, "the distributions must have at least one bin");
    if (!(epsilon > 0 && epsilon < 1)) fail(ErrorKind::InvalidParameter, "epsilon must lie in (0, 1)");
    const std::vector<double> e = shares_of(expected), a = shares_of(actual);
    double psi = 0;
    for (size_t i = 0; i < e.size(); ++i) {
        const double ei = std::max(e[i], epsilon), ai = std::max(a[i], epsilon);
        psi += (ai - ei) * std::log(ai / ei);
    }
    return psi;
}

const char *drift_status(double psi) {
    if (psi > kPsiAlert) return "alert";
    if (psi > kPsiWarn) return "warn";
    return "ok";
}

size_t bin_index(double x, const std::vector<double> &edges) {
    if (std::isnan(x)) return edges.size();
    return size_t(std::upper_bound(edges.begin(), edges.end(), x) - edges.begin());
}

std::vector<double> quantile_edges(std::vector<double> values, unsigned bins) {
    std::vector<double> edges;
    if (values.empty() || bins < 2) return edges;
    for (double v : values)
        if (std::isnan(v)) fail(ErrorKind::InvalidParameter, "quantile edges of NaN are not defined");
    std::sort(values.begin(), values.end());
    const double n = double(values.size());
    for (unsigned k = 1; k < bins; ++k) {
        const double q = double(k) / double(bins);  // as the SQL computes it: k::float8 / bins
        const double rank = std::max(std::ceil(q * n), 1.0);
        const double v = values[size_t(rank) - 1];
        if (edges.empty() || v > edges.back()) edges.push_back(v);
    }
    return edges;
}

std::vector<std::string> encoded_input_names(const FeatureSpec &f) {
    std::vector<std::string> names;
    if (f.kind == FeatureKind::Categorical) {
        for (const auto &v : f.vocabulary) names.push_back(f.column + "=" + v);
        names.push_back(f.column + ":unknown");
    } else {
        names.push_back(f.column);
        if (f.missing_indicator) names.push_back(f.column + ":missing");
    }
    return names;
}

std::vector<InputMoments> reference_input_moments(const FeatureSpec &f, const FeatureReference &r) {
    if (!(r.rows > 0)) fail(ErrorKind::InvalidParameter, "the reference of feature " + f.column + " counted no rows");
    const double null_share = r.null_count / r.rows;
    std::vector<InputMoments> out;
    auto binary = [](double p) { return InputMoments{p, p * (1 - p)}; };
    if (f.kind == FeatureKind::Categorical) {
        if (r.value_counts.size() != f.vocabulary.size())
            fail(ErrorKind::InvalidParameter, "the reference of feature " + f.column + " has " +
                                                  std::to_string(r.value_counts.size()) + " values, the model " +
                                                  std::to_string(f.vocabulary.size()));
        for (double c : r.value_counts) out.push_back(binary(c / r.rows));
        out.push_back(binary((r.unknown_count + r.null_count) / r.rows));
        return out;
    }
    // z = (x - mean) / stddev for the non-NULL share w of the rows, 0 for the rest:
    // E[z] = w (m - mean) / stddev, E[z^2] = w (s^2 + (m - mean)^2) / stddev^2.
    const double w = 1 - null_share;
    const double d = (r.transformed_mean - f.mean) / f.stddev, s = r.transformed_stddev / f.stddev;
    const double mean = w * d, second = w * (s * s + d * d);
    out.push_back({mean, std::max(second - mean * mean, 0.0)});
    if (f.missing_indicator) out.push_back(binary(null_share));
    return out;
}

void InputMomentsAccumulator::add(const float *encoded) {
    for (size_t i = 0; i < sum_.size(); ++i) {
        const double x = encoded[i];
        sum_[i] += x;
        sum_squares_[i] += x * x;
    }
    ++n_;
}

std::vector<InputMoments> InputMomentsAccumulator::moments() const {
    std::vector<InputMoments> out(sum_.size());
    if (n_ == 0) return out;
    for (size_t i = 0; i < sum_.size(); ++i) {
        const double mean = sum_[i] / double(n_);
        out[i] = {mean, std::max(sum_squares_[i] / double(n_) - mean * mean, 0.0)};
    }
    return out;
}

double standardized_difference(const InputMoments &training, const InputMoments &serving) {
    const double difference = serving.mean - training.mean;
    const double pooled = std::sqrt((training.variance + serving.variance) / 2);
    // Differences below float noise (the encoder works in float32) count as none.
    if (std::fabs(difference) <= 1e-9) return 0.0;
    if (!(pooled > 1e-12)) return difference > 0 ? std::numeric_limits<double>::infinity()
                                                 : -std::numeric_limits<double>::infinity();
    return difference / pooled;
}

}  // namespace recsys
