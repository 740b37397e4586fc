// SQL-callable scoring: recommend(), recommend_scores(), score_customer() for one customer,
// recommend_many() and score_all() for many customers in GEMM batches.
#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "batch_scoring.h"
#include "guard.h"
#include "history_stream.h"
#include "memory_budget.h"
#include "model_cache.h"
#include "parallel_scoring.h"
#include "prediction_log.h"
#include "ranking.h"
#include "serving_stats.h"
#include "settings.h"
#include "shadow_scoring.h"
#include "sql_text.h"
#include "sql_values.h"
#include "stored_state_reader.h"

using namespace recsys;
using namespace recsys::pg;

namespace {

[[noreturn]] void no_snapshots(const LoadedModel &m, int64_t customer_id) {
    throw SqlError(ERRCODE_NO_DATA_FOUND,
                   "customer " + std::to_string(customer_id) + " has no snapshots in " + m.reader->relation_name(),
                   "Model \"" + m.name + "\" version " + std::to_string(m.version) +
                       " scores customers from their monthly snapshots in that relation.",
                   "Check the id, or load the customer's snapshots first.");
}

// A from-start model, continuing the customer's stored state: only the snapshots from the
// state's month on are read, only the months after it are run (none when the state covers the
// latest snapshot: the head alone). The state is used only when it is for this very history:
// its month's snapshot must still be there with the products stored beside the state (a state
// after the latest snapshot, or from a history since rewritten, is not). Returns false,
// having written nothing the caller reads, when there is no usable state.
bool score_from_stored_state(LoadedModel &m, int64_t customer_id) {
    StoredState stored;
    if (read_stored_state(m, customer_id, &stored) != StateMiss::None) return false;
    if (stored.month < m.model.start_month) return false;
    if (!m.reader->read_customer_since(customer_id, stored.month, m.history)) return false;
    if (m.history.month[0] != stored.month ||
        !std::equal(stored.products.begin(), stored.products.end(), m.history.products.begin()))
        return false;
    m.continuation->score(m.history, 0, stored.month, stored.state.data(), m.scores.data(), m.held.data());
    return true;
}

// A from-start model over the customer's whole history from its start month: the window's
// encoder and forward pass when the history fits the window, else the recurrence continued
// from the zero state for as many months as there are (the model extrapolates past the span
// it was trained on; docs/online-scoring.md).
void score_full_history(LoadedModel &m, int64_t customer_id) {
    const int32_t start = m.model.start_month;
    if (!m.reader->read_customer_since(customer_id, start - 1, m.history)) {
        // Only snapshots from before the start: no step, the statics of the latest one.
        if (!m.reader->read_customer(customer_id, m.history)) no_snapshots(m, customer_id);
    }
    const int32_t latest = m.history.month.back();
    if (latest - start + 1 <= int32_t(m.model.window_months)) {
        m.encoder->encode(m.history, 0, 1, -1, m.steps.data(), m.statics.data(), m.held.data(), m.end_month.data(),
                          m.lengths.data());
        m.single->score(m.steps.data(), m.statics.data(), 1, m.scores.data(), m.lengths.data());
        return;
    }
    std::fill(m.state.begin(), m.state.end(), 0.0f);
    m.continuation->score(m.history, 0, m.continuation->initial_month(), m.state.data(), m.scores.data(),
                          m.held.data());
}

enum class ScoringPath { Window, StoredState, FullHistory };

// Scores one customer into m.scores / m.held with the model's preallocated buffers; says how.
ScoringPath score_single_path(LoadedModel &m, int64_t customer_id) {
    if (m.model.history == HistoryMode::FromStartMonth) {
        if (score_from_stored_state(m, customer_id)) return ScoringPath::StoredState;
        score_full_history(m, customer_id);
        return ScoringPath::FullHistory;
    }
    if (!m.reader->read_customer(customer_id, m.history)) no_snapshots(m, customer_id);
    m.encoder->encode(m.history, 0, 1, -1, m.steps.data(), m.statics.data(), m.held.data(), m.end_month.data(),
                      nullptr);
    m.single->score(m.steps.data(), m.statics.data(), 1, m.scores.data(), nullptr);
    return ScoringPath::Window;
}

// score_single_path for the shadow version (whose path is not counted).
void score_single(LoadedModel &m, int64_t customer_id) { score_single_path(m, customer_id); }

struct OneCustomerCall {
    std::shared_ptr<LoadedModel> model;
    std::vector<Ranked> ranked;
};

// The common part of the single-customer functions (arguments: id, k, model, version).
// entry_point: the SQL function's name (recorded in recsys.prediction_log).
OneCustomerCall score_one_from_args(FunctionCallInfo fcinfo, bool use_k, const char *entry_point) {
    const int64_t id = PG_GETARG_INT64(0);
    const int32_t k = use_k ? PG_GETARG_INT32(1) : 0;
    const int model_arg = use_k ? 2 : 1;
    const std::string name = text_arg(fcinfo, model_arg);
    serving::note_model_name(name);
    const int32_t version = version_arg(fcinfo, model_arg + 1);
    if (use_k) check_k(k, nullptr);
    spi_connect();
    OneCustomerCall call;
    // Ranked calls of the production version may be shadowed (recsys.set_shadow).
    ShadowSetting shadow;
    call.model = acquire_model(name, version, use_k ? &shadow : nullptr);
    if (use_k) check_k(k, call.model.get());
    const ScoringPath path = score_single_path(*call.model, id);
    if (path != ScoringPath::Window) serving::note_scoring_path(path == ScoringPath::StoredState);
    serving::note_customers(1);
    if (use_k)
        call.ranked = top_k(call.model->scores.data(), call.model->held.data(), call.model->model.product_count(), uint32_t(k));
    // Ranked calls are logged at recsys.log_sample_rate (one branch when it is 0).
    if (use_k && prediction_log_drawn()) log_prediction(*call.model, id, call.ranked, entry_point);
    if (shadow_drawn(shadow, call.model->version))
        shadow_score_and_log(shadow, *call.model, id, call.ranked, uint32_t(k), score_single);
    spi_finish();
    return call;
}

}  // namespace

// recsys.recommend(customer_id, k, model, version) -> text[]
RECSYS_SERVING_FUNCTION(recsys_recommend, serving::EntryPoint::Recommend) {
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2)) PG_RETURN_NULL();
    OneCustomerCall call = score_one_from_args(fcinfo, true, "recommend");
    return ranked_names_array(call.model->model.products, call.ranked);
}

// recsys.score_customer(customer_id, model, version) -> real[]: every product's probability,
// in the model's product order, held products included.
RECSYS_SERVING_FUNCTION(recsys_score_customer, serving::EntryPoint::ScoreCustomer) {
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1)) PG_RETURN_NULL();
    OneCustomerCall call = score_one_from_args(fcinfo, false, "score_customer");
    return real_array(call.model->scores.data(), call.model->scores.size());
}

// recsys.recommend_scores(customer_id, k, model, version) -> TABLE(rank, product, score)
RECSYS_SERVING_FUNCTION(recsys_recommend_scores, serving::EntryPoint::RecommendScores) {
    pg_call([&] { InitMaterializedSRF(fcinfo, 0); });
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2)) return (Datum)0;
    OneCustomerCall call = score_one_from_args(fcinfo, true, "recommend_scores");
    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    for (size_t i = 0; i < call.ranked.size(); ++i) {
        const Ranked r = call.ranked[i];
        const std::string &product = call.model->model.products[r.product];
        pg_call([&] {
            Datum values[3] = {Int32GetDatum(int32(i + 1)), CStringGetTextDatum(product.c_str()), Float4GetDatum(r.score)};
            bool nulls[3] = {false, false, false};
            tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
        });
    }
    return (Datum)0;
}

namespace {

// Streams the rows of `sql` (built by SourceReader::batch_query) through the model in
// batches of min(recsys.batch_size, customers, what recsys.max_batch_memory holds) customers,
// calling emit(customer, ranked, scores) for each. customers: how many the call scores
// (SIZE_MAX when unknown); function names the SQL function in errors.
template <typename Emit>
void score_stream(LoadedModel &m, const char *function, size_t customers, const std::string &sql, int nargs,
                  Oid *types, Datum *args, uint32_t k, Emit emit) {
    const size_t B = plan_batch(function, m.label(), m.model,
                                LstmForward::buffer_bytes(m.model) + EncodedBatch::buffer_bytes(m.model) +
                                    history_bytes(m.model),
                                customers);
    const size_t P = m.model.product_count();
    LstmForward forward(m.model, B);
    forward.set_poll(interrupt_poll());
    EncodedBatch buf(m.model, B);
    stream_history(*m.reader, m.model, sql, nargs, types, args, B, nullptr, [&](HistoryBatch &history, size_t count) {
        for (size_t first = 0; first < count; first += B) {
            const size_t n = std::min(B, count - first);
            // Past a from-start model's window, in parts of the window's length (batch_scoring.h).
            score_batch(m.model, *m.encoder, forward, buf, history, first, n);
            for (size_t b = 0; b < n; ++b) {
                const auto ranked = top_k(buf.scores.data() + b * P, buf.held.data() + b * P, uint32_t(P), k);
                emit(history.customer_ids[first + b], ranked, buf.scores.data() + b * P);
            }
            check_for_interrupts();
        }
    });
}

// Per-row memory for building result arrays, reset after each row is stored.
struct RowWriter {
    ReturnSetInfo *rsinfo;
    MemoryContext row_context;
    std::vector<Datum> product_names;  // text datums, built once
};

RowWriter make_row_writer(FunctionCallInfo fcinfo, const LoadedModel &m) {
    RowWriter w;
    w.rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    w.product_names.resize(m.model.product_count());
    pg_call([&] {
        MemoryContext old = MemoryContextSwitchTo(w.rsinfo->econtext->ecxt_per_query_memory);
        for (size_t p = 0; p < w.product_names.size(); ++p)
            w.product_names[p] = CStringGetTextDatum(m.model.products[p].c_str());
        w.row_context = AllocSetContextCreate(CurrentMemoryContext, "recsys row", ALLOCSET_SMALL_SIZES);
        MemoryContextSwitchTo(old);
    });
    return w;
}

// Builds the products text[] and scores real[] of one customer's ranking.
void ranking_arrays(const RowWriter &w, const std::vector<Ranked> &ranked, Datum *products, Datum *scores) {
    Datum names[kMaxProducts], values[kMaxProducts];
    for (size_t i = 0; i < ranked.size(); ++i) {
        names[i] = w.product_names[ranked[i].product];
        values[i] = Float4GetDatum(ranked[i].score);
    }
    *products = PointerGetDatum(construct_array(names, int(ranked.size()), TEXTOID, -1, false, TYPALIGN_INT));
    *scores = PointerGetDatum(construct_array(values, int(ranked.size()), FLOAT4OID, 4, true, TYPALIGN_INT));
}

}  // namespace

// recsys.recommend_many(customer_ids bigint[], k, model, version)
//   -> TABLE(customer_id bigint, products text[], scores real[])
RECSYS_SERVING_FUNCTION(recsys_recommend_many, serving::EntryPoint::RecommendMany) {
    pg_call([&] { InitMaterializedSRF(fcinfo, 0); });
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2)) return (Datum)0;
    const int32_t k = PG_GETARG_INT32(1);
    const std::string name = text_arg(fcinfo, 2);
    serving::note_model_name(name);
    const int32_t version = version_arg(fcinfo, 3);
    check_k(k, nullptr);
    Datum ids = PG_GETARG_DATUM(0);
    std::set<int64_t> wanted;
    pg_call([&] {
        ArrayType *arr = DatumGetArrayTypeP(ids);
        Datum *elems;
        bool *nulls;
        int n;
        deconstruct_array(arr, INT8OID, 8, true, TYPALIGN_DOUBLE, &elems, &nulls, &n);
        for (int i = 0; i < n; ++i)
            if (!nulls[i]) wanted.insert(DatumGetInt64(elems[i]));
    });
    if (wanted.empty()) return (Datum)0;

    spi_connect();
    std::shared_ptr<LoadedModel> m = acquire_model(name, version);
    check_k(k, m.get());
    RowWriter w = make_row_writer(fcinfo, *m);
    const std::string query = m->reader->batch_query(m->reader->id_sql() + sql::op("=") + "ANY($1)");
    Oid types[1] = {INT8ARRAYOID};
    Datum args[1] = {ids};
    std::set<int64_t> seen;
    score_stream(*m, "recsys.recommend_many", wanted.size(), query, 1, types, args, uint32_t(k), [&](int64_t customer, const std::vector<Ranked> &ranked, const float *) {
        seen.insert(customer);
        pg_call([&] {
            MemoryContext old = MemoryContextSwitchTo(w.row_context);
            Datum values[3];
            bool nulls[3] = {false, false, false};
            values[0] = Int64GetDatum(customer);
            ranking_arrays(w, ranked, &values[1], &values[2]);
            tuplestore_putvalues(w.rsinfo->setResult, w.rsinfo->setDesc, values, nulls);
            MemoryContextSwitchTo(old);
            MemoryContextReset(w.row_context);
        });
    });
    spi_finish();
    for (int64_t id : wanted)
        if (!seen.count(id))
            throw SqlError(ERRCODE_NO_DATA_FOUND,
                           "customer " + std::to_string(id) + " has no snapshots in " + m->reader->relation_name(),
                           std::to_string(wanted.size() - seen.size()) + " of the " + std::to_string(wanted.size()) +
                               " requested customers are unknown.",
                           "Pass only ids present in the model's source relation.");
    serving::note_customers(seen.size());
    return (Datum)0;
}

// score_all's batch scoring of the customers whose ids satisfy id_condition, in the calling
// backend or in a parallel worker (parallel_scoring.h).
void recsys::pg::score_all_customers(LoadedModel &m, const ScoreAllRequest &request, const std::string &id_condition,
                                     const RankedSink &sink) {
    std::string where = request.has_as_of ? m.reader->month_sql() + sql::op("<=") + "$1" : std::string();
    if (!id_condition.empty()) where += (where.empty() ? "" : " AND ") + id_condition;
    const std::string query = m.reader->batch_query(where);
    Oid types[1] = {DATEOID};
    Datum args[1] = {DateADTGetDatum(request.as_of)};
    score_stream(m, "recsys.score_all", SIZE_MAX, query, request.has_as_of ? 1 : 0, types, args, uint32_t(request.k),
                 [&](int64_t customer, const std::vector<Ranked> &ranked, const float *) { sink(customer, ranked); });
}

// recsys.score_all(model, k, version, as_of)
//   -> TABLE(customer_id, model_name, model_version, computed_at, products, scores)
RECSYS_SERVING_FUNCTION(recsys_score_all, serving::EntryPoint::ScoreAll) {
    pg_call([&] { InitMaterializedSRF(fcinfo, 0); });
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1)) return (Datum)0;
    const std::string name = text_arg(fcinfo, 0);
    serving::note_model_name(name);
    const int32_t k = PG_GETARG_INT32(1);
    const int32_t version = version_arg(fcinfo, 2);
    const bool has_as_of = !PG_ARGISNULL(3);
    const Datum as_of = has_as_of ? PG_GETARG_DATUM(3) : (Datum)0;
    const int32_t shard = PG_ARGISNULL(4) ? 0 : PG_GETARG_INT32(4);
    const int32_t shards = PG_ARGISNULL(5) ? 1 : PG_GETARG_INT32(5);
    if (shards < 1 || shard < 0 || shard >= shards)
        throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE,
                       "shard must be between 0 and shards - 1, and shards at least 1 (got shard " +
                           std::to_string(shard) + " of " + std::to_string(shards) + ")");
    check_k(k, nullptr);

    spi_connect();
    std::shared_ptr<LoadedModel> m = acquire_model(name, version);
    check_k(k, m.get());
    // score_all feeds materialized views and refresh_recommendations, whose rows others read.
    require_registrant_can_read(*m);
    RowWriter w = make_row_writer(fcinfo, *m);
    const Datum model_name = pg_call([&] {
        MemoryContext old = MemoryContextSwitchTo(w.rsinfo->econtext->ecxt_per_query_memory);
        Datum d = CStringGetTextDatum(name.c_str());
        MemoryContextSwitchTo(old);
        return d;
    });
    const TimestampTz computed_at = GetCurrentTransactionStartTimestamp();
    const int32_t model_version = m->version;
    ScoreAllRequest request;
    request.model_name = name;
    request.version = m->version;
    request.k = k;
    request.has_as_of = has_as_of;
    request.as_of = has_as_of ? DatumGetDateADT(as_of) : 0;
    request.shard = shard;
    request.shards = shards;
    // With recsys.parallel_workers, parallel workers score beside this backend (parallel_scoring.h).
    score_all_rows(*m, request, [&](int64_t customer, const std::vector<Ranked> &ranked) {
        pg_call([&] {
            MemoryContext old = MemoryContextSwitchTo(w.row_context);
            Datum values[6];
            bool nulls[6] = {false, false, false, false, false, false};
            values[0] = Int64GetDatum(customer);
            values[1] = model_name;
            values[2] = Int32GetDatum(model_version);
            values[3] = TimestampTzGetDatum(computed_at);
            ranking_arrays(w, ranked, &values[4], &values[5]);
            tuplestore_putvalues(w.rsinfo->setResult, w.rsinfo->setDesc, values, nulls);
            MemoryContextSwitchTo(old);
            MemoryContextReset(w.row_context);
        });
    });
    spi_finish();
    serving::note_customers(uint64_t(tuplestore_tuple_count(w.rsinfo->setResult)));
    return (Datum)0;
}
