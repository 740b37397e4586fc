#include "stored_state_reader.h"

#include <cmath>
#include <cstring>

#include "guard.h"

namespace recsys::pg {

namespace {

// The lookup, prepared once per backend (the plan cache replans it after DDL on the table).
SPIPlanPtr state_plan = nullptr;

constexpr const char *kStateQuery =
    "SELECT s.model_version, s.state_month, s.state, s.products FROM recsys.customer_states s "
    "WHERE s.model_name OPERATOR(pg_catalog.=) $1 AND s.customer_id OPERATOR(pg_catalog.=) $2";

// Whether the current user may SELECT what kStateQuery reads (table or every column).
bool caller_may_read_states() {
    return pg_call([] {
        const Oid nsp = get_namespace_oid("recsys", true);
        const Oid rel = OidIsValid(nsp) ? get_relname_relid("customer_states", nsp) : InvalidOid;
        if (!OidIsValid(rel)) return false;
        const Oid user = GetUserId();
        return pg_class_aclcheck(rel, user, ACL_SELECT) == ACLCHECK_OK ||
               pg_attribute_aclcheck_all(rel, user, ACL_SELECT, ACLMASK_ALL) == ACLCHECK_OK;
    });
}

// A one-dimensional array of exactly `count` non-null elements, copied out; false otherwise.
// Called inside pg_call (detoasting may raise).
template <typename T>
bool flat_array(Datum d, Oid element_type, size_t count, T *out) {
    ArrayType *a = DatumGetArrayTypeP(d);
    if (ARR_ELEMTYPE(a) != element_type || ARR_NDIM(a) != 1 || ARR_HASNULL(a) ||
        size_t(ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a))) != count)
        return false;
    std::memcpy(out, ARR_DATA_PTR(a), count * sizeof(T));
    return true;
}

}  // namespace

StateMiss read_stored_state(const LoadedModel &m, int64_t customer, StoredState *out) {
    if (!caller_may_read_states()) return StateMiss::NotPermitted;
    if (!state_plan) {
        state_plan = pg_call([] {
            Oid types[2] = {TEXTOID, INT8OID};
            // A primary-key probe: one generic plan, never replanned per call.
            SPIPlanPtr plan = SPI_prepare_cursor(kStateQuery, 2, types, CURSOR_OPT_GENERIC_PLAN);
            if (plan == nullptr)
                elog(ERROR, "SPI_prepare failed for the stored state query: %s", SPI_result_code_string(SPI_result));
            SPI_keepplan(plan);
            return plan;
        });
    }
    const size_t SS = m.model.state_size(), P = m.model.product_count();
    out->state.resize(SS);
    std::vector<int16_t> products(P);
    const char *name = m.name.c_str();
    int32_t version = 0;
    DateADT month = 0;
    bool shape_ok = false;
    const uint64_t rows = pg_call([&] {
        Datum args[2] = {CStringGetTextDatum(name), Int64GetDatum(customer)};
        const int rc = SPI_execute_plan(state_plan, args, nullptr, true, 1);
        if (rc != SPI_OK_SELECT) elog(ERROR, "reading the stored state failed: %s", SPI_result_code_string(rc));
        if (SPI_processed == 1) {
            HeapTuple tuple = SPI_tuptable->vals[0];
            TupleDesc desc = SPI_tuptable->tupdesc;
            bool null[4];
            Datum v[4];
            for (int i = 0; i < 4; ++i) v[i] = SPI_getbinval(tuple, desc, i + 1, &null[i]);
            if (!null[0] && !null[1] && !null[2] && !null[3]) {
                version = DatumGetInt32(v[0]);
                month = DatumGetDateADT(v[1]);
                shape_ok = !DATE_NOT_FINITE(month) && flat_array(v[2], FLOAT4OID, SS, out->state.data()) &&
                           flat_array(v[3], INT2OID, P, products.data());
            }
        }
        const uint64_t n = SPI_processed;
        SPI_freetuptable(SPI_tuptable);
        return n;
    });
    if (rows == 0) return StateMiss::NoRow;
    if (version != m.version) return StateMiss::OtherVersion;
    if (!shape_ok) return StateMiss::BadShape;
    for (float x : out->state)
        if (!std::isfinite(x)) return StateMiss::BadShape;
    out->month = month_of_date(month);
    out->products.resize(P);
    for (size_t p = 0; p < P; ++p) out->products[p] = products[p] != 0;
    return StateMiss::None;
}

}  // namespace recsys::pg
