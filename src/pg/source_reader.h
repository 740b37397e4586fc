// Reads a model's source relation (any table or view with one row per customer and month)
// into a HistoryBatch: checks once that every column the model needs exists with a usable
// type, builds the SELECT, and converts rows, refusing NaN, infinite or malformed values.
#pragma once

#include <cstdint>
#include <exception>
#include <string>
#include <memory>
#include <vector>

#include "postgres_headers.h"

#include "history.h"
#include "model.h"

namespace recsys::pg {

class SourceReader {
public:
    // Checks the relation and its columns (needs SPI). model_label names the model in errors.
    SourceReader(const Model &model, const std::string &model_label);
    ~SourceReader();

    // The snapshots of one customer, at most window + 1 of them (the extra month gives the
    // first window month its "added" flags), ascending. Returns false when there are none.
    bool read_customer(int64_t customer_id, HistoryBatch &out);
    // The snapshots of one customer from first_month on (whole calendar months), all of
    // them, ascending: the online path's read after a stored state (first_month = the
    // state's month) and a from-start model's whole history (the month before its start).
    // The bound is on the month column itself, so the (id, month) index serves it. Returns
    // false when there are none.
    bool read_customer_since(int64_t customer_id, int32_t first_month, HistoryBatch &out);

    // "SELECT id, month, features..., products... FROM relation" for batch reads, with the
    // given WHERE clause (may be empty) and ORDER BY id, month.
    std::string batch_query(const std::string &where_clause) const;
    const std::string &relation_name() const { return relation_; }
    Oid relation_id() const { return relid_; }
    // The customer id as pg_catalog.int8 and the snapshot month as pg_catalog.date (a
    // timestamptz month read in UTC), schema-qualified SQL expressions.
    const std::string &id_sql() const { return id_sql_; }
    const std::string &month_sql() const { return month_sql_; }
    // "month in [first day of first_month, first day of end_month)": whole calendar months,
    // whatever day of the month the snapshots are dated.
    std::string months_between(int32_t first_month, int32_t end_month) const;

    // Appends one row produced by batch_query() to `out`, starting a new customer whenever
    // the id changes. Columns: id, month, features, products. The executor's slot is read in
    // place (slot_getallattrs): no heap tuple is formed or copied for a batch row.
    void append_batch_slot(TupleTableSlot *slot, HistoryBatch &out);

private:
    bool read_one_customer(SPIPlanPtr plan, Datum *args, int64_t customer_id, bool newest_first, HistoryBatch &out);
    void append_row(HeapTuple tuple, TupleDesc desc, int first_column, int64_t customer_id, HistoryBatch &out);
    void append_values(const Datum *values, const bool *nulls, int64_t customer_id, HistoryBatch &out);

    const Model &model_;
    std::string label_;
    std::string relation_;  // quoted, qualified
    Oid relid_ = InvalidOid;
    std::string id_sql_, month_sql_, month_order_sql_;
    std::string select_list_;  // month, features, products
    SPIPlanPtr one_customer_plan_ = nullptr;
    std::string since_sql_;                   // read_customer_since's query, prepared on first use
    SPIPlanPtr one_customer_since_plan_ = nullptr;
    std::vector<Datum> values_;
    std::unique_ptr<bool[]> nulls_;
};

// Reads a batch_query() cursor straight into a HistoryBatch: the portal runs with this
// DestReceiver, which appends each row from the executor's slot, where SPI_cursor_fetch would
// copy every row into a heap tuple of an SPI tuple table first (about a tenth of a refresh).
class BatchRowReceiver {
public:
    explicit BatchRowReceiver(SourceReader &reader);
    // Fetches up to `count` rows of the portal into `out`; returns how many it read. A row the
    // reader rejects stops the portal and its error is rethrown here.
    uint64_t fetch(Portal portal, long count, HistoryBatch &out);

private:
    struct Dest {
        DestReceiver pub;  // first, so that a DestReceiver * is a Dest *
        BatchRowReceiver *self;
    };
    static bool receive_slot(TupleTableSlot *slot, DestReceiver *dest);
    Dest dest_;
    SourceReader &reader_;
    HistoryBatch *out_ = nullptr;
    uint64_t rows_ = 0;
    std::exception_ptr error_;
};

// A quoted SQL identifier.
std::string quote_ident(const std::string &name);

// Month index (year * 12 + month - 1) of a date, and back to the 28th of that month
// (the snapshot day of the Santander data).
int32_t month_of_date(DateADT date);
DateADT date_of_month(int32_t month);
std::string month_label(int32_t month);  // "2016-05"

}  // namespace recsys::pg
