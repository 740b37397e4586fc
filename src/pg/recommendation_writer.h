// The one writer of recsys.recommendations and recsys.customer_states.
//
// store_states (rebuild_states, advance_month), advance_customer and refresh_recommendations
// all write through it. Each row is formed as it comes, and the rows are written in batches:
// each flush is one INSERT ... SELECT FROM unnest($1) ON CONFLICT DO UPDATE per table, a
// prepared plan whose one parameter is the batch as an array of the table's row type
// (table_row_array.h), so the executor runs once per batch rather than once per customer,
// and each row's arrays (a state of 256 floats) reach the table as they were built: passed as
// one array per column instead, they were sliced out element by element, a seventh of
// advance_month's time. A row that exists is updated
// in place through the conflict arm (a probe of the key, then the update; with the tables'
// fillfactor 50 the update stays on its page). A refresh no longer deletes every row before
// inserting it again: that cost about twice an update in place per row (bench/refresh_write_cost.sh) and
// left a dead copy of the table and a second index entry per row behind for VACUUM; it upserts,
// then deletes the rows of customers it no longer scores. (An UPDATE ... FROM unnest() first was
// tried and dropped: its join plan, made when the table is small, scans every row of the model
// per batch once the table has grown, which made a 1,000,000-customer refresh quadratic.)
// Being SQL, the writes honour the tables' triggers, constraints, row security and privileges
// like any other INSERT or UPDATE.
//
// Every row a writer writes gets the same computed_at: the time the writer was created.
//
// The writer runs inside an SPI connection of its caller; its statements see the caller's
// earlier writes and are part of its transaction, so an error anywhere rolls everything back.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "guard.h"
#include "ranking.h"
#include "table_row_array.h"

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
    // Forms one row of recsys.recommendations in the batch (products text[], scores real[]).
    void add_recommendation_row(int64_t customer, int32_t version, Datum products, Datum scores);
    void free_row_values(std::initializer_list<Datum> values);
    // Upserts the batch: each table's rows as one array of its row type (table_row_array.h).
    void flush();
    void delete_rows_not_rewritten();

    std::string model_;
    Rows rows_;
    size_t state_size_, product_count_, batch_rows_;
    uint64_t written_ = 0;
    bool replace_ = false;
    TimestampTz computed_at_ = 0;
    Datum model_datum_ = 0;
    // The batch's formed rows and their arrays; reset after each flush.
    MemoryContext batch_context_ = nullptr;
    std::optional<TableRowArray> state_rows_, recommendation_rows_;
    // One customer's ranked scores, reused from row to row.
    std::vector<float> ranked_scores_;
    SPIPlanPtr upsert_states_ = nullptr, upsert_recommendations_ = nullptr;
};

}  // namespace recsys::pg
