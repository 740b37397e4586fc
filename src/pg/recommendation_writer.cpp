// The one writer of recsys.recommendations and recsys.customer_states (recommendation_writer.h).
#include "recommendation_writer.h"

#include "source_reader.h"
#include "sql_text.h"
#include "sql_values.h"

namespace recsys::pg {

namespace {

// Row o (1-based) of a batch holds elements [(o - 1) * n + 1, o * n] of a flattened column
// of n values per row: its states (n = state size) and products (n = product count).
// $1 model, $2 ids, $3 versions, $4 state months, $5 states, $6 products.
std::string upsert_states_sql(size_t state_size, size_t product_count) {
    const auto slice = [](const char *column, size_t n) {
        const std::string width = std::to_string(n);
        return std::string(column) + "[(u.o" + sql::op("-") + "1)" + sql::op("*") + width + sql::op("+") + "1 : u.o" +
               sql::op("*") + width + "]";
    };
    return "INSERT INTO recsys.customer_states (model_name, customer_id, model_version, state_month, state, products) "
           "SELECT $1, u.id, u.version, u.month, " + slice("$5", state_size) + ", " + slice("$6", product_count) +
           " FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4)) WITH ORDINALITY "
           "AS u(id, version, month, o) "
           "ON CONFLICT (model_name, customer_id) DO UPDATE SET model_version = excluded.model_version, "
           "state_month = excluded.state_month, state = excluded.state, products = excluded.products";
}

// $1 model, $2 ids, $3 versions, $4 each row's ranked product names as one text[] literal,
// $5 scores, $6 lo, $7 hi. The names travel as literals because slicing a text[] seeks from its
// first element (variable-length elements), which made a batch cost quadratic in its size.
constexpr const char *kUpsertRecommendations =
    "INSERT INTO recsys.recommendations (model_name, customer_id, model_version, computed_at, products, scores) "
    "SELECT $1, u.id, u.version, pg_catalog.now(), (u.names)::pg_catalog.text[], $5[u.lo:u.hi] "
    "FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($6), "
    "pg_catalog.unnest($7)) AS u(id, version, names, lo, hi) "
    "ON CONFLICT (model_name, customer_id) DO UPDATE SET model_version = excluded.model_version, "
    "computed_at = excluded.computed_at, products = excluded.products, scores = excluded.scores";

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
    Oid rec_types[7] = {TEXTOID, INT8ARRAYOID, INT4ARRAYOID, TEXTARRAYOID, FLOAT4ARRAYOID, INT4ARRAYOID, INT4ARRAYOID};
    recommendations_plan_ = prepare(kUpsertRecommendations, 7, rec_types);
    if (rows_ == Rows::StatesAndRecommendations) {
        Oid state_types[6] = {TEXTOID, INT8ARRAYOID, INT4ARRAYOID, DATEARRAYOID, FLOAT4ARRAYOID, INT2ARRAYOID};
        const std::string query = upsert_states_sql(state_size_, product_count_);
        states_plan_ = prepare(query.c_str(), 6, state_types);
    }
}

void RecommendationWriter::delete_model_rows() {
    const bool states = rows_ == Rows::StatesAndRecommendations;
    const char *model = model_.c_str();
    pg_call([&] {
        Datum args[1] = {CStringGetTextDatum(model)};
        Oid types[1] = {TEXTOID};
        if (SPI_execute_with_args("DELETE FROM recsys.recommendations WHERE model_name OPERATOR(pg_catalog.=) $1", 1,
                                  types, args, nullptr, false, 0) != SPI_OK_DELETE)
            elog(ERROR, "deleting the recommendations failed");
        if (states &&
            SPI_execute_with_args("DELETE FROM recsys.customer_states WHERE model_name OPERATOR(pg_catalog.=) $1", 1,
                                  types, args, nullptr, false, 0) != SPI_OK_DELETE)
            elog(ERROR, "deleting the stored states failed");
    });
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

void RecommendationWriter::flush() {
    const size_t n = ids_.size();
    if (n == 0) return;
    const int64_t before = int64_t(written_);
    std::vector<int32_t> lo(n), hi(n);
    // Batch columns as SQL arrays; each is freed right after the statements that read it.
    Datum model = pg_call([&] { return CStringGetTextDatum(model_.c_str()); });
    Datum ids = int8_array(ids_), versions = int4_array(versions_, INT4OID);
    uint64_t rows_states = 0, rows_recs = 0;
    if (rows_ == Rows::StatesAndRecommendations) {
        Datum months = int4_array(months_, DATEOID);  // a date is an int4 day count
        Datum states = real_array(states_.data(), states_.size());
        Datum products = int2_array(products_);
        SPIPlanPtr plan = states_plan_;
        rows_states = pg_call([&] {
            Datum args[6] = {model, ids, versions, months, states, products};
            if (SPI_execute_plan(plan, args, nullptr, false, 0) != SPI_OK_INSERT)
                elog(ERROR, "storing the customer states failed");
            for (Datum d : {months, states, products}) pfree(DatumGetPointer(d));
            return SPI_processed;
        });
    }
    for (size_t i = 0; i < n; ++i) {
        lo[i] = offsets_[i] + 1;
        hi[i] = offsets_[i + 1];
    }
    std::vector<std::string> literals(n);
    for (size_t i = 0; i < n; ++i) literals[i] = text_array_literal(names_, size_t(offsets_[i]), size_t(offsets_[i + 1]));
    Datum names = text_array(literals);
    Datum scores = real_array(scores_.data(), scores_.size());
    Datum rlo = int4_array(lo, INT4OID), rhi = int4_array(hi, INT4OID);
    SPIPlanPtr plan = recommendations_plan_;
    rows_recs = pg_call([&] {
        Datum args[7] = {model, ids, versions, names, scores, rlo, rhi};
        if (SPI_execute_plan(plan, args, nullptr, false, 0) != SPI_OK_INSERT)
            elog(ERROR, "storing the recommendations failed");
        for (Datum d : {model, ids, versions, names, scores, rlo, rhi}) pfree(DatumGetPointer(d));
        return SPI_processed;
    });
    // A row a trigger skipped is not written; the count is of recommendations rows written.
    (void)rows_states;
    written_ = uint64_t(before) + rows_recs;
    ids_.clear();
    versions_.clear();
    months_.clear();
    states_.clear();
    products_.clear();
    names_.clear();
    scores_.clear();
    offsets_.assign(1, 0);
}

uint64_t RecommendationWriter::finish() {
    flush();
    return written_;
}

}  // namespace recsys::pg
