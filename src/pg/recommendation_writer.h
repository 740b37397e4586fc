// The one writer of recsys.recommendations and recsys.customer_states.
//
// store_states (rebuild_states, advance_month), advance_customer and refresh_recommendations
// all write through it. Rows are buffered in C++ and written in batches, per table: first one
// UPDATE ... FROM unnest(...) of the rows that exist (returning which did), then, for the rows
// it did not find, one INSERT ... ON CONFLICT DO UPDATE (the conflict arm covers a row another
// session inserted meanwhile). Both are prepared plans whose parameters are whole columns of
// the batch, so the executor runs once per batch rather than once per customer, and no row is
// materialized in a tuplestore. Updating first matters: an upsert of an existing row probes
// the key, locks the row (a WAL record of its own) and then updates it, where an UPDATE probes
// and updates; and a refresh that deleted every row before inserting it again cost 2.3 times
// an update in place (measured in docs/benchmarks.md) and left a dead copy of the table and a
// second index entry per row behind for VACUUM. Being SQL, the writes honour the tables'
// triggers, constraints, row security and privileges like any other INSERT or UPDATE: a row
// that exists fires UPDATE triggers only, a new row INSERT triggers.
//
// Every row a writer writes gets the same computed_at: the time the writer was created.
//
// The writer runs inside an SPI connection of its caller; its statements see the caller's
// earlier writes and are part of its transaction, so an error anywhere rolls everything back.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "guard.h"
#include "ranking.h"

namespace recsys::pg {

class RecommendationWriter {
public:
    // What each row carries: the recommendations only (refresh_recommendations), or the
    // recommendations and the customer's LSTM state (incremental scoring).
    enum class Rows { Recommendations, StatesAndRecommendations };

    // model: the model name written to both tables; state_size and product_count size the
    // state (real[]) and products (smallint[]) columns of customer_states; batch_rows: rows
    // per flush. SPI must be connected, and stay connected until finish().
    RecommendationWriter(const std::string &model, Rows rows, size_t state_size, size_t product_count,
                         size_t batch_rows = kBatchRows);
    static constexpr size_t kBatchRows = 1024;

    // Bytes a writer's batch holds at most (the rows buffered in C++, and again as the flush's
    // SQL arrays) for k products a row: for callers to count in recsys.max_batch_memory.
    static size_t buffer_bytes(Rows rows, size_t state_size, size_t product_count, size_t k,
                               size_t batch_rows = kBatchRows);

    // For a writer that replaces all of the model's recommendations (refresh_recommendations,
    // Rows::Recommendations): finish() then deletes the model's rows in recsys.recommendations
    // computed before this writer started, i.e. those it did not rewrite: the customers gone
    // from the source. Readers keep seeing the old rows until the transaction commits.
    void replace_model_rows() { replace_ = true; }

    // One customer: its ranked products (indices into names) and their scores.
    void add(int64_t customer, int32_t version, const std::vector<std::string> &names,
             const std::vector<Ranked> &ranked);
    // The same with the customer's state after state_month (a month index) and that month's
    // products (0/1 flags): Rows::StatesAndRecommendations only.
    void add(int64_t customer, int32_t version, int32_t state_month, const float *state, const uint8_t *products,
             const std::vector<std::string> &names, const std::vector<Ranked> &ranked);
    // One customer's recommendations as SQL values: products (text[]) and scores (real[]),
    // e.g. straight from a row of recsys.score_all(). Rows::Recommendations only.
    void add(int64_t customer, int32_t version, Datum products, Datum scores);

    // Writes what is buffered (and, after replace_model_rows(), deletes the rows not
    // rewritten); returns the rows written.
    uint64_t finish();
    uint64_t written() const { return written_; }

private:
    void begin_row(int64_t customer, int32_t version);
    void flush();
    // Runs plan (an UPDATE or an upsert of one table) over rows `rows` of the batch; appends
    // the ids of the rows an UPDATE found to `found` (when not null); returns rows processed.
    uint64_t write_states(SPIPlanPtr plan, const std::vector<int32_t> &rows, std::vector<int64_t> *found);
    uint64_t write_recommendations(SPIPlanPtr plan, const std::vector<int32_t> &rows, std::vector<int64_t> *found);
    // UPDATE, then the upsert of the rows the UPDATE did not find; returns rows written.
    uint64_t update_then_insert(SPIPlanPtr update, SPIPlanPtr upsert,
                                uint64_t (RecommendationWriter::*write)(SPIPlanPtr, const std::vector<int32_t> &,
                                                                        std::vector<int64_t> *));
    void delete_rows_not_rewritten();

    std::string model_;
    Rows rows_;
    size_t state_size_, product_count_, batch_rows_;
    uint64_t written_ = 0;
    bool replace_ = false;
    TimestampTz computed_at_;
    // The batch, column by column; a row's ranked products are names_[offsets_[i], offsets_[i + 1]).
    std::vector<int64_t> ids_;
    std::vector<int32_t> versions_, months_;
    std::vector<float> states_;
    std::vector<int16_t> products_;
    std::vector<std::string> names_;
    std::vector<float> scores_;
    std::vector<int32_t> offsets_{0};
    SPIPlanPtr update_states_ = nullptr, upsert_states_ = nullptr;
    SPIPlanPtr update_recommendations_ = nullptr, upsert_recommendations_ = nullptr;
    // The batch's flattened states, products and scores as SQL arrays, built once per flush and
    // read by both statements of a table (each row's slice is found by its row number).
    Datum flat_states_ = 0, flat_products_ = 0, flat_scores_ = 0;
};

}  // namespace recsys::pg
