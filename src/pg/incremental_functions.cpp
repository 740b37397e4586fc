// Incremental scoring in SQL, for models whose history runs from a fixed start month:
//   recsys.full_states()      every customer's LSTM state and recommendations, from scratch
//   recsys.advanced_states()  the stored states advanced to a new month (batch)
//   recsys.store_states()     either of them written straight to recsys.customer_states and
//                             recsys.recommendations (behind rebuild_states and advance_month)
//   recsys.advance_customer() one customer advanced to its latest snapshot (e.g. a trigger)
// All writes go through RecommendationWriter (recommendation_writer.h); a promote or rollback
// clears the stored states of that model.
#include <algorithm>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "batch_scoring.h"
#include "guard.h"
#include "history_stream.h"
#include "incremental_scorer.h"
#include "memory_budget.h"
#include "model_cache.h"
#include "ranking.h"
#include "recommendation_writer.h"
#include "serving_stats.h"
#include "settings.h"
#include "sql_text.h"
#include "sql_values.h"

using namespace recsys;
using namespace recsys::pg;

namespace {

void require_from_start(const LoadedModel &m) {
    if (m.model.history != HistoryMode::FromStartMonth)
        throw SqlError(ERRCODE_FEATURE_NOT_SUPPORTED,
                       m.label() + " reads a sliding window of " + std::to_string(m.model.window_months) +
                           " months, so its state cannot be advanced month by month",
                       "Incremental scoring needs a model whose history runs from a fixed start month.",
                       "Use recsys.refresh_recommendations() for this model.");
}

struct StoredState {
    int32_t version;
    int32_t month;
    std::vector<float> state;
    std::vector<uint8_t> products;
};

// The columns every stored-state query selects, in this order.
constexpr const char *kSelectStates =
    "SELECT customer_id, model_version, state_month, state, products FROM recsys.customer_states "
    "WHERE model_name OPERATOR(pg_catalog.=) $1";

// Row r of a kSelectStates result: the customer id and its state.
std::pair<int64_t, StoredState> state_from_row(const LoadedModel &m, SPITupleTable *table, uint64_t r,
                                               size_t state_size) {
    Datum v[5];
    bool n[5];
    pg_call([&] {
        for (int i = 0; i < 5; ++i) v[i] = SPI_getbinval(table->vals[r], table->tupdesc, i + 1, &n[i]);
    });
    const int64_t id = DatumGetInt64(v[0]);
    const std::string what = "the stored state of customer " + std::to_string(id);
    StoredState s;
    s.version = DatumGetInt32(v[1]);
    s.month = month_of_date(DatumGetDateADT(v[2]));
    s.state = real_array_values(v[3], state_size, what);
    s.products = flag_array_values(v[4], m.model.product_count(), what + " (products)");
    return {id, std::move(s)};
}

// One customer's stored state, if there is one.
std::optional<StoredState> load_state(const LoadedModel &m, int64_t customer, size_t state_size) {
    SPITupleTable *table = nullptr;
    const std::string query = std::string(kSelectStates) + " AND customer_id OPERATOR(pg_catalog.=) $2";
    const char *query_text = query.c_str();
    const uint64_t rows = pg_call([&] {
        Datum args[2] = {CStringGetTextDatum(m.name.c_str()), Int64GetDatum(customer)};
        Oid types[2] = {TEXTOID, INT8OID};
        const int rc = SPI_execute_with_args(query_text, 2, types, args, nullptr, true, 1);
        if (rc != SPI_OK_SELECT) elog(ERROR, "reading the stored state failed: %s", SPI_result_code_string(rc));
        table = SPI_tuptable;
        return SPI_processed;
    });
    std::optional<StoredState> state;
    if (rows == 1) state = state_from_row(m, table, 0, state_size).second;
    pg_call([&] { SPI_freetuptable(table); });
    return state;
}

// Reads a model's stored states in customer order through a cursor, in step with the
// customer-ordered snapshot stream: one ordered pass over recsys.customer_states instead of a
// random index probe per customer, which matters once the states outgrow shared_buffers.
class StateCursor {
public:
    // fetch_rows: states read per cursor fetch (the caller's batch size bounds their memory).
    StateCursor(const LoadedModel &m, size_t state_size, long fetch_rows)
        : model_(m), state_size_(state_size), fetch_rows_(fetch_rows) {
        const std::string query = std::string(kSelectStates) + " ORDER BY customer_id";
        const char *query_text = query.c_str();
        const char *model_name = m.name.c_str();
        portal_ = pg_call([&] {
            Datum args[1] = {CStringGetTextDatum(model_name)};
            Oid types[1] = {TEXTOID};
            return SPI_cursor_open_with_args(nullptr, query_text, 1, types, args, nullptr, true, 0);
        });
    }
    // Closed explicitly on success; after an error the transaction's abort closes the portal.
    void close() { pg_call([&] { SPI_cursor_close(portal_); }); }

    // The states of `ids`, which must ascend across all calls.
    std::unordered_map<int64_t, StoredState> take(const std::vector<int64_t> &ids) {
        std::unordered_map<int64_t, StoredState> found;
        for (int64_t id : ids) {
            while (!exhausted_ && (pos_ == buffered_.size() || buffered_[pos_].first < id)) {
                if (pos_ == buffered_.size()) fetch();
                else ++pos_;
            }
            if (!exhausted_ && buffered_[pos_].first == id) found.emplace(id, std::move(buffered_[pos_].second));
        }
        return found;
    }

private:
    void fetch() {
        buffered_.clear();
        pos_ = 0;
        SPITupleTable *table = nullptr;
        const uint64_t rows = pg_call([&] {
            SPI_cursor_fetch(portal_, true, fetch_rows_);
            table = SPI_tuptable;
            return SPI_processed;
        });
        if (rows == 0) {
            exhausted_ = true;
            return;
        }
        for (uint64_t r = 0; r < rows; ++r) buffered_.push_back(state_from_row(model_, table, r, state_size_));
        pg_call([&] { SPI_freetuptable(table); });
    }

    const LoadedModel &model_;
    size_t state_size_;
    long fetch_rows_;
    Portal portal_;
    std::vector<std::pair<int64_t, StoredState>> buffered_;
    size_t pos_ = 0;
    bool exhausted_ = false;
};

// Customers among `ids` with snapshots before `month` in the model's source.
std::vector<int64_t> customers_with_history_before(LoadedModel &m, const std::vector<int64_t> &ids, int32_t month) {
    std::vector<int64_t> found;
    if (ids.empty()) return found;
    const std::string query = "SELECT DISTINCT " + m.reader->id_sql() + " FROM " + m.reader->relation_name() +
                              " WHERE " + m.reader->id_sql() + sql::op("=") + "ANY($1) AND " + m.reader->month_sql() +
                              sql::op("<") + sql::month_start(month);
    const char *query_text = query.c_str();
    pg_call([&] {
        Datum *elems = static_cast<Datum *>(palloc(sizeof(Datum) * (ids.size() + 1)));
        for (size_t i = 0; i < ids.size(); ++i) elems[i] = Int64GetDatum(ids[i]);
        Datum args[1] = {PointerGetDatum(construct_array(elems, int(ids.size()), INT8OID, 8, true, TYPALIGN_DOUBLE))};
        Oid types[1] = {INT8ARRAYOID};
        if (SPI_execute_with_args(query_text, 1, types, args, nullptr, true, 0) != SPI_OK_SELECT)
            elog(ERROR, "history lookup failed");
        for (uint64_t r = 0; r < SPI_processed; ++r) {
            bool isnull;
            found.push_back(DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull)));
        }
        SPI_freetuptable(SPI_tuptable);
    });
    return found;
}

// One output row: (customer_id, model_version, state_month, state, products, top_products, scores).
struct StateRowWriter {
    ReturnSetInfo *rsinfo;
    MemoryContext row_context;
    int32_t version;
    const LoadedModel *model;

    void put(int64_t customer, int32_t month, const float *state, size_t state_size, const uint8_t *products,
             const float *scores, uint32_t k) {
        const uint32_t P = model->model.product_count();
        const auto ranked = top_k(scores, products, P, k);
        std::vector<float> top_scores(ranked.size());
        for (size_t i = 0; i < ranked.size(); ++i) top_scores[i] = ranked[i].score;
        pg_call([&] {
            MemoryContext old = MemoryContextSwitchTo(row_context);
            Datum values[7];
            bool nulls[7] = {false, false, false, false, false, false, false};
            values[0] = Int64GetDatum(customer);
            values[1] = Int32GetDatum(version);
            values[2] = DateADTGetDatum(date_of_month(month));
            values[3] = real_array(state, state_size);
            values[4] = flag_array(products, P);
            values[5] = ranked_names_array(model->model.products, ranked);
            values[6] = real_array(top_scores.data(), top_scores.size());
            tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
            MemoryContextSwitchTo(old);
            MemoryContextReset(row_context);
        });
    }
};

// The production version of a from-start model, with k checked against it (SPI connected).
std::shared_ptr<LoadedModel> from_start_model(const std::string &name, int32_t k) {
    serving::note_model_name(name);  // advance_customer, or advance_month running these
    check_k(k, nullptr);
    spi_connect();
    std::shared_ptr<LoadedModel> m = acquire_model(name, -1);
    require_from_start(*m);
    require_registrant_can_read(*m);  // its states and recommendations are stored and shared
    check_k(k, m.get());
    return m;
}

StateRowWriter make_writer(FunctionCallInfo fcinfo, const LoadedModel &m) {
    StateRowWriter w;
    w.rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    w.version = m.version;
    w.model = &m;
    w.row_context = pg_call([&] {
        return AllocSetContextCreate(w.rsinfo->econtext->ecxt_per_query_memory, "recsys state row",
                                     ALLOCSET_SMALL_SIZES);
    });
    return w;
}

// Receives each customer's result: its id, the month of its state (a month index), the state,
// that month's products (0/1 flags) and the scores of every product for the next month.
using StateSink = std::function<void(int64_t customer, int32_t month, const float *state, const uint8_t *products,
                                     const float *scores)>;

// Every customer's state after its latest month, computed over its whole history from the
// model's start month (SPI connected). sink_bytes: what the sink buffers at most, planned into
// recsys.max_batch_memory with the batch.
void compute_full_states(LoadedModel *m, const StateSink &sink, size_t sink_bytes) {
    const size_t P = m->model.product_count();
    const size_t SS = m->model.state_size();
    const size_t B = plan_batch("recsys.full_states", m->label(), m->model,
                                LstmForward::buffer_bytes(m->model) + EncodedBatch::buffer_bytes(m->model) +
                                    history_bytes(m->model) + BatchBytes{sink_bytes, SS * sizeof(float)},
                                SIZE_MAX);
    LstmForward forward(m->model, B);
    forward.set_poll(interrupt_poll());
    EncodedBatch buf(m->model, B);
    std::vector<float> states(B * SS);
    stream_history(*m->reader, m->model, m->reader->batch_query(""), 0, nullptr, nullptr, B, nullptr,
                   [&](HistoryBatch &history, size_t count) {
                       for (size_t first = 0; first < count; first += B) {
                           const size_t n = std::min(B, count - first);
                           // Past the model's window, in parts of the window's length (batch_scoring.h).
                           score_batch(m->model, *m->encoder, forward, buf, history, first, n, states.data());
                           for (size_t b = 0; b < n; ++b)
                               sink(history.customer_ids[first + b], buf.end_month[b], states.data() + b * SS,
                                    buf.held.data() + b * P, buf.scores.data() + b * P);
                           check_for_interrupts();
                       }
                   });
}

// The stored states of the customers with a snapshot in `month`, advanced to it (SPI connected).
// The stored states are read through a cursor whose snapshot predates the sink's writes.
// sink_bytes as for compute_full_states.
void compute_advanced_states(LoadedModel *m, int32_t month, const StateSink &sink, size_t sink_bytes) {
    // Months past the model's window are advanced like any other: the recurrence has no window
    // (docs/online-scoring.md, "Past the window").
    if (month < m->model.start_month)
        throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE,
                       "month " + month_label(month) + " is outside " + m->label() + "'s history",
                       "Its history starts in " + month_label(m->model.start_month) + ".");

    const size_t P = m->model.product_count(), SS = m->model.state_size();
    // Per customer beside the scorer: states, scores, held flags and months; the stored state
    // three times (SPI tuple, cursor buffer, lookup map); its ids; two HistoryBatch rows.
    const size_t stored_state_bytes = SS * sizeof(float) + 2 * P + 96;
    const size_t B = plan_batch("recsys.advanced_states", m->label(), m->model,
                                IncrementalScorer::buffer_bytes(m->model) + history_bytes(m->model) +
                                    BatchBytes{sink_bytes, (SS + P) * sizeof(float) + P + sizeof(int32_t) +
                                                      3 * stored_state_bytes + 2 * sizeof(int64_t) +
                                                      4 * history_row_bytes(m->model)},
                                SIZE_MAX);
    IncrementalScorer scorer(m->model, B);
    scorer.set_poll(interrupt_poll());
    std::vector<float> states(B * SS), scores(B * P);
    std::vector<uint8_t> held(B * P);
    std::vector<int32_t> state_month(B);
    HistoryBatch step;
    StateCursor stored_states(*m, SS, long(std::min<size_t>(B, 4096)));
    // Whole calendar months: a snapshot dated the 1st, the 28th or the 31st is in its own month.
    const std::string where = m->reader->months_between(month, month + 1);
    stream_history(*m->reader, m->model, m->reader->batch_query(where), 0, nullptr, nullptr, B, nullptr,
                   [&](HistoryBatch &history, size_t count) {
        for (size_t first = 0; first < count; first += B) {
            const size_t n = std::min(B, count - first);
            std::vector<int64_t> ids(history.customer_ids.begin() + first, history.customer_ids.begin() + first + n);
            const auto stored = stored_states.take(ids);
            std::vector<int64_t> stateless;
            for (int64_t id : ids)
                if (!stored.count(id)) stateless.push_back(id);
            const auto with_history = customers_with_history_before(*m, stateless, month);
            if (!with_history.empty())
                throw SqlError(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                               "customer " + std::to_string(with_history.front()) + " has snapshots before " +
                                   month_label(month) + " but no stored state for " + m->label(),
                               std::to_string(with_history.size()) + " such customers in this batch.",
                               "Run recsys.rebuild_states('" + m->name + "') after a promote, rollback or restore.");
            // Per customer: the stored products of month - 1 (when the state is at month - 1), then the new row.
            step.reset(m->model.features.size(), P);
            for (size_t b = 0; b < n; ++b) {
                const size_t c = first + b, r = history.row_begin[c + 1] - 1;
                const auto it = stored.find(ids[b]);
                step.begin_customer(ids[b]);
                float *vals;
                uint8_t *prods;
                if (it == stored.end()) {
                    state_month[b] = scorer.initial_month();
                    std::fill(states.begin() + b * SS, states.begin() + (b + 1) * SS, 0.0f);
                } else {
                    const StoredState &s = it->second;
                    if (s.version != m->version)
                        throw SqlError(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                                       "the stored state of customer " + std::to_string(ids[b]) + " comes from version " +
                                           std::to_string(s.version) + ", not from " + m->label(),
                                       "", "Run recsys.rebuild_states('" + m->name + "').");
                    if (s.month >= month)
                        throw SqlError(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                                       "the state of customer " + std::to_string(ids[b]) + " is already at " +
                                           month_label(s.month) + ", not before " + month_label(month),
                                       "Each month is advanced once.");
                    state_month[b] = s.month;
                    std::copy(s.state.begin(), s.state.end(), states.begin() + b * SS);
                    if (s.month == month - 1) {
                        step.add_row(month - 1, &vals, &prods);
                        std::copy(s.products.begin(), s.products.end(), prods);
                    }
                }
                step.add_row(month, &vals, &prods);
                std::copy(history.values.begin() + r * step.feature_count,
                          history.values.begin() + (r + 1) * step.feature_count, vals);
                std::copy(history.products.begin() + r * P, history.products.begin() + (r + 1) * P, prods);
            }
            scorer.advance(step, 0, n, state_month.data(), states.data(), scores.data(), held.data());
            for (size_t b = 0; b < n; ++b)
                sink(ids[b], state_month[b], states.data() + b * SS, held.data() + b * P, scores.data() + b * P);
            check_for_interrupts();
        }
    });
    stored_states.close();
}

// The SRF rows of full_states / advanced_states.
StateSink srf_sink(StateRowWriter &writer, int32_t k) {
    return [&writer, k](int64_t customer, int32_t month, const float *state, const uint8_t *products,
                        const float *scores) {
        writer.put(customer, month, state, writer.model->model.state_size(), products, scores, uint32_t(k));
    };
}

}  // namespace

// recsys.full_states(model, k) -> TABLE(customer_id, model_version, state_month, state,
// products, top_products, scores): every customer's state after its latest month, computed
// over its whole history from the model's start month.
RECSYS_FUNCTION(recsys_full_states) {
    pg_call([&] { InitMaterializedSRF(fcinfo, 0); });
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1)) return (Datum)0;
    const std::string name = text_arg(fcinfo, 0);
    const int32_t k = PG_GETARG_INT32(1);
    std::shared_ptr<LoadedModel> m = from_start_model(name, k);
    StateRowWriter writer = make_writer(fcinfo, *m);
    compute_full_states(m.get(), srf_sink(writer, k), 0);
    spi_finish();
    serving::note_customers(uint64_t(tuplestore_tuple_count(writer.rsinfo->setResult)));
    return (Datum)0;
}

// recsys.advanced_states(model, month, k) -> the same columns as full_states, for the
// customers with a snapshot in `month`: their stored states advanced to it.
RECSYS_FUNCTION(recsys_advanced_states) {
    pg_call([&] { InitMaterializedSRF(fcinfo, 0); });
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2)) return (Datum)0;
    const std::string name = text_arg(fcinfo, 0);
    const int32_t month = month_of_date(PG_GETARG_DATEADT(1));
    const int32_t k = PG_GETARG_INT32(2);
    std::shared_ptr<LoadedModel> m = from_start_model(name, k);
    StateRowWriter writer = make_writer(fcinfo, *m);
    compute_advanced_states(m.get(), month, srf_sink(writer, k), 0);
    spi_finish();
    serving::note_customers(uint64_t(tuplestore_tuple_count(writer.rsinfo->setResult)));
    return (Datum)0;
}

// recsys.store_states(model, month, k) -> bigint: computes full_states (month NULL) or
// advanced_states(month) and writes each customer's state and recommendations as it goes,
// in batches (RecommendationWriter); returns the number of customers written. Behind
// rebuild_states() and advance_month(), which take the model's writer lock first.
RECSYS_FUNCTION(recsys_store_states) {
    if (PG_ARGISNULL(0) || PG_ARGISNULL(2)) PG_RETURN_INT64(0);
    const std::string name = text_arg(fcinfo, 0);
    const bool full = PG_ARGISNULL(1);
    const int32_t month = full ? 0 : month_of_date(PG_GETARG_DATEADT(1));
    const int32_t k = PG_GETARG_INT32(2);
    std::shared_ptr<LoadedModel> m = from_start_model(name, k);
    const uint32_t P = m->model.product_count();
    // The writer's batch takes at most a quarter of recsys.max_batch_memory (as a fetch does) and
    // counts in it beside the scorer's batch.
    const auto rows = RecommendationWriter::Rows::StatesAndRecommendations;
    const size_t row_bytes = RecommendationWriter::buffer_bytes(rows, m->model.state_size(), P, size_t(k), 1);
    const size_t writer_rows =
        std::clamp<size_t>(max_batch_memory_bytes() / 4 / row_bytes, 1, RecommendationWriter::kBatchRows);
    const size_t writer_bytes = row_bytes * writer_rows;
    pg_call([&] {
        elog(DEBUG1, "recsys.store_states: writes batches of %zu rows (%zu bytes)", writer_rows, writer_bytes);
    });
    RecommendationWriter out(m->name, rows, m->model.state_size(), P, writer_rows);
    const std::vector<std::string> &names = m->model.products;
    const int32_t version = m->version;
    const StateSink sink = [&](int64_t customer, int32_t state_month, const float *state, const uint8_t *products,
                               const float *scores) {
        out.add(customer, version, state_month, state, products, names, top_k(scores, products, P, uint32_t(k)));
    };
    if (full)
        compute_full_states(m.get(), sink, writer_bytes);
    else
        compute_advanced_states(m.get(), month, sink, writer_bytes);
    const uint64_t written = out.finish();
    spi_finish();
    // Counted for advance_month (recsys.serving_stats).
    serving::note_customers(written);
    PG_RETURN_INT64(int64_t(written));
}

// recsys.advance_customer(model, customer_id, k) -> text[]: advances one customer's stored
// state to its latest snapshot (reading only the months after the state), stores the new
// state and recommendations, and returns them. Without a stored state the customer's whole
// history is run once. For a trigger on the snapshot table.
RECSYS_SERVING_FUNCTION(recsys_advance_customer, serving::EntryPoint::AdvanceCustomer) {
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2)) PG_RETURN_NULL();
    const std::string name = text_arg(fcinfo, 0);
    const int64_t customer = PG_GETARG_INT64(1);
    const int32_t k = PG_GETARG_INT32(2);
    std::shared_ptr<LoadedModel> m = from_start_model(name, k);
    const size_t P = m->model.product_count();
    plan_batch("recsys.advance_customer", m->label(), m->model,
               IncrementalScorer::buffer_bytes(m->model) + LstmForward::buffer_bytes(m->model), 1);
    IncrementalScorer scorer(m->model, 1);
    scorer.set_poll(interrupt_poll());
    const size_t SS = scorer.state_size();
    std::vector<float> state(SS, 0.0f), scores(P);
    std::vector<uint8_t> held(P), products;
    int32_t state_month = scorer.initial_month();

    const std::optional<StoredState> stored = load_state(*m, customer, SS);
    if (stored && stored->version == m->version) {
        state = stored->state;
        state_month = stored->month;
        products = stored->products;
    }
    // Only the snapshots after the state's month.
    const std::string where = m->reader->id_sql() + sql::op("=") + "$1 AND " + m->reader->month_sql() + sql::op(">=") +
                              sql::month_start(state_month + 1);
    Oid types[1] = {INT8OID};
    Datum args[1] = {Int64GetDatum(customer)};
    bool advanced = false;
    HistoryBatch step;
    stream_history(*m->reader, m->model, m->reader->batch_query(where), 1, types, args, 1, nullptr,
                   [&](HistoryBatch &history, size_t count) {
        for (size_t c = 0; c < count; ++c)
            for (size_t r = history.row_begin[c]; r < history.row_begin[c + 1]; ++r) {
                const int32_t month = history.month[r];
                step.reset(m->model.features.size(), P);
                step.begin_customer(customer);
                float *vals;
                uint8_t *prods;
                if (!products.empty() && state_month == month - 1) {
                    step.add_row(month - 1, &vals, &prods);
                    std::copy(products.begin(), products.end(), prods);
                }
                step.add_row(month, &vals, &prods);
                std::copy(history.values.begin() + r * step.feature_count,
                          history.values.begin() + (r + 1) * step.feature_count, vals);
                std::copy(history.products.begin() + r * P, history.products.begin() + (r + 1) * P, prods);
                scorer.advance(step, 0, 1, &state_month, state.data(), scores.data(), held.data());
                products.assign(held.begin(), held.end());
                advanced = true;
            }
    });
    if (!advanced && !stored)
        throw SqlError(ERRCODE_NO_DATA_FOUND,
                       "customer " + std::to_string(customer) + " has no snapshots in " + m->reader->relation_name());
    if (!advanced) {  // nothing new: the stored recommendations stand; recompute them from the state
        std::vector<float> statics(m->model.static_width(), 0.0f);
        // The head needs the statics of the state's month: read that snapshot.
        HistoryBatch last;
        if (!m->reader->read_customer(customer, last))
            throw SqlError(ERRCODE_NO_DATA_FOUND, "customer " + std::to_string(customer) + " has no snapshots");
        m->encoder->encode_statics(last, last.row_count() - 1, statics.data());
        LstmForward head(m->model, 1);
        head.head(state.data(), statics.data(), 1, scores.data());
        held = products;
    }
    const auto ranked = top_k(scores.data(), held.data(), uint32_t(P), uint32_t(k));
    std::vector<float> top_scores(ranked.size());
    for (size_t i = 0; i < ranked.size(); ++i) top_scores[i] = ranked[i].score;
    if (advanced) {
        RecommendationWriter out(m->name, RecommendationWriter::Rows::StatesAndRecommendations, SS, P, 1);
        out.add(customer, m->version, state_month, state.data(), held.data(), m->model.products, ranked);
        out.finish();
    }
    spi_finish();
    serving::note_customers(1);
    return ranked_names_array(m->model.products, ranked);
}
