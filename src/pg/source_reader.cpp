#include "source_reader.h"

#include <cmath>
#include <cstdio>
#include <string_view>

#include "errors.h"
#include "guard.h"
#include "sql_text.h"

namespace recsys::pg {

namespace sql {
std::string month_start(int32_t month) { return "'" + month_label(month) + "-01'::pg_catalog.date"; }
}  // namespace sql

int32_t month_of_date(DateADT date) {
    if (DATE_NOT_FINITE(date)) throw SqlError(ERRCODE_DATA_EXCEPTION, "snapshot month is infinite");
    int year, month, day;
    j2date(date + POSTGRES_EPOCH_JDATE, &year, &month, &day);
    return year * 12 + (month - 1);
}

DateADT date_of_month(int32_t month) {
    return date2j(month / 12, month % 12 + 1, 28) - POSTGRES_EPOCH_JDATE;
}

std::string month_label(int32_t month) {
    char buf[16];
    snprintf(buf, sizeof buf, "%04d-%02d", month / 12, month % 12 + 1);
    return buf;
}

std::string quote_ident(const std::string &name) {
    return pg_call([&] { return quote_identifier(name.c_str()); });
}

namespace {

std::string format_number(double x) {
    char buf[64];
    snprintf(buf, sizeof buf, "%g", x);
    return buf;
}

enum class TypeClass { Numeric, Boolean, Text, Date, Other };

TypeClass classify(Oid type) {
    switch (type) {
        case INT2OID: case INT4OID: case INT8OID: case FLOAT4OID: case FLOAT8OID: case NUMERICOID:
            return TypeClass::Numeric;
        case BOOLOID: return TypeClass::Boolean;
        case TEXTOID: case VARCHAROID: case BPCHAROID: case NAMEOID: case CHAROID: return TypeClass::Text;
        case DATEOID: case TIMESTAMPOID: case TIMESTAMPTZOID: return TypeClass::Date;
        default: return TypeClass::Other;
    }
}

struct ColumnInfo {
    std::string name;
    Oid type;
    std::string type_name;
};

// The relation's columns, copied out of the catalog in two steps: PostgreSQL calls fill
// palloc'd C strings inside pg_call (nothing there owns C++ resources, and the relation is
// closed before anything can throw), then the C++ strings are built outside it.
std::vector<ColumnInfo> relation_columns(Oid relid) {
    struct RawColumn {
        char *name;
        Oid type;
        char *type_name;
    };
    RawColumn *raw = nullptr;
    int count = 0;
    pg_call([&] {
        Relation rel = relation_open(relid, AccessShareLock);
        TupleDesc desc = RelationGetDescr(rel);
        raw = static_cast<RawColumn *>(palloc0(sizeof(RawColumn) * (desc->natts + 1)));
        for (int i = 0; i < desc->natts; ++i) {
            Form_pg_attribute att = TupleDescAttr(desc, i);
            if (att->attisdropped) continue;
            raw[count].name = pstrdup(NameStr(att->attname));
            raw[count].type = getBaseType(att->atttypid);
            raw[count].type_name = format_type_be(att->atttypid);
            ++count;
        }
        relation_close(rel, AccessShareLock);
    });
    std::vector<ColumnInfo> columns;
    columns.reserve(size_t(count));
    for (int i = 0; i < count; ++i) columns.push_back({raw[i].name, raw[i].type, raw[i].type_name});
    return columns;
}

}  // namespace

SourceReader::SourceReader(const Model &model, const std::string &model_label)
    : model_(model), label_(model_label) {
    const SourceSpec &src = model.source;
    // Resolve the relation as the caller sees it (search_path, privileges apply later).
    const char *relation_text = src.relation.c_str();
    Oid relid = pg_call([&] {
        List *names = stringToQualifiedNameList(relation_text);
        return RangeVarGetRelid(makeRangeVarFromNameList(names), AccessShareLock, true);
    });
    if (relid == InvalidOid) {
        throw SqlError(ERRCODE_UNDEFINED_TABLE,
                       "relation \"" + src.relation + "\" read by " + label_ + " does not exist",
                       "The model records the relation it reads; create it, or a view of that name with the same columns.");
    }
    // Always schema-qualified, so that queries and messages do not depend on search_path.
    relation_ = pg_call([&] {
        return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), get_rel_name(relid));
    });
    relid_ = relid;

    // Column names and base types of the relation.
    const std::vector<ColumnInfo> columns = relation_columns(relid);
    auto find = [&](const std::string &name, const char *role) -> const ColumnInfo & {
        for (const auto &c : columns)
            if (c.name == name) return c;
        throw SqlError(ERRCODE_UNDEFINED_COLUMN,
                       "column \"" + name + "\" of relation " + relation_ + " does not exist",
                       "It is " + std::string(role) + " of " + label_ + ".",
                       "The model's feature spec must match the relation; see recsys.models.feature_spec.");
    };
    auto mismatch = [&](const ColumnInfo &c, const char *role, const char *expected) {
        throw SqlError(ERRCODE_DATATYPE_MISMATCH,
                       "column \"" + c.name + "\" of relation " + relation_ + " has type " + c.type_name +
                           ", but " + label_ + " reads it as " + role,
                       std::string("Expected ") + expected + ".");
    };

    const ColumnInfo &id = find(src.id_column, "the customer id");
    if (classify(id.type) != TypeClass::Numeric || id.type == FLOAT4OID || id.type == FLOAT8OID)
        mismatch(id, "the customer id", "an integer type");
    id_sql_ = sql::cast(quote_ident(id.name), "int8");
    const ColumnInfo &month = find(src.month_column, "the snapshot month");
    if (classify(month.type) != TypeClass::Date) mismatch(month, "the snapshot month", "date or timestamp");
    month_order_sql_ = quote_ident(month.name);
    // A timestamptz month is read in UTC, so that which month a snapshot belongs to does not
    // depend on the session's TimeZone.
    month_sql_ = month.type == TIMESTAMPTZOID
                     ? sql::cast(sql::call("timezone", "'UTC'::pg_catalog.text, " + month_order_sql_), "date")
                     : sql::cast(month_order_sql_, "date");

    select_list_ = month_sql_;
    for (const auto &f : model.features) {
        const ColumnInfo &c = find(f.column, f.kind == FeatureKind::Numeric ? "a numeric feature" : "a categorical feature");
        const TypeClass tc = classify(c.type);
        if (f.kind == FeatureKind::Numeric) {
            if (tc == TypeClass::Numeric) select_list_ += ", " + sql::cast(quote_ident(c.name), "float8");
            else if (tc == TypeClass::Boolean) select_list_ += ", " + sql::cast(sql::cast(quote_ident(c.name), "int4"), "float8");
            else mismatch(c, "a numeric feature", "a numeric or boolean type");
        } else {
            if (tc == TypeClass::Text || tc == TypeClass::Numeric || tc == TypeClass::Boolean)
                select_list_ += ", " + sql::cast(quote_ident(c.name), "text");
            else mismatch(c, "a categorical feature", "a text, integer or boolean type");
        }
    }
    for (const auto &p : model.products) {
        const ColumnInfo &c = find(p, "a product flag");
        const TypeClass tc = classify(c.type);
        if (tc == TypeClass::Numeric) select_list_ += ", " + sql::cast(quote_ident(c.name), "float8");
        else if (tc == TypeClass::Boolean) select_list_ += ", " + sql::cast(sql::cast(quote_ident(c.name), "int4"), "float8");
        else mismatch(c, "a product flag", "an integer or boolean type holding 0 or 1");
    }
    const size_t ncols = 2 + model.features.size() + model.products.size();
    values_.resize(ncols);
    nulls_.reset(new bool[ncols]);

    // The id column compared as itself (not cast), so that its index serves the lookup.
    const std::string one_sql = "SELECT " + select_list_ + " FROM " + relation_ + " WHERE " + quote_ident(id.name) +
                                sql::op("=") + "$1 ORDER BY " + month_order_sql_ + " DESC LIMIT " +
                                std::to_string(model.window_months + 1);
    // Months from $2 (a date, the first day of a month) on, compared as the column's own type.
    const std::string bound = month.type == DATEOID        ? std::string("$2")
                              : month.type == TIMESTAMPOID ? sql::cast("$2", "timestamp")
                              : month.type == TIMESTAMPTZOID
                                  ? sql::call("timezone", "'UTC'::pg_catalog.text, " + sql::cast("$2", "timestamp"))
                                  : std::string();
    const std::string month_from = bound.empty() ? month_sql_ + sql::op(">=") + "$2"
                                                 : month_order_sql_ + sql::op(">=") + bound;
    since_sql_ = "SELECT " + select_list_ + " FROM " + relation_ + " WHERE " + quote_ident(id.name) + sql::op("=") +
                 "$1 AND " + month_from + " ORDER BY " + month_order_sql_;
    const char *one_sql_text = one_sql.c_str();
    one_customer_plan_ = pg_call([&] {
        Oid argtypes[1] = {INT8OID};
        SPIPlanPtr plan = SPI_prepare(one_sql_text, 1, argtypes);
        if (plan == nullptr) elog(ERROR, "SPI_prepare failed for the history query: %s", SPI_result_code_string(SPI_result));
        SPI_keepplan(plan);
        return plan;
    });
}

SourceReader::~SourceReader() {
    // Freeing a saved plan cannot fail in practice; never let an error escape a destructor.
    for (SPIPlanPtr plan : {one_customer_plan_, one_customer_since_plan_}) {
        if (!plan) continue;
        try {
            pg_call([&] { SPI_freeplan(plan); });
        } catch (...) {
        }
    }
}

std::string SourceReader::months_between(int32_t first_month, int32_t end_month) const {
    return month_sql_ + sql::op(">=") + sql::month_start(first_month) + " AND " + month_sql_ + sql::op("<") +
           sql::month_start(end_month);
}

std::string SourceReader::batch_query(const std::string &where_clause) const {
    std::string sql = "SELECT " + id_sql_ + ", " + select_list_ + " FROM " + relation_;
    if (!where_clause.empty()) sql += " WHERE " + where_clause;
    sql += " ORDER BY 1, 2";
    return sql;
}

void SourceReader::append_row(HeapTuple tuple, TupleDesc desc, int first_column, int64_t customer_id,
                              HistoryBatch &out) {
    bool *nulls = nulls_.get();
    pg_call([&] { heap_deform_tuple(tuple, desc, values_.data(), nulls); });
    append_values(values_.data() + first_column, nulls + first_column, customer_id, out);
}

// v and n: the month, features and products of one row.
void SourceReader::append_values(const Datum *v, const bool *n, int64_t customer_id, HistoryBatch &out) {
    if (n[0])
        throw SqlError(ERRCODE_NULL_VALUE_NOT_ALLOWED,
                       "snapshot month is NULL for customer " + std::to_string(customer_id) + " in " + relation_);
    const int32_t month = month_of_date(DatumGetDateADT(v[0]));
    if (out.row_begin.back() > out.row_begin[out.row_begin.size() - 2] && out.month.back() >= month) {
        if (out.month.back() == month)
            throw SqlError(ERRCODE_CARDINALITY_VIOLATION,
                           "customer " + std::to_string(customer_id) + " has more than one row for month " +
                               month_label(month) + " in " + relation_,
                           "A model reads one snapshot per customer and month.");
        throw SqlError(ERRCODE_INTERNAL_ERROR, "history rows are not in month order");
    }
    float *vals;
    uint8_t *prods;
    out.add_row(month, &vals, &prods);
    auto where = [&](const std::string &column) {
        return "column \"" + column + "\" for customer " + std::to_string(customer_id) + " in month " +
               month_label(month) + " of " + relation_;
    };
    for (size_t i = 0; i < model_.features.size(); ++i) {
        const FeatureSpec &f = model_.features[i];
        const Datum d = v[1 + i];
        if (f.kind == FeatureKind::Numeric) {
            if (n[1 + i]) {
                vals[i] = NAN;  // missing: encoded as mean plus indicator
                continue;
            }
            const double x = DatumGetFloat8(d);
            if (!std::isfinite(x))
                throw SqlError(ERRCODE_DATA_EXCEPTION, "feature value is " + std::string(std::isnan(x) ? "NaN" : "infinite") + " in " + where(f.column),
                               "recsys treats NULL as missing; NaN and infinity are refused so that no score is silently wrong.",
                               "Replace the value with NULL or a real number in the source relation.");
            vals[i] = static_cast<float>(x);
        } else {
            if (n[1 + i]) {
                vals[i] = -1.0f;
                continue;
            }
            const char *data;
            int len;
            pg_call([&] {
                text *t = DatumGetTextPP(d);
                data = VARDATA_ANY(t);
                len = VARSIZE_ANY_EXHDR(t);
            });
            vals[i] = static_cast<float>(f.code_of(std::string_view(data, size_t(len))));
        }
    }
    const size_t base = 1 + model_.features.size();
    for (size_t p = 0; p < model_.products.size(); ++p) {
        if (n[base + p])
            throw SqlError(ERRCODE_NULL_VALUE_NOT_ALLOWED, "product flag is NULL in " + where(model_.products[p]),
                           "A NULL flag is ambiguous; recsys does not guess whether the product is held.",
                           "Clean the source relation, e.g. COALESCE(flag, 0) in a view.");
        const double x = DatumGetFloat8(v[base + p]);
        if (x != 0.0 && x != 1.0)
            throw SqlError(ERRCODE_DATA_EXCEPTION, "product flag is " + format_number(x) + " in " + where(model_.products[p]),
                           "Product flags must be 0 or 1.");
        prods[p] = x == 1.0 ? 1 : 0;
    }
}

// Runs a one-customer history plan and appends its rows to out as that customer's months, oldest
// first (the full-history query returns newest first; the since-a-month query oldest first).
bool SourceReader::read_one_customer(SPIPlanPtr plan, Datum *args, int64_t customer_id, bool newest_first,
                                     HistoryBatch &out) {
    const uint64_t rows = pg_call([&] {
        int rc = SPI_execute_plan(plan, args, nullptr, true, 0);
        if (rc != SPI_OK_SELECT) elog(ERROR, "history query failed: %s", SPI_result_code_string(rc));
        return SPI_processed;
    });
    if (rows == 0) return false;
    out.begin_customer(customer_id);
    SPITupleTable *table = SPI_tuptable;
    for (uint64_t n = 0; n < rows; ++n)
        append_row(table->vals[newest_first ? rows - 1 - n : n], table->tupdesc, 0, customer_id, out);
    pg_call([&] { SPI_freetuptable(table); });
    return true;
}

bool SourceReader::read_customer(int64_t customer_id, HistoryBatch &out) {
    out.reset(model_.features.size(), model_.products.size());
    Datum arg[1] = {Int64GetDatum(customer_id)};
    return read_one_customer(one_customer_plan_, arg, customer_id, true, out);
}

bool SourceReader::read_customer_since(int64_t customer_id, int32_t first_month, HistoryBatch &out) {
    out.reset(model_.features.size(), model_.products.size());
    if (!one_customer_since_plan_) {
        const char *query = since_sql_.c_str();
        one_customer_since_plan_ = pg_call([&] {
            Oid argtypes[2] = {INT8OID, DATEOID};
            // A generic plan: an (id, month) index range whatever the month. Left to choose, the
            // plan cache keeps planning each call afresh (the range's estimated selectivity makes
            // the generic plan look dearer than the custom ones), which cost more than the read.
            SPIPlanPtr plan = SPI_prepare_cursor(query, 2, argtypes, CURSOR_OPT_GENERIC_PLAN);
            if (plan == nullptr)
                elog(ERROR, "SPI_prepare failed for the history query: %s", SPI_result_code_string(SPI_result));
            SPI_keepplan(plan);
            return plan;
        });
    }
    const DateADT first_day = date2j(first_month / 12, first_month % 12 + 1, 1) - POSTGRES_EPOCH_JDATE;
    Datum arg[2] = {Int64GetDatum(customer_id), DateADTGetDatum(first_day)};
    return read_one_customer(one_customer_since_plan_, arg, customer_id, false, out);
}

void SourceReader::append_batch_slot(TupleTableSlot *slot, HistoryBatch &out) {
    // Deforming a virtual or buffer slot of plain columns cannot raise an error, but the slot
    // could in principle be of any kind, so the call goes through the guard.
    pg_call([&] { slot_getallattrs(slot); });
    if (slot->tts_isnull[0]) return;  // a snapshot without a customer id belongs to nobody
    const int64_t customer = DatumGetInt64(slot->tts_values[0]);
    if (out.customer_ids.empty() || out.customer_ids.back() != customer) out.begin_customer(customer);
    append_values(slot->tts_values + 1, slot->tts_isnull + 1, customer, out);
}

namespace {
void no_startup(DestReceiver *, int, TupleDesc) {}
void no_shutdown(DestReceiver *) {}
}  // namespace

BatchRowReceiver::BatchRowReceiver(SourceReader &reader) : reader_(reader) {
    dest_.pub.receiveSlot = &BatchRowReceiver::receive_slot;
    dest_.pub.rStartup = no_startup;
    dest_.pub.rShutdown = no_shutdown;
    dest_.pub.rDestroy = no_shutdown;  // owned by this object, never destroyed by the executor
    dest_.pub.mydest = DestNone;
    dest_.self = this;
}

// Called by the executor (C frames): no C++ exception may leave it. A rejected row is kept and
// the executor is told to stop (returning false ends ExecutePlan's loop), then fetch() rethrows.
bool BatchRowReceiver::receive_slot(TupleTableSlot *slot, DestReceiver *dest) {
    BatchRowReceiver *self = reinterpret_cast<Dest *>(dest)->self;
    try {
        self->reader_.append_batch_slot(slot, *self->out_);
        ++self->rows_;
        return true;
    } catch (...) {
        self->error_ = std::current_exception();
        return false;
    }
}

uint64_t BatchRowReceiver::fetch(Portal portal, long count, HistoryBatch &out) {
    out_ = &out;
    rows_ = 0;
    // PortalRunFetch is what SPI_cursor_fetch runs, with SPI's tuple-table receiver in place of this one.
    DestReceiver *dest = &dest_.pub;
    const uint64_t processed = pg_call([&] { return PortalRunFetch(portal, FETCH_FORWARD, count, dest); });
    if (error_) {
        std::exception_ptr error = error_;
        error_ = nullptr;
        std::rethrow_exception(error);
    }
    (void)processed;  // counts rows the executor produced, the rejected one included
    return rows_;
}

}  // namespace recsys::pg
