// Unit tests for the core month evaluation (src/core/month_evaluation.h) on generated
// customers served by an in-memory CustomerSource: metrics and per-customer average precision
// against a straightforward reference (per customer: encode, forward, rank, apk), the
// subpopulations, and the fingerprint of the evaluation set.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "feature_encoder.h"
#include "lstm_forward.h"
#include "metrics.h"
#include "month_evaluation.h"
#include "paired_comparison.h"
#include "ranking.h"
#include "sha256.h"
#include "synthetic_customer_source.h"

namespace recsys {
namespace {

using testing::kLastMonth;
using testing::SyntheticCustomerSource;
using testing::synthetic_model;

constexpr size_t kCustomers = 1500;

long row_of(const HistoryBatch &h, size_t c, int32_t month) {
    for (size_t r = h.row_begin[c]; r < h.row_begin[c + 1]; ++r)
        if (h.month[r] == month) return long(r);
    return -1;
}

struct Reference {
    std::vector<int64_t> ids;
    std::vector<size_t> customer_index;  // into the source's customers
    std::vector<double> ap;
    std::vector<uint8_t> adder;
    RankingMetrics metrics;
    explicit Reference(uint32_t products) : metrics(products, kEvaluationK) {}
};

// Every customer with rows in month - 1 and month, one at a time from its whole history.
Reference reference_evaluation(const Model &model, const SyntheticCustomerSource &source, int32_t month) {
    const uint32_t P = model.product_count();
    const HistoryBatch &h = source.all();
    FeatureEncoder encoder(model);
    LstmForward forward(model, 1);
    std::vector<float> steps(model.window_months * encoder.step_width()), statics(encoder.static_width()), scores(P);
    std::vector<uint8_t> held(P), actual(P);
    int32_t end_month;
    uint32_t length;
    Reference ref(P);
    for (size_t c = 0; c < h.customer_count(); ++c) {
        const long rp = row_of(h, c, month - 1), rm = row_of(h, c, month);
        if (rp < 0 || rm < 0) continue;
        encoder.encode(h, c, 1, month - 1, steps.data(), statics.data(), held.data(), &end_month, &length);
        forward.score(steps.data(), statics.data(), 1, scores.data());
        const auto ranked = top_k(scores.data(), held.data(), P, kEvaluationK);
        std::vector<uint32_t> ids;
        for (const Ranked &r : ranked) ids.push_back(r.product);
        bool any = false;
        for (uint32_t p = 0; p < P; ++p) {
            actual[p] = h.products[size_t(rm) * P + p] && !h.products[size_t(rp) * P + p];
            any = any || actual[p];
        }
        ref.ids.push_back(h.customer_ids[c]);
        ref.customer_index.push_back(c);
        ref.ap.push_back(average_precision_at_k(ids.data(), ids.size(), actual.data(), P, kEvaluationK));
        ref.adder.push_back(any ? 1 : 0);
        ref.metrics.add(ids.data(), ids.size(), actual.data());
    }
    return ref;
}

MonthEvaluation evaluate(const Model &model, CustomerSource &source, int32_t month, size_t batch, bool outcomes,
                         const std::string &relation = "test.snapshots") {
    FeatureEncoder encoder(model);
    EvaluationOptions options;
    options.batch_size = batch;
    options.outcomes = outcomes;
    options.relation = relation;
    return evaluate_month(model, encoder, source, month, options);
}

TEST(MonthEvaluation, MatchesReferenceOneCustomerPerBatch) {
    const Model model = synthetic_model(6, 16, 3);
    SyntheticCustomerSource source(model, kCustomers);
    const Reference ref = reference_evaluation(model, source, kLastMonth);
    ASSERT_GT(ref.ids.size(), kCustomers / 2);
    ASSERT_GT(ref.metrics.adders(), 10u);

    const MonthEvaluation ev = evaluate(model, source, kLastMonth, 1, true);
    EXPECT_EQ(ev.lstm.customers(), ref.metrics.customers());
    EXPECT_EQ(ev.lstm.adders(), ref.metrics.adders());
    EXPECT_EQ(ev.lstm.map(), ref.metrics.map());
    EXPECT_EQ(ev.lstm.map_adders(), ref.metrics.map_adders());
    EXPECT_EQ(ev.lstm.precision(), ref.metrics.precision());
    EXPECT_EQ(ev.lstm.recall(), ref.metrics.recall());
    EXPECT_EQ(ev.lstm.coverage(), ref.metrics.coverage());
    EXPECT_GT(ev.lstm.map(), 0.0);

    ASSERT_TRUE(ev.outcomes.has_value());
    const CustomerOutcomes &o = *ev.outcomes;
    EXPECT_EQ(o.ids, ref.ids);
    EXPECT_EQ(o.average_precision, ref.ap);
    EXPECT_EQ(o.adder, ref.adder);
    EXPECT_EQ(o.groups.customers(), ref.ids.size());
    // MAP@7 is the mean of the per-customer values.
    double sum = 0;
    for (double ap : o.average_precision) sum += ap;
    EXPECT_NEAR(sum / double(o.average_precision.size()), ev.lstm.map(), 1e-15);
}

TEST(MonthEvaluation, BatchSizeDoesNotChangeTheEvaluation) {
    const Model model = synthetic_model(6, 16, 3);
    SyntheticCustomerSource source(model, kCustomers);
    const MonthEvaluation one = evaluate(model, source, kLastMonth, 1, true);
    const MonthEvaluation many = evaluate(model, source, kLastMonth, 64, true);
    EXPECT_EQ(many.outcomes->ids, one.outcomes->ids);
    EXPECT_EQ(many.outcomes->adder, one.outcomes->adder);
    EXPECT_EQ(many.outcomes->fingerprint, one.outcomes->fingerprint);
    // Batched GEMMs may round differently; a near tie may then rank the other way.
    size_t same = 0;
    for (size_t i = 0; i < one.outcomes->ids.size(); ++i)
        same += many.outcomes->average_precision[i] == one.outcomes->average_precision[i];
    EXPECT_GE(double(same), 0.99 * double(one.outcomes->ids.size()));
    EXPECT_NEAR(many.lstm.map(), one.lstm.map(), 1e-3);
}

TEST(MonthEvaluation, EarlierMonthAndRowsRead) {
    const Model model = synthetic_model(4, 8, 5);
    SyntheticCustomerSource source(model, 600);
    const int32_t month = kLastMonth - 3;
    const Reference ref = reference_evaluation(model, source, month);
    const MonthEvaluation ev = evaluate(model, source, month, 1, false);
    EXPECT_FALSE(ev.outcomes.has_value());
    EXPECT_EQ(ev.lstm.customers(), ref.metrics.customers());
    EXPECT_EQ(ev.lstm.map(), ref.metrics.map());
    // Rows read: the window (4 months) and the month before it, up to the month.
    uint64_t rows = 0;
    const HistoryBatch &h = source.all();
    for (int32_t m : h.month) rows += m >= month - 1 - 4 && m <= month;
    EXPECT_EQ(ev.rows, rows);
    EXPECT_EQ(evaluation_first_month(model, month, EvaluationOptions{}), month - 5);
}

TEST(MonthEvaluation, BaselinesRankTheSameCustomers) {
    const Model model = synthetic_model(6, 8, 1);
    SyntheticCustomerSource source(model, 800);
    FeatureEncoder encoder(model);
    EvaluationOptions options;
    options.batch_size = 32;
    options.baselines = true;
    options.outcomes = true;
    options.relation = "test.snapshots";
    const MonthEvaluation ev = evaluate_month(model, encoder, source, kLastMonth, options);
    const MonthEvaluation plain = evaluate(model, source, kLastMonth, 32, true);
    EXPECT_EQ(ev.popularity.customers(), ev.lstm.customers());
    EXPECT_EQ(ev.segment_popularity.customers(), ev.lstm.customers());
    EXPECT_EQ(ev.popularity.adders(), ev.lstm.adders());
    EXPECT_GT(ev.popularity.map(), 0.0);
    EXPECT_EQ(ev.lstm.map(), plain.lstm.map());
    EXPECT_EQ(ev.outcomes->average_precision, plain.outcomes->average_precision);
    EXPECT_EQ(ev.outcomes->fingerprint, plain.outcomes->fingerprint);
}

std::string label_or_unknown(const char *value, const std::vector<std::string> &vocabulary) {
    for (const std::string &v : vocabulary)
        if (value && v == value) return v;
    return "unknown";
}

TEST(MonthEvaluation, SubpopulationsFromTheMonthBefore) {
    const Model model = synthetic_model(6, 8, 2);
    SyntheticCustomerSource source(model, kCustomers);
    const int32_t month = kLastMonth;
    const MonthEvaluation ev = evaluate(model, source, month, 50, true);
    const Reference ref = reference_evaluation(model, source, month);
    const Subpopulations &g = ev.outcomes->groups;
    ASSERT_EQ(g.dimensions(),
              (std::vector<std::string>{"segment", "age_band", "income_band", "tenure", "channel", "add_history"}));
    ASSERT_EQ(g.customers(), ref.ids.size());
    const double nan = std::nan("");
    size_t added_before = 0, unknown_income = 0;
    for (size_t i = 0; i < ref.ids.size(); ++i) {
        const auto &rows = source.rows(ref.customer_index[i]);
        const SyntheticRow *before = nullptr;
        bool added = false;
        for (size_t r = 0; r < rows.size(); ++r) {
            if (rows[r].month == month - 1) before = &rows[r];
            if (r > 0 && rows[r].month >= month - 12 && rows[r].month <= month - 1 &&
                rows[r - 1].month == rows[r].month - 1)
                for (int p = 0; p < 24; ++p) added = added || (rows[r].products[p] && !rows[r - 1].products[p]);
        }
        ASSERT_NE(before, nullptr);
        const std::vector<std::string> expected = {
            label_or_unknown(before->segmento, {"01 - TOP", "02 - PARTICULARES", "03 - UNIVERSITARIO"}),
            age_band(before->age < 0 ? nan : before->age),
            income_band(double(float(before->renta))),
            tenure_band(before->antiguedad < 0 ? nan : before->antiguedad),
            label_or_unknown(before->canal_entrada, {"KHE", "KAT", "KFC"}),
            added ? "added before" : "no add in history",
        };
        for (size_t d = 0; d < expected.size(); ++d)
            ASSERT_EQ(g.label(d, g.code_of(i, d)), expected[d]) << "customer " << ref.ids[i] << " " << g.dimensions()[d];
        added_before += added;
        unknown_income += std::isnan(before->renta);
    }
    // Both values of add_history occur, and NULL incomes are "unknown".
    EXPECT_GT(added_before, 0u);
    EXPECT_LT(added_before, ref.ids.size());
    EXPECT_GT(unknown_income, 0u);
}

TEST(MonthEvaluation, DimensionsFollowTheFeatures) {
    Model model = synthetic_model(3, 4, 1);
    std::vector<FeatureSpec> kept;
    for (const FeatureSpec &f : model.features)
        if (f.column != "segmento" && f.column != "canal_entrada" && f.column != "renta") kept.push_back(f);
    model.features = kept;
    EXPECT_EQ(subpopulation_dimensions(model), (std::vector<std::string>{"age_band", "tenure", "add_history"}));
}

// The documented layout, hashed in one piece per chunk from a plain byte buffer.
Sha256Digest reference_fingerprint(const std::string &relation, int32_t month, uint32_t P,
                                   const std::vector<int64_t> &ids, const std::vector<uint8_t> &held,
                                   const std::vector<uint8_t> &added) {
    auto le = [](std::vector<uint8_t> &out, uint64_t v, int bytes) {
        for (int i = 0; i < bytes; ++i) out.push_back(uint8_t(v >> (8 * i)));
    };
    std::vector<uint8_t> header;
    const std::string magic = "recsys evaluation set 1";
    header.insert(header.end(), magic.begin(), magic.end());
    le(header, relation.size(), 4);
    header.insert(header.end(), relation.begin(), relation.end());
    le(header, uint32_t(month), 4);
    le(header, P, 4);
    Sha256Digest d = sha256(header.data(), header.size());
    for (size_t first = 0; first < ids.size(); first += EvaluationFingerprint::kChunk) {
        std::vector<uint8_t> chunk(d.begin(), d.end());
        for (size_t i = first; i < std::min(ids.size(), first + EvaluationFingerprint::kChunk); ++i) {
            le(chunk, uint64_t(ids[i]), 8);
            chunk.insert(chunk.end(), held.begin() + i * P, held.begin() + (i + 1) * P);
            chunk.insert(chunk.end(), added.begin() + i * P, added.begin() + (i + 1) * P);
        }
        d = sha256(chunk.data(), chunk.size());
    }
    std::vector<uint8_t> last(d.begin(), d.end());
    le(last, ids.size(), 8);
    return sha256(last.data(), last.size());
}

TEST(EvaluationFingerprint, FollowsTheDocumentedLayout) {
    const uint32_t P = 5;
    for (size_t n : {size_t(0), size_t(3), EvaluationFingerprint::kChunk, 2 * EvaluationFingerprint::kChunk + 17}) {
        std::vector<int64_t> ids;
        std::vector<uint8_t> held, added;
        for (size_t i = 0; i < n; ++i) {
            ids.push_back(int64_t(i * 7) - 3);  // a negative id too
            for (uint32_t p = 0; p < P; ++p) {
                held.push_back((i + p) % 3 == 0);
                added.push_back((i * p) % 5 == 1);
            }
        }
        EvaluationFingerprint f("public.snapshots", 2016 * 12 + 4, P);
        for (size_t i = 0; i < n; ++i) f.add(ids[i], held.data() + i * P, added.data() + i * P);
        EXPECT_EQ(f.finish(), reference_fingerprint("public.snapshots", 2016 * 12 + 4, P, ids, held, added)) << n;
    }
}

TEST(MonthEvaluation, FingerprintOfTheEvaluatedRows) {
    const Model model = synthetic_model(6, 8, 1);
    SyntheticCustomerSource source(model, 700);
    const int32_t month = kLastMonth;
    const Sha256Digest base = evaluate(model, source, month, 16, true).outcomes->fingerprint;
    // Stable, and the same for another version of the model (only the rows count).
    EXPECT_EQ(evaluate(model, source, month, 16, true).outcomes->fingerprint, base);
    EXPECT_EQ(evaluate(synthetic_model(4, 12, 99), source, month, 7, true).outcomes->fingerprint, base);
    // The documented bytes of the evaluated customers.
    const Reference ref = reference_evaluation(model, source, month);
    const HistoryBatch &h = source.all();
    const uint32_t P = model.product_count();
    std::vector<uint8_t> held, added;
    for (size_t c : ref.customer_index) {
        const long rp = row_of(h, c, month - 1), rm = row_of(h, c, month);
        for (uint32_t p = 0; p < P; ++p) {
            held.push_back(h.products[size_t(rp) * P + p]);
            added.push_back(h.products[size_t(rm) * P + p] && !h.products[size_t(rp) * P + p]);
        }
    }
    EXPECT_EQ(base, reference_fingerprint("test.snapshots", month, P, ref.ids, held, added));
    EXPECT_NE(evaluate(model, source, month, 16, true, "test.other").outcomes->fingerprint, base);
    EXPECT_NE(evaluate(model, source, month - 1, 16, true).outcomes->fingerprint, base);

    // One product flag of one customer's month - 1 row changes it; so does one of month.
    const size_t c = ref.customer_index[ref.ids.size() / 2];
    uint8_t &flag_before = source.all().products[size_t(row_of(h, c, month - 1)) * P + 3];
    flag_before ^= 1;
    const Sha256Digest changed_before = evaluate(model, source, month, 16, true).outcomes->fingerprint;
    EXPECT_NE(changed_before, base);
    flag_before ^= 1;
    uint8_t &flag_now = source.all().products[size_t(row_of(h, c, month)) * P + 3];
    flag_now ^= 1;
    const Sha256Digest changed_now = evaluate(model, source, month, 16, true).outcomes->fingerprint;
    EXPECT_NE(changed_now, base);
    EXPECT_NE(changed_now, changed_before);
    flag_now ^= 1;
    EXPECT_EQ(evaluate(model, source, month, 16, true).outcomes->fingerprint, base);
    // A feature value is not part of it.
    source.all().values[size_t(row_of(h, c, month - 1)) * h.feature_count] += 1.0f;
    EXPECT_EQ(evaluate(model, source, month, 16, true).outcomes->fingerprint, base);
}

TEST(MonthEvaluation, PollStopsIt) {
    const Model model = synthetic_model(6, 8, 1);
    SyntheticCustomerSource source(model, 300);
    FeatureEncoder encoder(model);
    EvaluationOptions options;
    options.batch_size = 8;
    int polls = 0;
    options.poll = [&] {
        if (++polls == 5) throw std::runtime_error("cancel");
    };
    EXPECT_THROW(evaluate_month(model, encoder, source, kLastMonth, options), std::runtime_error);
    EXPECT_EQ(polls, 5);
}

}  // namespace
}  // namespace recsys
