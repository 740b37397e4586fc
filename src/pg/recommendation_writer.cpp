// The one writer of recsys.recommendations and recsys.customer_states (recommendation_writer.h).
#include "recommendation_writer.h"

#include "source_reader.h"
#include "sql_text.h"
#include "sql_values.h"
#include "table_row_array.h"

namespace recsys::pg {

namespace {

// Both upserts take one parameter: the batch as an array of the table's row type
// (table_row_array.h), unnested into the rows to insert or, through the conflict arm, update.
constexpr const char *kUpsertStates =
    "INSERT INTO recsys.customer_states (model_name, customer_id, model_version, state_month, state, products) "
    "SELECT u.model_name, u.customer_id, u.model_version, u.state_month, u.state, u.products "
    "FROM pg_catalog.unnest($1) AS u "
    "ON CONFLICT (model_name, customer_id) DO UPDATE SET model_version = excluded.model_version, "
    "state_month = excluded.state_month, state = excluded.state, products = excluded.products";

constexpr const char *kUpsertRecommendations =
    "INSERT INTO recsys.recommendations (model_name, customer_id, model_version, computed_at, products, scores) "
    "SELECT u.model_name, u.customer_id, u.model_version, u.computed_at, u.products, u.scores "
    "FROM pg_catalog.unnest($1) AS u "
    "ON CONFLICT (model_name, customer_id) DO UPDATE SET model_version = excluded.model_version, "
    "computed_at = excluded.computed_at, products = excluded.products, scores = excluded.scores";

SPIPlanPtr prepare(const char *query, Oid row_array_type) {
    return pg_call([&] {
        SPIPlanPtr plan = SPI_prepare(query, 1, &row_array_type);
        if (!plan) elog(ERROR, "preparing the recommendation writer failed: %s", SPI_result_code_string(SPI_result));
        return plan;
    });
}

// While alive, PostgreSQL allocates in `context`; then the previous context again, also when
// a C++ exception leaves the scope.
class AllocateIn {
public:
    explicit AllocateIn(MemoryContext context) : previous_(MemoryContextSwitchTo(context)) {}
    ~AllocateIn() { MemoryContextSwitchTo(previous_); }
    AllocateIn(const AllocateIn &) = delete;
    AllocateIn &operator=(const AllocateIn &) = delete;

private:
    MemoryContext previous_;
};

}  // namespace

RecommendationWriter::RecommendationWriter(const std::string &model, Rows rows, size_t state_size,
                                           size_t product_count, size_t batch_rows)
    : model_(model), rows_(rows), state_size_(state_size), product_count_(product_count),
      batch_rows_(batch_rows ? batch_rows : 1) {
    pg_call([&] {
        computed_at_ = GetCurrentTimestamp();
        model_datum_ = CStringGetTextDatum(model_.c_str());
        batch_context_ = AllocSetContextCreate(CurrentMemoryContext, "recsys writer batch", ALLOCSET_DEFAULT_SIZES);
    });
    recommendation_rows_.emplace("recsys", "recommendations",
                                 std::vector<TableRowArray::Column>{{"model_name", TEXTOID},
                                                                    {"customer_id", INT8OID},
                                                                    {"model_version", INT4OID},
                                                                    {"computed_at", TIMESTAMPTZOID},
                                                                    {"products", TEXTARRAYOID},
                                                                    {"scores", FLOAT4ARRAYOID}});
    upsert_recommendations_ = prepare(kUpsertRecommendations, recommendation_rows_->array_type());
    if (rows_ == Rows::StatesAndRecommendations) {
        state_rows_.emplace("recsys", "customer_states",
                            std::vector<TableRowArray::Column>{{"model_name", TEXTOID},
                                                               {"customer_id", INT8OID},
                                                               {"model_version", INT4OID},
                                                               {"state_month", DATEOID},
                                                               {"state", FLOAT4ARRAYOID},
                                                               {"products", INT2ARRAYOID}});
        upsert_states_ = prepare(kUpsertStates, state_rows_->array_type());
    }
}

size_t RecommendationWriter::buffer_bytes(Rows rows, size_t state_size, size_t product_count, size_t k,
                                          size_t batch_rows) {
    // A row of recsys.recommendations: tuple header, model name, id, version, computed_at,
    // k product names (a short text each) and k scores, each array with its header; with
    // states, a row of recsys.customer_states besides: the state (float4) and the products
    // (int2). Held three times at most: as formed rows, as the array of them, and as the
    // statement's copy while it unnests them.
    size_t row = 128 + k * (24 + sizeof(float));
    if (rows == Rows::StatesAndRecommendations) row += 128 + state_size * sizeof(float) + product_count * sizeof(int16_t);
    return 3 * row * (batch_rows ? batch_rows : 1);
}

void RecommendationWriter::add_recommendation_row(int64_t customer, int32_t version, Datum products, Datum scores) {
    AllocateIn batch(batch_context_);
    const Datum values[6] = {model_datum_, Int64GetDatum(customer), Int32GetDatum(version),
                             TimestampTzGetDatum(computed_at_), products, scores};
    recommendation_rows_->add(values);
}

void RecommendationWriter::add(int64_t customer, int32_t version, const std::vector<std::string> &names,
                               const std::vector<Ranked> &ranked) {
    ranked_scores_.clear();
    for (const Ranked &r : ranked) ranked_scores_.push_back(r.score);
    Datum products, scores;
    {
        AllocateIn batch(batch_context_);
        products = ranked_names_array(names, ranked);
        scores = real_array(ranked_scores_.data(), ranked_scores_.size());
    }
    add_recommendation_row(customer, version, products, scores);
    free_row_values({products, scores});
    if (recommendation_rows_->size() >= batch_rows_) flush();
}

void RecommendationWriter::add(int64_t customer, int32_t version, int32_t state_month, const float *state,
                               const uint8_t *products, const std::vector<std::string> &names,
                               const std::vector<Ranked> &ranked) {
    Datum state_array, flags;
    {
        AllocateIn batch(batch_context_);
        state_array = real_array(state, state_size_);
        flags = flag_array(products, product_count_);
        const Datum values[6] = {model_datum_, Int64GetDatum(customer), Int32GetDatum(version),
                                 DateADTGetDatum(date_of_month(state_month)), state_array, flags};
        state_rows_->add(values);
    }
    free_row_values({state_array, flags});
    add(customer, version, names, ranked);
}

void RecommendationWriter::add(int64_t customer, int32_t version, Datum products, Datum scores) {
    // Checked as the column types cannot: as many scores as products, and no NULL in either.
    int names_count = 0, scores_count = 0;
    bool has_null = false;
    Datum names_array, scores_array;
    {
        AllocateIn batch(batch_context_);
        pg_call([&] {
            ArrayType *names = DatumGetArrayTypeP(products);
            ArrayType *values = DatumGetArrayTypeP(scores);
            names_count = ARR_NDIM(names) == 0 ? 0 : ArrayGetNItems(ARR_NDIM(names), ARR_DIMS(names));
            scores_count = ARR_NDIM(values) == 0 ? 0 : ArrayGetNItems(ARR_NDIM(values), ARR_DIMS(values));
            has_null = ARR_HASNULL(names) || ARR_HASNULL(values);
            names_array = PointerGetDatum(names);
            scores_array = PointerGetDatum(values);
        });
    }
    if (names_count != scores_count)
        throw SqlError(ERRCODE_DATA_EXCEPTION, "the recommendations of a customer have " +
                                                   std::to_string(names_count) + " products but " +
                                                   std::to_string(scores_count) + " scores");
    if (has_null)
        throw SqlError(ERRCODE_NULL_VALUE_NOT_ALLOWED, "the recommendations of a customer hold a NULL product or score");
    add_recommendation_row(customer, version, names_array, scores_array);
    // Detoasted copies (a short header in a tuple means one): freed per row, not per batch.
    if (names_array != products) free_row_values({names_array});
    if (scores_array != scores) free_row_values({scores_array});
    if (recommendation_rows_->size() >= batch_rows_) flush();
}

void RecommendationWriter::free_row_values(std::initializer_list<Datum> values) {
    pg_call([&] {
        for (Datum d : values) pfree(DatumGetPointer(d));
    });
}

namespace {

// Runs a prepared writer statement (an upsert) over one row array; returns the rows it wrote.
uint64_t execute(SPIPlanPtr plan, Datum rows, const char *what) {
    return pg_call([&] {
        const int rc = SPI_execute_plan(plan, &rows, nullptr, false, 0);
        if (rc != SPI_OK_INSERT) elog(ERROR, "storing the %s failed: %s", what, SPI_result_code_string(rc));
        return SPI_processed;
    });
}

}  // namespace

void RecommendationWriter::flush() {
    if (recommendation_rows_->size() == 0) return;
    Datum states = 0, recommendations;
    {
        AllocateIn batch(batch_context_);
        if (state_rows_) states = state_rows_->take();
        recommendations = recommendation_rows_->take();
    }
    if (state_rows_) execute(upsert_states_, states, "customer states");
    // A row a trigger skipped is not written; the count is of recommendations rows written.
    written_ += execute(upsert_recommendations_, recommendations, "recommendations");
    pg_call([&] { MemoryContextReset(batch_context_); });
}

void RecommendationWriter::delete_rows_not_rewritten() {
    const char *model = model_.c_str();
    const TimestampTz since = computed_at_;
    pg_call([&] {
        Datum args[2] = {CStringGetTextDatum(model), TimestampTzGetDatum(since)};
        Oid types[2] = {TEXTOID, TIMESTAMPTZOID};
        // The rows this writer wrote carry its computed_at; older ones are of customers it did not score.
        if (SPI_execute_with_args("DELETE FROM recsys.recommendations WHERE model_name OPERATOR(pg_catalog.=) $1 "
                                  "AND computed_at OPERATOR(pg_catalog.<) $2",
                                  2, types, args, nullptr, false, 0) != SPI_OK_DELETE)
            elog(ERROR, "deleting the recommendations of customers no longer scored failed");
    });
}

uint64_t RecommendationWriter::finish() {
    flush();
    if (replace_) delete_rows_not_rewritten();
    return written_;
}

}  // namespace recsys::pg
