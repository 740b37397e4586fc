// The one writer of recsys.recommendations and recsys.customer_states (recommendation_writer.h).
#include "recommendation_writer.h"

#include "source_reader.h"
#include "sql_text.h"
#include "sql_values.h"

namespace recsys::pg {

namespace {

// Row o (1-based) of a batch holds elements [(o - 1) * n + 1, o * n] of a flattened column
// of n values per row: its states (n = state size) and products (n = product count).
std::string slice(const char *column, size_t n) {
    const std::string width = std::to_string(n);
    return std::string(column) + "[(u.o" + sql::op("-") + "1)" + sql::op("*") + width + sql::op("+") + "1 : u.o" +
           sql::op("*") + width + "]";
}

// The states statements' parameters: $1 model, $2 ids, $3 versions, $4 state months,
// $5 states, $6 products (both flattened over the whole batch; row o's slice starts at its
// ordinal).
constexpr const char *kStateRows =
    "ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4)) WITH ORDINALITY "
    "AS u(id, version, month, o)";

std::string upsert_states_sql(size_t state_size, size_t product_count) {
    return "INSERT INTO recsys.customer_states (model_name, customer_id, model_version, state_month, state, products) "
           "SELECT $1, u.id, u.version, u.month, " + slice("$5", state_size) + ", " + slice("$6", product_count) +
           " FROM " + kStateRows +
           " ON CONFLICT (model_name, customer_id) DO UPDATE SET model_version = excluded.model_version, "
           "state_month = excluded.state_month, state = excluded.state, products = excluded.products";
}

// The recommendations statements' parameters: $1 model, $2 ids, $3 versions, $4 each row's
// ranked product names as one text[] literal, $5 scores (flattened over the whole batch),
// $6 lo, $7 hi (each row's slice of $5), $8 computed_at. The names travel as literals because
// slicing a text[] seeks from its first element (variable-length elements), which made a
// batch cost quadratic in its size.
constexpr const char *kRecommendationRows =
    "ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($6), "
    "pg_catalog.unnest($7)) AS u(id, version, names, lo, hi)";

std::string upsert_recommendations_sql() {
    return std::string("INSERT INTO recsys.recommendations (model_name, customer_id, model_version, computed_at, "
                       "products, scores) SELECT $1, u.id, u.version, $8, (u.names)::pg_catalog.text[], "
                       "$5[u.lo:u.hi] FROM ") +
           kRecommendationRows +
           " ON CONFLICT (model_name, customer_id) DO UPDATE SET model_version = excluded.model_version, "
           "computed_at = excluded.computed_at, products = excluded.products, scores = excluded.scores";
}

// names[begin, end) as a text[] literal: every element double-quoted, '"' and '\' escaped.
std::string text_array_literal(const std::vector<std::string> &names, size_t begin, size_t end) {
    std::string out = "{";
    for (size_t i = begin; i < end; ++i) {
        if (i > begin) out += ',';
        out += '"';
        for (char c : names[i]) {
            if (c == '"' || c == '\\') out += '\\';
            out += c;
        }
        out += '"';
    }
    out += '}';
    return out;
}

SPIPlanPtr prepare(const char *query, int nargs, Oid *types) {
    return pg_call([&] {
        SPIPlanPtr plan = SPI_prepare(query, nargs, types);
        if (!plan) elog(ERROR, "preparing the recommendation writer failed: %s", SPI_result_code_string(SPI_result));
        return plan;
    });
}

// Array constructors for one flush; they palloc in the current (SPI procedure) context,
// which the caller resets through SPI_finish, and flush() frees them right after use.
Datum int8_array(const std::vector<int64_t> &v) {
    return pg_call([&] {
        Datum *e = static_cast<Datum *>(palloc(sizeof(Datum) * (v.size() + 1)));
        for (size_t i = 0; i < v.size(); ++i) e[i] = Int64GetDatum(v[i]);
        ArrayType *a = construct_array(e, int(v.size()), INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
        pfree(e);
        return PointerGetDatum(a);
    });
}

Datum int4_array(const std::vector<int32_t> &v, Oid type) {
    return pg_call([&] {
        Datum *e = static_cast<Datum *>(palloc(sizeof(Datum) * (v.size() + 1)));
        for (size_t i = 0; i < v.size(); ++i) e[i] = Int32GetDatum(v[i]);
        ArrayType *a = construct_array(e, int(v.size()), type, 4, true, TYPALIGN_INT);
        pfree(e);
        return PointerGetDatum(a);
    });
}

Datum int2_array(const std::vector<int16_t> &v) {
    return pg_call([&] {
        Datum *e = static_cast<Datum *>(palloc(sizeof(Datum) * (v.size() + 1)));
        for (size_t i = 0; i < v.size(); ++i) e[i] = Int16GetDatum(v[i]);
        ArrayType *a = construct_array(e, int(v.size()), INT2OID, 2, true, TYPALIGN_SHORT);
        pfree(e);
        return PointerGetDatum(a);
    });
}

Datum text_array(const std::vector<std::string> &v) {
    return pg_call([&] {
        Datum *e = static_cast<Datum *>(palloc(sizeof(Datum) * (v.size() + 1)));
        for (size_t i = 0; i < v.size(); ++i) e[i] = PointerGetDatum(cstring_to_text_with_len(v[i].data(), int(v[i].size())));
        ArrayType *a = construct_array(e, int(v.size()), TEXTOID, -1, false, TYPALIGN_INT);
        for (size_t i = 0; i < v.size(); ++i) pfree(DatumGetPointer(e[i]));
        pfree(e);
        return PointerGetDatum(a);
    });
}

}  // namespace

RecommendationWriter::RecommendationWriter(const std::string &model, Rows rows, size_t state_size,
                                           size_t product_count, size_t batch_rows)
    : model_(model), rows_(rows), state_size_(state_size), product_count_(product_count),
      batch_rows_(batch_rows ? batch_rows : 1) {
    computed_at_ = pg_call([] { return GetCurrentTimestamp(); });
    Oid rec_types[8] = {TEXTOID,        INT8ARRAYOID, INT4ARRAYOID, TEXTARRAYOID, FLOAT4ARRAYOID,
                        INT4ARRAYOID, INT4ARRAYOID, TIMESTAMPTZOID};
    upsert_recommendations_ = prepare(upsert_recommendations_sql().c_str(), 8, rec_types);
    if (rows_ == Rows::StatesAndRecommendations) {
        Oid state_types[6] = {TEXTOID, INT8ARRAYOID, INT4ARRAYOID, DATEARRAYOID, FLOAT4ARRAYOID, INT2ARRAYOID};
        upsert_states_ = prepare(upsert_states_sql(state_size_, product_count_).c_str(), 6, state_types);
    }
}

size_t RecommendationWriter::buffer_bytes(Rows rows, size_t state_size, size_t product_count, size_t k,
                                          size_t batch_rows) {
    // Per row: id, version, offsets and slice bounds; each ranked product's name (a
    // std::string of a short name, then its part of the text[] literal) and score; with
    // states, the state month, the state (float4) and the products (int2).
    size_t row = 48 + k * (sizeof(std::string) + 32 + sizeof(float));
    if (rows == Rows::StatesAndRecommendations)
        row += sizeof(int32_t) + state_size * sizeof(float) + product_count * sizeof(int16_t);
    return 2 * row * (batch_rows ? batch_rows : 1);
}

void RecommendationWriter::begin_row(int64_t customer, int32_t version) {
    ids_.push_back(customer);
    versions_.push_back(version);
}

void RecommendationWriter::add(int64_t customer, int32_t version, const std::vector<std::string> &names,
                               const std::vector<Ranked> &ranked) {
    begin_row(customer, version);
    for (const Ranked &r : ranked) {
        names_.push_back(names[r.product]);
        scores_.push_back(r.score);
    }
    offsets_.push_back(int32_t(names_.size()));
    if (ids_.size() >= batch_rows_) flush();
}

void RecommendationWriter::add(int64_t customer, int32_t version, int32_t state_month, const float *state,
                               const uint8_t *products, const std::vector<std::string> &names,
                               const std::vector<Ranked> &ranked) {
    months_.push_back(int32_t(date_of_month(state_month)));
    states_.insert(states_.end(), state, state + state_size_);
    for (size_t p = 0; p < product_count_; ++p) products_.push_back(int16_t(products[p] ? 1 : 0));
    add(customer, version, names, ranked);
}

void RecommendationWriter::add(int64_t customer, int32_t version, Datum products, Datum scores) {
    begin_row(customer, version);
    pg_call([&] {
        ArrayType *names = DatumGetArrayTypeP(products);
        ArrayType *values = DatumGetArrayTypeP(scores);
        Datum *ne, *se;
        bool *nn, *sn;
        int nc, sc;
        deconstruct_array(names, TEXTOID, -1, false, TYPALIGN_INT, &ne, &nn, &nc);
        deconstruct_array(values, FLOAT4OID, 4, true, TYPALIGN_INT, &se, &sn, &sc);
        if (nc != sc)
            ereport(ERROR, (errcode(ERRCODE_DATA_EXCEPTION),
                            errmsg("the recommendations of a customer have %d products but %d scores", nc, sc)));
        for (int i = 0; i < nc; ++i) {
            if (nn[i] || sn[i])
                ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                                errmsg("the recommendations of a customer hold a NULL product or score")));
            // emplace_back inside the PG_TRY frame: a C++ exception here (bad_alloc) is caught by
            // pg_call and rethrown after PG_END_TRY.
            text *t = DatumGetTextPP(ne[i]);
            names_.emplace_back(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
            scores_.push_back(DatumGetFloat4(se[i]));
        }
        pfree(ne);
        pfree(nn);
        pfree(se);
        pfree(sn);
        // Detoasted copies (a short header in a tuple means one): freed per row, not per batch.
        if (PointerGetDatum(names) != products) pfree(names);
        if (PointerGetDatum(values) != scores) pfree(values);
    });
    offsets_.push_back(int32_t(names_.size()));
    if (ids_.size() >= batch_rows_) flush();
}

namespace {

// Runs a prepared writer statement (an upsert); returns the rows it wrote.
uint64_t execute(SPIPlanPtr plan, Datum *args, const char *what) {
    return pg_call([&] {
        const int rc = SPI_execute_plan(plan, args, nullptr, false, 0);
        if (rc != SPI_OK_INSERT) elog(ERROR, "storing the %s failed: %s", what, SPI_result_code_string(rc));
        return SPI_processed;
    });
}

void free_datums(std::initializer_list<Datum> datums) {
    pg_call([&] {
        for (Datum d : datums) pfree(DatumGetPointer(d));
    });
}

}  // namespace

uint64_t RecommendationWriter::write_states() {
    Datum model = pg_call([&] { return CStringGetTextDatum(model_.c_str()); });
    Datum ids = int8_array(ids_), versions = int4_array(versions_, INT4OID);
    Datum months = int4_array(months_, DATEOID);  // a date is an int4 day count
    Datum states = real_array(states_.data(), states_.size());
    Datum products = int2_array(products_);
    Datum args[6] = {model, ids, versions, months, states, products};
    const uint64_t n = execute(upsert_states_, args, "customer states");
    free_datums({model, ids, versions, months, states, products});
    return n;
}

uint64_t RecommendationWriter::write_recommendations() {
    const size_t rows = ids_.size();
    std::vector<int32_t> lo(rows), hi(rows);
    std::vector<std::string> literals(rows);
    for (size_t r = 0; r < rows; ++r) {
        lo[r] = offsets_[r] + 1;
        hi[r] = offsets_[r + 1];
        literals[r] = text_array_literal(names_, size_t(offsets_[r]), size_t(offsets_[r + 1]));
    }
    Datum model = pg_call([&] { return CStringGetTextDatum(model_.c_str()); });
    Datum ids = int8_array(ids_), versions = int4_array(versions_, INT4OID);
    Datum names = text_array(literals);
    Datum scores = real_array(scores_.data(), scores_.size());
    Datum rlo = int4_array(lo, INT4OID), rhi = int4_array(hi, INT4OID);
    Datum args[8] = {model, ids, versions, names, scores, rlo, rhi, TimestampTzGetDatum(computed_at_)};
    const uint64_t n = execute(upsert_recommendations_, args, "recommendations");
    free_datums({model, ids, versions, names, scores, rlo, rhi});
    return n;
}

void RecommendationWriter::flush() {
    if (ids_.empty()) return;
    if (rows_ == Rows::StatesAndRecommendations) write_states();
    // A row a trigger skipped is not written; the count is of recommendations rows written.
    written_ += write_recommendations();
    ids_.clear();
    versions_.clear();
    months_.clear();
    states_.clear();
    products_.clear();
    names_.clear();
    scores_.clear();
    offsets_.assign(1, 0);
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
