// A batch of rows for one of recsys's tables as one SQL value: an array of the table's row
// type, which a prepared INSERT ... SELECT ... FROM pg_catalog.unnest($1) writes in one
// execution of its plan.
//
// Why rows and not one array per column: a customer's state (a real[] of 256 floats) or its
// ranked products would otherwise be sliced out of a column-wide array by the statement, and
// PostgreSQL slices an array one element at a time (array_get_slice), which cost a seventh
// of advance_month. unnest of a row array hands each row's arrays over as they are.
//
// The row type is looked up by schema and table name, and each column the writer sets is
// checked to exist with the type its values have, so a table altered under the extension
// fails with an error instead of having its values misread. Columns the writer does not set
// are NULL in the array; the INSERT names only the columns it sets, so they get their defaults.
#pragma once

#include <memory>
#include <vector>

#include "guard.h"

namespace recsys::pg {

class TableRowArray {
public:
    struct Column {
        const char *name;
        Oid type;
    };

    // schema.table's row type; columns: the columns each row sets, in the order add() takes
    // their values. Resolved in the current memory context, which must outlive this object.
    TableRowArray(const char *schema, const char *table, std::vector<Column> columns);

    // The SQL type of take()'s value (the row type's array type), for SPI_prepare.
    Oid array_type() const { return array_type_; }

    // One row; values[i] is the value of columns[i], never NULL. The row is formed (its
    // values copied) in the current memory context.
    void add(const Datum *values);
    size_t size() const { return rows_.size(); }

    // The array of the rows added since the last take(), in the current memory context; the
    // formed rows are freed.
    Datum take();

private:
    Oid row_type_ = InvalidOid, array_type_ = InvalidOid;
    int16 row_len_ = 0;
    bool row_byval_ = false;
    char row_align_ = 'd';
    TupleDesc desc_ = nullptr;
    std::vector<int> attribute_;  // columns[i] is attribute attribute_[i] (0-based) of desc_
    std::vector<Datum> values_;   // one row, every attribute of desc_
    std::unique_ptr<bool[]> nulls_;
    std::vector<HeapTuple> rows_;
};

}  // namespace recsys::pg
