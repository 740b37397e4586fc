// The one writer of recsys.recommendations and recsys.customer_states.
//
// store_states (rebuild_states, advance_month), advance_customer and refresh_recommendations
// all write through it. Rows are buffered in C++ and written in batches: each flush is one
// INSERT ... SELECT FROM unnest(...) ON CONFLICT DO UPDATE per table, a prepared plan whose
// parameters are whole columns of the batch. Compared with an upsert per row this runs the
// executor once per batch instead of once per customer, and compared with an upsert fed by a
// set-returning function it never materializes the rows in a tuplestore (which spilled about
// 1 KiB per customer to temporary files, twice). Being SQL, the writes honour the tables'
// triggers, constraints, row security and privileges like any other INSERT or UPDATE.
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
                         size_t batch_rows = 1024);

    // Deletes every row of the model in recsys.recommendations (and in customer_states when
    // rows carry states), for a writer that replaces them all; readers keep seeing the old
    // rows until the transaction commits.
    void delete_model_rows();

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

    // Writes what is buffered; returns the rows written so far.
    uint64_t finish();
    uint64_t written() const { return written_; }

private:
    void begin_row(int64_t customer, int32_t version);
    void flush();

    std::string model_;
    Rows rows_;
    size_t state_size_, product_count_, batch_rows_;
    uint64_t written_ = 0;
    // The batch, column by column; a row's ranked products are names_[offsets_[i], offsets_[i + 1]).
    std::vector<int64_t> ids_;
    std::vector<int32_t> versions_, months_;
    std::vector<float> states_;
    std::vector<int16_t> products_;
    std::vector<std::string> names_;
    std::vector<float> scores_;
    std::vector<int32_t> offsets_{0};
    SPIPlanPtr states_plan_ = nullptr, recommendations_plan_ = nullptr;
};

}  // namespace recsys::pg
