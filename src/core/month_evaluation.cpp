#include "month_evaluation.h"

#include <algorithm>
#include <cstring>
#include <map>

#include "errors.h"
#include "example_batch.h"
#include "lstm_forward.h"
#include "ranking.h"

namespace recsys {

namespace {

template <typename T>
void put_le(std::vector<uint8_t> &out, T value) {
    using U = std::make_unsigned_t<T>;
    const U u = static_cast<U>(value);
    for (size_t i = 0; i < sizeof(T); ++i) out.push_back(uint8_t(u >> (8 * i)));
}

// Where a subpopulation dimension's value comes from.
enum class DimensionSource { CategoricalLabel, AgeBand, IncomeBand, TenureBand, AddHistory };

struct Dimension {
    const char *name;
    DimensionSource source;
    long feature = -1;  // index in model.features
};

long feature_index(const Model &model, const char *column, FeatureKind kind) {
    for (size_t i = 0; i < model.features.size(); ++i)
        if (model.features[i].column == column && model.features[i].kind == kind) return long(i);
    return -1;
}

std::vector<Dimension> dimensions_of(const Model &model) {
    const struct {
        const char *name, *column;
        FeatureKind kind;
        DimensionSource source;
    } candidates[] = {
        {"segment", kSegmentColumn, FeatureKind::Categorical, DimensionSource::CategoricalLabel},
        {"age_band", "age", FeatureKind::Numeric, DimensionSource::AgeBand},
        {"income_band", "renta", FeatureKind::Numeric, DimensionSource::IncomeBand},
        {"tenure", "antiguedad", FeatureKind::Numeric, DimensionSource::TenureBand},
        {"channel", "canal_entrada", FeatureKind::Categorical, DimensionSource::CategoricalLabel},
    };
    std::vector<Dimension> out;
    for (const auto &c : candidates) {
        const long f = feature_index(model, c.column, c.kind);
        if (f >= 0) out.push_back({c.name, c.source, f});
    }
    out.push_back({"add_history", DimensionSource::AddHistory, -1});
    return out;
}

// Whether customer c added a product in one of the kHistoryMonths months before `month`.
bool added_before(const HistoryBatch &h, size_t c, int32_t month) {
    const size_t P = h.product_count;
    for (size_t r = h.row_begin[c] + 1; r < h.row_begin[c + 1]; ++r) {
        const int32_t m = h.month[r];
        if (m < month - kHistoryMonths || m > month - 1 || h.month[r - 1] != m - 1) continue;
        const uint8_t *now = h.products.data() + r * P, *before = now - P;
        for (size_t p = 0; p < P; ++p)
            if (now[p] && !before[p]) return true;
    }
    return false;
}

}  // namespace

EvaluationFingerprint::EvaluationFingerprint(const std::string &relation, int32_t month, uint32_t products)
    : products_(products) {
    std::vector<uint8_t> header;
    static const char kMagic[] = "recsys evaluation set 1";
    header.insert(header.end(), kMagic, kMagic + sizeof kMagic - 1);
    put_le(header, uint32_t(relation.size()));
    header.insert(header.end(), relation.begin(), relation.end());
    put_le(header, month);
    put_le(header, products);
    chained_ = sha256(header.data(), header.size());
    chunk_.reserve(chained_.size() + kChunk * (sizeof(int64_t) + 2 * size_t(products)));
    chunk_.assign(chained_.begin(), chained_.end());
}

void EvaluationFingerprint::add(int64_t customer, const uint8_t *held_before, const uint8_t *added) {
    put_le(chunk_, customer);
    for (uint32_t p = 0; p < products_; ++p) chunk_.push_back(held_before[p] ? 1 : 0);
    for (uint32_t p = 0; p < products_; ++p) chunk_.push_back(added[p] ? 1 : 0);
    if (++customers_ % kChunk == 0) flush();
}

void EvaluationFingerprint::flush() {
    chained_ = sha256(chunk_.data(), chunk_.size());
    chunk_.assign(chained_.begin(), chained_.end());
}

Sha256Digest EvaluationFingerprint::finish() {
    if (chunk_.size() > chained_.size()) flush();
    put_le(chunk_, customers_);
    return sha256(chunk_.data(), chunk_.size());
}

size_t CustomerOutcomes::bytes_per_customer(size_t dimensions) {
    // ids, average precision and adder flags are reserved; the subpopulation codes grow by
    // doubling, so count them twice.
    return sizeof(int64_t) + sizeof(double) + sizeof(uint8_t) + 2 * dimensions * sizeof(uint32_t);
}

std::vector<std::string> subpopulation_dimensions(const Model &model) {
    std::vector<std::string> names;
    for (const Dimension &d : dimensions_of(model)) names.emplace_back(d.name);
    return names;
}

int32_t evaluation_first_month(const Model &model, int32_t month, const EvaluationOptions &options) {
    // The windows need T months before month, plus one for their first "added" flags.
    int32_t first = month - 1 - int32_t(model.window_months);
    if (model.history == HistoryMode::FromStartMonth) first = std::min(first, model.start_month);
    if (options.baselines || options.outcomes) first = std::min(first, month - kHistoryMonths - 1);
    return first;
}

BatchBytes evaluation_bytes(const Model &model) {
    const size_t P = model.product_count();
    return LstmForward::buffer_bytes(model) + ExampleBatch::buffer_bytes(model) +
           BatchBytes{P * sizeof(uint32_t), P * (sizeof(uint8_t) + sizeof(float))};
}

MonthEvaluation evaluate_month(const Model &model, const FeatureEncoder &encoder, CustomerSource &source, int32_t month,
                               const EvaluationOptions &options) {
    const uint32_t P = model.product_count();
    const size_t batch_size = options.batch_size;
    if (batch_size == 0) fail(ErrorKind::InvalidParameter, "evaluation batch size must be at least 1");
    MonthEvaluation result(P);

    // The segment of a row: the vocabulary code of the "segmento" feature (-1 unknown/NULL).
    const long segment_feature = feature_index(model, kSegmentColumn, FeatureKind::Categorical);
    auto segment_of = [&](const HistoryBatch &h, size_t r) {
        return segment_feature < 0 ? -1 : int32_t(h.values[r * h.feature_count + size_t(segment_feature)]);
    };

    std::vector<double> global(P, 0.0);
    std::map<int32_t, std::vector<double>> by_segment;
    // Per scored customer, for the baselines: held and added flags, and the segment.
    std::vector<uint8_t> held_all, added_all;
    std::vector<int32_t> segment_all;

    const std::vector<Dimension> dimensions = options.outcomes ? dimensions_of(model) : std::vector<Dimension>{};
    std::optional<EvaluationFingerprint> fingerprint;
    std::vector<uint32_t> codes(dimensions.size());
    if (options.outcomes) {
        result.outcomes.emplace(subpopulation_dimensions(model));
        CustomerOutcomes &o = *result.outcomes;
        o.ids.reserve(options.expected_customers);
        o.average_precision.reserve(options.expected_customers);
        o.adder.reserve(options.expected_customers);
        fingerprint.emplace(options.relation, month, P);
    }

    LstmForward forward(model, batch_size);
    forward.set_poll(options.poll);
    ExampleBatch batch(encoder, batch_size, P);
    std::vector<uint8_t> added(batch_size * P);
    std::vector<float> scores(batch_size * P);
    std::vector<uint32_t> ranked_ids(P);

    auto score_batch = [&] {
        if (batch.size() == 0) return;
        batch.finish();
        forward.score(batch.steps(), batch.statics(), batch.size(), scores.data(), batch.lengths());
        for (size_t b = 0; b < batch.size(); ++b) {
            const auto ranked = top_k(scores.data() + b * P, batch.held(b), P, kEvaluationK);
            for (size_t i = 0; i < ranked.size(); ++i) ranked_ids[i] = ranked[i].product;
            const uint8_t *actual = added.data() + b * P;
            result.lstm.add(ranked_ids.data(), ranked.size(), actual);
            if (result.outcomes)
                result.outcomes->average_precision.push_back(
                    average_precision_at_k(ranked_ids.data(), ranked.size(), actual, P, kEvaluationK));
        }
        batch.clear();
        poll(options.poll);
    };

    // The subpopulation codes of customer c, from its row r of month - 1.
    auto record_subpopulations = [&](const HistoryBatch &h, size_t c, size_t r) {
        CustomerOutcomes &o = *result.outcomes;
        for (size_t d = 0; d < dimensions.size(); ++d) {
            const Dimension &dim = dimensions[d];
            const float raw = dim.feature >= 0 ? h.values[r * h.feature_count + size_t(dim.feature)] : 0.0f;
            std::string label;
            switch (dim.source) {
                case DimensionSource::CategoricalLabel: {
                    const auto &vocabulary = model.features[size_t(dim.feature)].vocabulary;
                    const long code = long(raw);
                    label = code >= 0 && size_t(code) < vocabulary.size() ? vocabulary[size_t(code)] : "unknown";
                    break;
                }
                case DimensionSource::AgeBand: label = age_band(raw); break;
                case DimensionSource::IncomeBand: label = income_band(raw); break;
                case DimensionSource::TenureBand: label = tenure_band(raw); break;
                case DimensionSource::AddHistory:
                    label = added_before(h, c, month) ? "added before" : "no add in history";
                    break;
            }
            codes[d] = o.groups.code(d, label);
        }
        o.groups.add_customer(codes.data());
    };

    result.rows = source.for_each_customer(evaluation_first_month(model, month, options), month + 1,
                                           [&](const HistoryBatch &h, size_t c) {
        const size_t begin = h.row_begin[c], end = h.row_begin[c + 1];
        if (options.baselines) {
            for (size_t r = begin + 1; r < end; ++r) {
                const int32_t m = h.month[r];
                if (m < month - kHistoryMonths || m > month - 1 || h.month[r - 1] != m - 1) continue;
                const uint8_t *now = h.products.data() + r * P, *before = now - P;
                std::vector<double> *seg = nullptr;
                for (uint32_t p = 0; p < P; ++p) {
                    if (!now[p] || before[p]) continue;
                    global[p] += 1.0;
                    if (!seg) {
                        auto &v = by_segment[segment_of(h, r)];
                        if (v.empty()) v.assign(P, 0.0);
                        seg = &v;
                    }
                    (*seg)[p] += 1.0;
                }
            }
        }
        const long rp = find_month_row(h, c, month - 1), rm = find_month_row(h, c, month);
        if (rp < 0 || rm < 0) return;
        const size_t slot = batch.add(h, c, month - 1);
        const uint8_t *now = h.products.data() + size_t(rm) * P, *before = h.products.data() + size_t(rp) * P;
        uint8_t *a = added.data() + slot * P;
        bool any_add = false;
        for (uint32_t p = 0; p < P; ++p) {
            a[p] = now[p] && !before[p] ? 1 : 0;
            any_add = any_add || a[p];
        }
        if (options.baselines) {
            held_all.insert(held_all.end(), before, before + P);
            added_all.insert(added_all.end(), a, a + P);
            segment_all.push_back(segment_of(h, size_t(rp)));
        }
        if (result.outcomes) {
            result.outcomes->ids.push_back(h.customer_ids[c]);
            result.outcomes->adder.push_back(any_add ? 1 : 0);
            record_subpopulations(h, c, size_t(rp));
            fingerprint->add(h.customer_ids[c], before, a);
        }
        if (batch.full()) score_batch();
    });
    score_batch();
    if (result.outcomes) result.outcomes->fingerprint = fingerprint->finish();

    if (options.baselines) {
        std::vector<float> global_scores(global.begin(), global.end());
        std::map<int32_t, std::vector<float>> segment_scores;
        for (const auto &[segment, counts] : by_segment) segment_scores[segment].assign(counts.begin(), counts.end());
        const size_t n = segment_all.size();
        for (size_t i = 0; i < n; ++i) {
            const uint8_t *held = held_all.data() + i * P, *a = added_all.data() + i * P;
            auto ranked = top_k(global_scores.data(), held, P, kEvaluationK);
            for (size_t j = 0; j < ranked.size(); ++j) ranked_ids[j] = ranked[j].product;
            result.popularity.add(ranked_ids.data(), ranked.size(), a);
            auto it = segment_scores.find(segment_all[i]);
            const float *s = it == segment_scores.end() ? global_scores.data() : it->second.data();
            ranked = top_k(s, held, P, kEvaluationK);
            for (size_t j = 0; j < ranked.size(); ++j) ranked_ids[j] = ranked[j].product;
            result.segment_popularity.add(ranked_ids.data(), ranked.size(), a);
            if ((i & 4095) == 0) poll(options.poll);
        }
    }
    return result;
}

}  // namespace recsys
