// Rows of a recsys table as one array of its row type (table_row_array.h).
#include "table_row_array.h"

#include <string>

namespace recsys::pg {

TableRowArray::TableRowArray(const char *schema, const char *table, std::vector<Column> columns) {
    std::string problem;  // set inside pg_call, raised after it: no throw inside PG_TRY
    pg_call([&] {
        const Oid relation = get_relname_relid(table, get_namespace_oid(schema, false));
        if (!OidIsValid(relation)) {
            problem = std::string("relation ") + schema + "." + table + " does not exist";
            return;
        }
        row_type_ = get_rel_type_id(relation);
        array_type_ = get_array_type(row_type_);
        if (!OidIsValid(row_type_) || !OidIsValid(array_type_)) {
            problem = std::string("relation ") + schema + "." + table + " has no row type";
            return;
        }
        get_typlenbyvalalign(row_type_, &row_len_, &row_byval_, &row_align_);
        desc_ = lookup_rowtype_tupdesc_copy(row_type_, -1);
    });
    if (!problem.empty()) throw SqlError(ERRCODE_UNDEFINED_TABLE, problem);
    for (const Column &c : columns) {
        int found = -1;
        for (int a = 0; a < desc_->natts && found < 0; ++a) {
            const Form_pg_attribute attr = TupleDescAttr(desc_, a);
            if (!attr->attisdropped && std::string(NameStr(attr->attname)) == c.name) found = a;
        }
        if (found < 0)
            throw SqlError(ERRCODE_UNDEFINED_COLUMN, std::string("column \"") + c.name + "\" of relation " + schema +
                                                         "." + table + " does not exist");
        const Oid actual = TupleDescAttr(desc_, found)->atttypid;
        if (actual != c.type) {
            std::string has, wants;
            pg_call([&] {
                has = format_type_be(actual);
                wants = format_type_be(c.type);
            });
            throw SqlError(ERRCODE_DATATYPE_MISMATCH,
                           std::string("column \"") + c.name + "\" of relation " + schema + "." + table + " has type " +
                               has + ", but recsys writes " + wants + " to it",
                           "", "The table was altered after the extension created it; restore the column's type.");
        }
        attribute_.push_back(found);
    }
    values_.assign(size_t(desc_->natts), Datum(0));
    nulls_.reset(new bool[size_t(desc_->natts)]);
}

void TableRowArray::add(const Datum *values) {
    for (int a = 0; a < desc_->natts; ++a) nulls_[size_t(a)] = true;
    for (size_t i = 0; i < attribute_.size(); ++i) {
        values_[size_t(attribute_[i])] = values[i];
        nulls_[size_t(attribute_[i])] = false;
    }
    rows_.reserve(rows_.size() + 1);  // room first: the push_back below cannot throw
    rows_.push_back(pg_call([&] { return heap_form_tuple(desc_, values_.data(), nulls_.get()); }));
}

Datum TableRowArray::take() {
    const int n = int(rows_.size());
    std::vector<Datum> elements(rows_.size());
    Datum array = pg_call([&] {
        for (int i = 0; i < n; ++i) elements[size_t(i)] = HeapTupleGetDatum(rows_[size_t(i)]);
        ArrayType *a = construct_array(elements.data(), n, row_type_, row_len_, row_byval_, row_align_);
        for (int i = 0; i < n; ++i) heap_freetuple(rows_[size_t(i)]);
        return PointerGetDatum(a);
    });
    rows_.clear();
    return array;
}

}  // namespace recsys::pg
