// recsys.evaluate(): MAP@7 and friends of a registered model on one month, next to two
// baselines (global and per-segment popularity of adds), computed by the same metric code.
#include "evaluate_function.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include "lstm_forward.h"
#include "memory_budget.h"
#include "model_cache.h"
#include "ranking.h"
#include "model_json.h"
#include "sql_text.h"
#include "sql_values.h"

using namespace recsys;
using namespace recsys::pg;

namespace recsys::pg {

ExampleBatch::ExampleBatch(const FeatureEncoder &encoder, size_t capacity, uint32_t products)
    : encoder_(encoder), capacity_(capacity), products_(products), T_(encoder.window()), W_(encoder.step_width()) {
    staged_.resize(capacity * T_ * W_);
    steps_.resize(capacity * T_ * W_);
    statics_.resize(capacity * encoder.static_width());
    labels_.resize(capacity * products);
    mask_.resize(capacity * products);
    held_.resize(capacity * products);
    customers_.resize(capacity);
    end_month_.resize(capacity);
    lengths_.resize(capacity);
    from_start_ = encoder.history_from_start();
}

BatchBytes ExampleBatch::buffer_bytes(const Model &model) {
    const size_t T = model.window_months, W = model.step_width(), P = model.product_count();
    BatchBytes b;
    b.per_customer = (2 * T * W + model.static_width() + 2 * P) * sizeof(float) + P * sizeof(uint8_t) +
                     sizeof(int64_t) + sizeof(int32_t) + sizeof(uint32_t);
    return b;
}

BatchBytes evaluation_bytes(const Model &model) {
    const size_t P = model.product_count();
    return LstmForward::buffer_bytes(model) + ExampleBatch::buffer_bytes(model) +
           BatchBytes{P * sizeof(uint32_t), P * (sizeof(uint8_t) + sizeof(float))};
}

size_t ExampleBatch::add(const HistoryBatch &history, size_t c, int32_t as_of) {
    if (n_ >= capacity_) fail(ErrorKind::Internal, "example batch is full");
    const size_t slot = n_++;
    encoder_.encode(history, c, 1, as_of, staged_.data() + slot * T_ * W_, statics_.data() + slot * encoder_.static_width(),
                    held_.data() + slot * products_, end_month_.data() + slot, lengths_.data() + slot);
    customers_[slot] = history.customer_ids[c];
    return slot;
}

void ExampleBatch::finish() {
    for (size_t b = 0; b < n_; ++b)
        for (size_t t = 0; t < T_; ++t)
            std::memcpy(steps_.data() + (t * n_ + b) * W_, staged_.data() + (b * T_ + t) * W_, W_ * sizeof(float));
}

long find_month_row(const HistoryBatch &history, size_t c, int32_t month) {
    for (size_t r = history.row_begin[c]; r < history.row_begin[c + 1]; ++r) {
        if (history.month[r] == month) return long(r);
        if (history.month[r] > month) break;
    }
    return -1;
}


MonthEvaluation evaluate_month(const Model &model, SourceReader &reader, const FeatureEncoder &encoder, int32_t month,
                               bool baselines, int64_t max_id, size_t batch_size) {
    const uint32_t P = model.product_count();
    const int32_t T = int32_t(model.window_months);
    MonthEvaluation result(P);
    // Rows the windows need (T months before month, plus one for their first "added" flags),
    // and the 12 months of adds (13 months of rows) for the baselines.
    int32_t first = month - 1 - T;
    if (model.history == HistoryMode::FromStartMonth) first = std::min(first, model.start_month);
    if (baselines) first = std::min(first, month - 13);
    std::string where = reader.months_between(first, month + 1);
    if (max_id >= 0) where += " AND " + reader.id_sql() + sql::op("<=") + sql::int8_literal(max_id);
    const std::string query = reader.batch_query(where);

    // The segment of a row: the vocabulary code of the "segmento" feature (-1 unknown/NULL).
    long segment_feature = -1;
    for (size_t i = 0; i < model.features.size(); ++i)
        if (model.features[i].column == "segmento" && model.features[i].kind == FeatureKind::Categorical)
            segment_feature = long(i);

    std::vector<double> global(P, 0.0);
    std::map<int32_t, std::vector<double>> by_segment;
    // Per scored customer, for the baselines: held and added flags, and the segment.
    std::vector<uint8_t> held_all, added_all;
    std::vector<int32_t> segment_all;

    LstmForward forward(model, batch_size);
    forward.set_poll(interrupt_poll());
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
            result.lstm.add(ranked_ids.data(), ranked.size(), added.data() + b * P);
        }
        batch.clear();
        check_for_interrupts();
    };

    auto segment_of = [&](const HistoryBatch &h, size_t r) {
        return segment_feature < 0 ? -1 : int32_t(h.values[r * h.feature_count + size_t(segment_feature)]);
    };

    stream_customers(reader, model, query, &result.rows, [&](const HistoryBatch &h, size_t c) {
        const size_t begin = h.row_begin[c], end = h.row_begin[c + 1];
        if (baselines) {
            for (size_t r = begin + 1; r < end; ++r) {
                const int32_t m = h.month[r];
                if (m < month - 12 || m > month - 1 || h.month[r - 1] != m - 1) continue;
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
        for (uint32_t p = 0; p < P; ++p) a[p] = now[p] && !before[p] ? 1 : 0;
        if (baselines) {
            held_all.insert(held_all.end(), before, before + P);
            added_all.insert(added_all.end(), a, a + P);
            segment_all.push_back(segment_of(h, size_t(rp)));
        }
        if (batch.full()) score_batch();
    });
    score_batch();

    if (baselines) {
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
            if ((i & 4095) == 0) check_for_interrupts();
        }
    }
    return result;
}

}  // namespace recsys::pg


// recsys.evaluate(model_name, version, month) -> TABLE(method, map7, map7_adders, precision7,
// recall7, coverage, customers, adders)
RECSYS_FUNCTION(recsys_evaluate) {
    pg_call([&] { InitMaterializedSRF(fcinfo, 0); });
    if (PG_ARGISNULL(0)) throw SqlError(ERRCODE_NULL_VALUE_NOT_ALLOWED, "model_name must not be NULL");
    const std::string name = text_arg(fcinfo, 0);
    const bool has_version = !PG_ARGISNULL(1);
    const int32_t requested_version = has_version ? PG_GETARG_INT32(1) : 0;
    if (has_version && requested_version <= 0)
        throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE,
                       "model version must be a positive integer, not " + std::to_string(requested_version));
    const bool has_month = !PG_ARGISNULL(2);
    const int32_t requested_month = has_month ? month_of_date(PG_GETARG_DATEADT(2)) : -1;

    spi_connect();
    // NULL version: the production version, else the latest one.
    int32_t version = requested_version;
    if (!has_version) {
        bool found = false;
        version = pg_call([&] {
            Oid types[1] = {TEXTOID};
            Datum args[1] = {CStringGetTextDatum(name.c_str())};
            if (SPI_execute_with_args("SELECT version FROM recsys.models WHERE name OPERATOR(pg_catalog.=) $1 "
                                      "ORDER BY status OPERATOR(pg_catalog.=) 'production' DESC, version DESC LIMIT 1",
                                      1, types, args, nullptr, true, 1) != SPI_OK_SELECT)
                elog(ERROR, "model lookup failed");
            int32 v = 0;
            if (SPI_processed > 0) {
                bool isnull;
                v = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
                found = true;
            }
            return v;
        });
        if (!found)
            throw SqlError(ERRCODE_UNDEFINED_OBJECT, "model \"" + name + "\" does not exist",
                           "", "Train one with recsys.train() or register one with recsys.register_model().");
    }
    std::shared_ptr<LoadedModel> m = acquire_model(name, version);

    // Default month: the latest in the model's source.
    int32_t month = requested_month;
    const std::string range_sql = "SELECT " + sql::call("min", m->reader->month_sql()) + ", " +
                                  sql::call("max", m->reader->month_sql()) + " FROM " + m->reader->relation_name();
    bool empty = false;
    DateADT lo = 0, hi = 0;
    pg_call([&] {
        if (SPI_execute(range_sql.c_str(), true, 1) != SPI_OK_SELECT) elog(ERROR, "month range query failed");
        bool n1, n2;
        Datum d1 = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &n1);
        Datum d2 = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &n2);
        empty = n1 || n2;
        if (!empty) {
            lo = DatumGetDateADT(d1);
            hi = DatumGetDateADT(d2);
        }
    });
    if (empty)
        throw SqlError(ERRCODE_NO_DATA_FOUND, "relation " + m->reader->relation_name() + " has no snapshots to evaluate on");
    const int32_t first_month = month_of_date(lo), last_month = month_of_date(hi);
    if (month < 0) month = last_month;
    if (month - 1 < first_month || month > last_month)
        throw SqlError(ERRCODE_NO_DATA_FOUND,
                       "cannot evaluate on " + month_label(month) + ": " + m->reader->relation_name() + " has months " +
                           month_label(first_month) + " to " + month_label(last_month),
                       "Evaluation needs snapshots of the month and of the month before it.");

    const size_t batch_size = plan_batch("recsys.evaluate", model_label(name, version),
                                         m->model, evaluation_bytes(m->model), SIZE_MAX);
    const MonthEvaluation ev = evaluate_month(m->model, *m->reader, *m->encoder, month, true, -1, batch_size);
    if (ev.lstm.customers() == 0)
        throw SqlError(ERRCODE_NO_DATA_FOUND, "no customer has snapshots in both " + month_label(month - 1) + " and " +
                                                  month_label(month) + " in " + m->reader->relation_name());

    // Pure: recording the result is recsys.evaluate_and_record()'s explicit step.
    spi_finish();

    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    const char *methods[3] = {"lstm", "popularity", "segment_popularity"};
    const RankingMetrics *metrics[3] = {&ev.lstm, &ev.popularity, &ev.segment_popularity};
    for (int i = 0; i < 3; ++i) {
        const RankingMetrics &r = *metrics[i];
        const char *method = methods[i];
        pg_call([&] {
            Datum values[10] = {CStringGetTextDatum(method), Float8GetDatum(r.map()), Float8GetDatum(r.map_adders()),
                                Float8GetDatum(r.precision()), Float8GetDatum(r.recall()), Float8GetDatum(r.coverage()),
                                Int64GetDatum(int64(r.customers())), Int64GetDatum(int64(r.adders())),
                                Int32GetDatum(version), DateADTGetDatum(date_of_month(month))};
            bool nulls[10] = {false, false, false, false, false, false, false, false, false, false};
            tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
        });
    }
    return (Datum)0;
}
