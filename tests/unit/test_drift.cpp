// Unit tests for drift and skew statistics (src/core/drift_statistics.h and
// src/core/drift_prediction_skew.h): the PSI and its bins against hand-computed values and
// PostgreSQL's percentile_disc / width_bucket semantics, the training moments of encoded
// inputs against encoding the same values, the subsample correction, and the prediction skew
// of generated customers against scoring them one at a time.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "drift_prediction_skew.h"
#include "drift_statistics.h"
#include "errors.h"
#include "feature_encoder.h"
#include "lstm_forward.h"
#include "synthetic_customer_source.h"

namespace recsys {
namespace {

using testing::kLastMonth;
using testing::SyntheticCustomerSource;
using testing::synthetic_model;

TEST(Psi, IdenticalDistributionsGiveZero) {
    EXPECT_DOUBLE_EQ(population_stability_index({10, 20, 30}, {10, 20, 30}), 0.0);
    // Counts and shares of the same distribution are the same thing.
    EXPECT_NEAR(population_stability_index({1, 2, 3}, {100, 200, 300}), 0.0, 1e-15);
}

TEST(Psi, MatchesTheFormula) {
    // e = (0.5, 0.3, 0.2), a = (0.3, 0.3, 0.4): (0.3 - 0.5) ln(0.3 / 0.5) + 0 + (0.4 - 0.2) ln 2.
    const double expected = -0.2 * std::log(0.6) + 0.2 * std::log(2.0);
    EXPECT_NEAR(population_stability_index({5, 3, 2}, {3, 3, 4}), expected, 1e-12);
    // Symmetric in its arguments.
    EXPECT_NEAR(population_stability_index({3, 3, 4}, {5, 3, 2}), expected, 1e-12);
}

TEST(Psi, EmptyBinsAreRaisedToEpsilon) {
    // e = (1, 0), a = (0.9, 0.1): e_2 and nothing else is floored.
    const double eps = kPsiEpsilon;
    const double expected = (0.9 - 1.0) * std::log(0.9) + (0.1 - eps) * std::log(0.1 / eps);
    EXPECT_NEAR(population_stability_index({7, 0}, {9, 1}), expected, 1e-12);
    EXPECT_NEAR(population_stability_index({7, 0}, {9, 1}, 1e-3),
                (0.9 - 1.0) * std::log(0.9) + (0.1 - 1e-3) * std::log(0.1 / 1e-3), 1e-12);
    // Both empty: nothing.
    EXPECT_NEAR(population_stability_index({1, 0}, {1, 0}), 0.0, 1e-15);
}

TEST(Psi, RefusesMismatchedOrEmptyInput) {
    EXPECT_THROW(population_stability_index({1, 2}, {1, 2, 3}), Error);
    EXPECT_THROW(population_stability_index({}, {}), Error);
    EXPECT_THROW(population_stability_index({0, 0}, {1, 2}), Error);
    EXPECT_THROW(population_stability_index({-1, 2}, {1, 2}), Error);
    EXPECT_THROW(population_stability_index({std::nan(""), 2}, {1, 2}), Error);
    EXPECT_THROW(population_stability_index({1, 2}, {1, 2}, 0), Error);
}

TEST(Psi, StatusThresholds) {
    EXPECT_STREQ(drift_status(0.0), "ok");
    EXPECT_STREQ(drift_status(0.1), "ok");
    EXPECT_STREQ(drift_status(0.1000001), "warn");
    EXPECT_STREQ(drift_status(0.25), "warn");
    EXPECT_STREQ(drift_status(0.2500001), "alert");
}

TEST(Bins, WidthBucketSemantics) {
    const std::vector<double> edges = {10, 20, 30};
    EXPECT_EQ(bin_index(-1e300, edges), 0u);
    EXPECT_EQ(bin_index(9.999, edges), 0u);
    EXPECT_EQ(bin_index(10, edges), 1u);  // an edge is the lower bound of its bin
    EXPECT_EQ(bin_index(19.999, edges), 1u);
    EXPECT_EQ(bin_index(30, edges), 3u);
    EXPECT_EQ(bin_index(std::numeric_limits<double>::infinity(), edges), 3u);
    EXPECT_EQ(bin_index(std::nan(""), edges), 3u);  // NaN sorts last, as in PostgreSQL
    EXPECT_EQ(bin_index(5, {}), 0u);
}

TEST(Bins, PercentileDiscSemantics) {
    // 1 .. 100: percentile_disc(k / 10) is the value at rank ceil(10 k): 10, 20, ..., 90.
    std::vector<double> values;
    for (int i = 100; i >= 1; --i) values.push_back(i);
    EXPECT_EQ(quantile_edges(values), (std::vector<double>{10, 20, 30, 40, 50, 60, 70, 80, 90}));
    // 7 values: ranks ceil(0.7 k) = 1, 2, 3, 3, 4, 5, 5, 6, 7 -> distinct values.
    EXPECT_EQ(quantile_edges({7, 6, 5, 4, 3, 2, 1}), (std::vector<double>{1, 2, 3, 4, 5, 6, 7}));
    // A 0/1 feature: two edges, so three bins (below 0, 0, 1).
    std::vector<double> flags(1000, 0.0);
    for (size_t i = 0; i < 300; ++i) flags[i] = 1;
    EXPECT_EQ(quantile_edges(flags), (std::vector<double>{0, 1}));
    EXPECT_TRUE(quantile_edges({}).empty());
    EXPECT_THROW(quantile_edges({1, std::nan("")}), Error);
}

// Counts of values in the bins of edges.
std::vector<double> bin_counts(const std::vector<double> &values, const std::vector<double> &edges) {
    std::vector<double> counts(edges.size() + 1, 0.0);
    for (double v : values) counts[bin_index(v, edges)] += 1;
    return counts;
}

TEST(Bins, QuantileBinsOfASampleAndAShift) {
    std::mt19937_64 rng(7);
    std::normal_distribution<double> normal(50, 10);
    std::vector<double> reference(20000), same(20000), shifted(20000);
    for (auto &v : reference) v = normal(rng);
    for (auto &v : same) v = normal(rng);
    for (auto &v : shifted) v = normal(rng) + 10;  // one standard deviation
    const std::vector<double> edges = quantile_edges(reference);
    ASSERT_EQ(edges.size(), 9u);
    const std::vector<double> e = bin_counts(reference, edges);
    for (double c : e) EXPECT_NEAR(c / 20000, 0.1, 1e-3);  // ten equal bins
    // Sampling noise alone: about (bins - 1) (1/n + 1/m) = 0.0009.
    EXPECT_LT(population_stability_index(e, bin_counts(same, edges)), 0.01);
    const double psi = population_stability_index(e, bin_counts(shifted, edges));
    EXPECT_GT(psi, kPsiAlert);
    EXPECT_STREQ(drift_status(psi), "alert");
}

FeatureSpec numeric_feature(bool log1p, bool missing_indicator) {
    FeatureSpec f;
    f.column = "renta";
    f.kind = FeatureKind::Numeric;
    f.transform = log1p ? NumericTransform::Log1p : NumericTransform::Identity;
    f.clip_min = 0;
    f.clip_max = 1e6f;
    f.mean = 10.5f;
    f.stddev = 0.8f;
    f.missing_indicator = missing_indicator;
    return f;
}

TEST(InputMoments, NumericReferenceMatchesEncodedValues) {
    for (bool indicator : {true, false}) {
        Model model;
        model.features = {numeric_feature(true, indicator)};
        model.index();
        const FeatureSpec &f = model.features[0];
        FeatureEncoder encoder(model);
        std::mt19937_64 rng(3);
        std::lognormal_distribution<double> income(11, 0.6);
        std::uniform_real_distribution<double> u(0, 1);
        // Raw values as the encoder reads them (float32), a fifth NULL, some above the clip.
        std::vector<float> raw(5000);
        for (auto &x : raw) x = u(rng) < 0.2 ? std::nanf("") : float(u(rng) < 0.01 ? 5e6 : income(rng));
        // The reference, as record_feature_reference computes it in SQL.
        FeatureReference r;
        double sum = 0, squares = 0, n = 0;
        for (float x : raw) {
            r.rows += 1;
            if (std::isnan(x)) {
                r.null_count += 1;
                continue;
            }
            const double t = std::log1p(std::max(std::min(double(x), double(f.clip_max)), double(f.clip_min)));
            sum += t;
            squares += t * t;
            n += 1;
        }
        r.transformed_mean = sum / n;
        r.transformed_stddev = std::sqrt(squares / n - r.transformed_mean * r.transformed_mean);
        const std::vector<InputMoments> expected = reference_input_moments(f, r);
        ASSERT_EQ(expected.size(), f.encoded_width());
        ASSERT_EQ(encoded_input_names(f).size(), f.encoded_width());
        InputMomentsAccumulator acc(f.encoded_width());
        std::vector<float> out(f.encoded_width());
        for (float x : raw) {
            encoder.encode_feature(f, x, out.data());
            acc.add(out.data());
        }
        const std::vector<InputMoments> got = acc.moments();
        EXPECT_EQ(acc.count(), raw.size());
        for (size_t i = 0; i < got.size(); ++i) {
            EXPECT_NEAR(got[i].mean, expected[i].mean, 1e-5) << i;
            EXPECT_NEAR(got[i].variance, expected[i].variance, 1e-5) << i;
            EXPECT_NEAR(standardized_difference(expected[i], got[i]), 0.0, 1e-4);
        }
    }
}

TEST(InputMoments, CategoricalReferenceMatchesEncodedValues) {
    Model model;
    FeatureSpec f;
    f.column = "segmento";
    f.kind = FeatureKind::Categorical;
    f.vocabulary = {"01 - TOP", "02 - PARTICULARES", "03 - UNIVERSITARIO"};
    model.features = {f};
    model.index();
    FeatureEncoder encoder(model);
    const FeatureSpec &g = model.features[0];
    EXPECT_EQ(encoded_input_names(g), (std::vector<std::string>{"segmento=01 - TOP", "segmento=02 - PARTICULARES",
                                                                "segmento=03 - UNIVERSITARIO", "segmento:unknown"}));
    // 60 TOP, 300 PARTICULARES, 100 UNIVERSITARIO, 25 unknown values, 15 NULL.
    FeatureReference r;
    r.rows = 500;
    r.value_counts = {60, 300, 100};
    r.unknown_count = 25;
    r.null_count = 15;
    InputMomentsAccumulator acc(g.encoded_width());
    std::vector<float> out(g.encoded_width());
    const int counts[4] = {60, 300, 100, 40};
    for (int code = 0; code < 4; ++code)
        for (int i = 0; i < counts[code]; ++i) {
            encoder.encode_feature(g, code < 3 ? float(code) : -1.0f, out.data());
            acc.add(out.data());
        }
    const auto expected = reference_input_moments(g, r), got = acc.moments();
    ASSERT_EQ(expected.size(), 4u);
    for (size_t i = 0; i < 4; ++i) {
        EXPECT_NEAR(got[i].mean, expected[i].mean, 1e-12);
        EXPECT_NEAR(got[i].variance, expected[i].variance, 1e-12);
    }
    EXPECT_DOUBLE_EQ(expected[3].mean, 40.0 / 500);
    r.value_counts.pop_back();
    EXPECT_THROW(reference_input_moments(g, r), Error);
    r.rows = 0;
    EXPECT_THROW(reference_input_moments(g, r), Error);
}

TEST(InputMoments, StandardizedDifference) {
    EXPECT_DOUBLE_EQ(standardized_difference({0, 1}, {0.5, 1}), 0.5);
    EXPECT_DOUBLE_EQ(standardized_difference({0, 1}, {-1, 3}), -1 / std::sqrt(2.0));
    EXPECT_DOUBLE_EQ(standardized_difference({0.3, 0}, {0.3, 0}), 0.0);
    EXPECT_EQ(standardized_difference({0, 0}, {1, 0}), std::numeric_limits<double>::infinity());
    EXPECT_EQ(standardized_difference({1, 0}, {0, 0}), -std::numeric_limits<double>::infinity());
}

TEST(PredictionSkew, SubsampleCorrection) {
    const float scores[3] = {0.5f, 0.5f, 0.9f};
    const uint8_t held[3] = {0, 0, 1};
    EXPECT_DOUBLE_EQ(subsample_correction(scores, held, 3, 1.0), 1.0);
    // t = 1 - 0.5 * 0.5 = 0.75 (the held product does not count); A = 0.075 / 0.325.
    const double a = 0.1 * 0.75 / (1 - 0.75 + 0.1 * 0.75);
    EXPECT_NEAR(subsample_correction(scores, held, 3, 0.1), a + 0.1 * (1 - a), 1e-12);
    // The correction inverts the sampling: if the true P(any add) is A, training sees
    // A / (A + q (1 - A)); a model that learnt exactly that is corrected back to A.
    const double q = 0.1, truth = 0.03, seen = truth / (truth + q * (1 - truth));
    const float one[1] = {float(seen)};
    const uint8_t none[1] = {0};
    EXPECT_NEAR(double(one[0]) * subsample_correction(one, none, 1, q), truth, 1e-7);
    EXPECT_THROW(subsample_correction(scores, held, 3, 0), Error);
    EXPECT_THROW(subsample_correction(scores, held, 3, 1.5), Error);
}

TEST(PredictionSkew, Status) {
    SkewCell c;
    EXPECT_STREQ(skew_status(c), "ok");  // nobody
    c.customers = 10000;
    c.calibrated = 100;
    c.adds = 100;
    EXPECT_STREQ(skew_status(c), "ok");
    c.adds = 45;  // ratio 2.2, z = 5.5
    EXPECT_STREQ(skew_status(c), "alert");
    c.adds = 60;  // ratio 1.67, z = 4
    EXPECT_STREQ(skew_status(c), "warn");
    c.adds = 230;  // ratio 0.43, z = 13
    EXPECT_STREQ(skew_status(c), "alert");
    c.calibrated = 4;  // few expected adds: 0 or 9 is noise, 0 of 12 and 14 of 4 are not
    c.adds = 9;
    EXPECT_STREQ(skew_status(c), "ok");
    c.adds = 0;
    EXPECT_STREQ(skew_status(c), "ok");
    c.adds = 14;
    EXPECT_STREQ(skew_status(c), "alert");
    c.calibrated = 0.3;  // 4 adds where 0.3 were expected: too few to flag
    c.adds = 4;
    EXPECT_STREQ(skew_status(c), "ok");
    c.calibrated = 12;
    c.adds = 0;
    EXPECT_STREQ(skew_status(c), "alert");
}

// Every customer with rows in month and month + 1, scored alone with inputs ending at month.
PredictionSkew reference_skew(const Model &model, const SyntheticCustomerSource &source, int32_t month, double q) {
    const uint32_t P = model.product_count();
    const HistoryBatch &h = source.all();
    FeatureEncoder encoder(model);
    LstmForward forward(model, 1);
    std::vector<float> steps(model.window_months * encoder.step_width()), statics(encoder.static_width()), scores(P);
    std::vector<uint8_t> held(P);
    int32_t end_month;
    uint32_t length;
    size_t segment_feature = 0;
    while (model.features[segment_feature].column != "segmento") ++segment_feature;
    const size_t V = model.features[segment_feature].vocabulary.size();
    PredictionSkew ref;
    ref.products = P;
    ref.cells.assign((V + 2) * P, SkewCell{});
    for (size_t c = 0; c < h.customer_count(); ++c) {
        long r_now = -1, r_after = -1;
        for (size_t r = h.row_begin[c]; r < h.row_begin[c + 1]; ++r) {
            if (h.month[r] == month) r_now = long(r);
            if (h.month[r] == month + 1) r_after = long(r);
        }
        if (r_now < 0 || r_after < 0) continue;
        encoder.encode(h, c, 1, month, steps.data(), statics.data(), held.data(), &end_month, &length);
        forward.score(steps.data(), statics.data(), 1, scores.data());
        const long code = long(h.values[size_t(r_now) * h.feature_count + segment_feature]);
        const size_t g = code >= 0 ? size_t(code) + 1 : V + 1;
        // The correction, written out.
        double none = 1;
        for (uint32_t p = 0; p < P; ++p)
            if (!held[p]) none *= 1 - double(scores[p]);
        const double t = 1 - none, a = q * t / (1 - t + q * t), factor = a + q * (1 - a);
        for (uint32_t p = 0; p < P; ++p) {
            if (held[p]) continue;
            for (size_t s : {size_t(0), g}) {
                SkewCell &cell = ref.at(s, p);
                cell.customers += 1;
                cell.adds += h.products[size_t(r_after) * P + p];
                cell.predicted += scores[p];
                cell.calibrated += scores[p] * factor;
            }
        }
        ref.customers += 1;
    }
    return ref;
}

TEST(PredictionSkew, MatchesScoringOneCustomerAtATime) {
    const Model model = synthetic_model(6, 8, 11);
    SyntheticCustomerSource source(model, 700);
    const int32_t month = kLastMonth - 1;
    const PredictionSkew ref = reference_skew(model, source, month, 0.1);
    ASSERT_GT(ref.customers, 500u);
    FeatureEncoder encoder(model);
    for (size_t batch : {size_t(1), size_t(64)}) {
        PredictionSkewOptions options;
        options.batch_size = batch;
        options.no_add_sample_rate = 0.1;
        const PredictionSkew got = prediction_skew(model, encoder, source, month, options);
        EXPECT_EQ(got.customers, ref.customers);
        ASSERT_EQ(got.segments.size(), 5u);  // all, three segments, unknown
        EXPECT_EQ(got.segments.front(), "all");
        EXPECT_EQ(got.segments.back(), "unknown");
        uint64_t adds = 0;
        for (size_t g = 0; g < got.segments.size(); ++g)
            for (uint32_t p = 0; p < model.product_count(); ++p) {
                const SkewCell &a = got.at(g, p), &b = ref.at(g, p);
                EXPECT_EQ(a.customers, b.customers) << g << " " << p;
                EXPECT_EQ(a.adds, b.adds) << g << " " << p;
                EXPECT_NEAR(a.predicted, b.predicted, 1e-4 * (1 + b.predicted)) << g << " " << p;
                EXPECT_NEAR(a.calibrated, b.calibrated, 1e-4 * (1 + b.calibrated)) << g << " " << p;
                if (g == 0) adds += a.adds;
            }
        EXPECT_GT(adds, 0u);
        // The segments partition "all".
        for (uint32_t p = 0; p < model.product_count(); ++p) {
            uint64_t customers = 0;
            for (size_t g = 1; g < got.segments.size(); ++g) customers += got.at(g, p).customers;
            EXPECT_EQ(customers, got.at(0, p).customers);
        }
    }
}

}  // namespace
}  // namespace recsys
