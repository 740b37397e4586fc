#include "sql_values.h"

namespace recsys::pg {

std::string text_arg(FunctionCallInfo fcinfo, int n) {
    return pg_call([&] { return text_to_cstring(PG_GETARG_TEXT_PP(n)); });
}

int32_t version_arg(FunctionCallInfo fcinfo, int n) {
    if (PG_ARGISNULL(n)) return -1;
    const int32_t v = PG_GETARG_INT32(n);
    if (v <= 0)
        throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE, "model version must be a positive integer, not " + std::to_string(v),
                       "", "Pass version => NULL to use the production version.");
    return v;
}

void check_k(int32_t k, const LoadedModel *m) {
    if (k < 1) throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE, "k must be at least 1, not " + std::to_string(k));
    if (m && uint32_t(k) > m->model.product_count())
        throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE,
                       "k is " + std::to_string(k) + ", but model \"" + m->name + "\" ranks only " +
                           std::to_string(m->model.product_count()) + " products",
                       "", "Ask for at most " + std::to_string(m->model.product_count()) + " products.");
}

void check_model_name(const std::string &name) {
    bool ok = !name.empty() && name.size() <= 63;
    // ASCII ranges, as the registry's CHECK (^[A-Za-z0-9_.-]{1,63}$): isalnum() would follow the
    // server's LC_CTYPE and could pass a byte the registry refuses after training.
    for (char c : name)
        ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
                    c == '-');
    if (!ok)
        throw SqlError(ERRCODE_INVALID_NAME, "invalid model name \"" + name + "\"",
                       "A model name is 1 to 63 letters, digits, \"_\", \".\" or \"-\".");
}

void check_start_month(int32_t month) {
    if (month < kMinStartMonth || month > kMaxStartMonth)
        throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE, "start_month " + month_label(month) +
                                                            " is outside the supported range " +
                                                            month_label(kMinStartMonth) + " to " +
                                                            month_label(kMaxStartMonth));
}

void check_range(const char *what, double value, double lo, double hi) {
    if (!(value >= lo && value <= hi)) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s must be between %.10g and %.10g, not %.10g", what, lo, hi, value);
        throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE, buf);
    }
}

void spi_connect() {
    pg_call([] {
        if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    });
}

void spi_finish() { pg_call([] { SPI_finish(); }); }

Datum ranked_names_array(const std::vector<std::string> &names, const std::vector<Ranked> &ranked) {
    return pg_call([&] {
        Datum *elems = static_cast<Datum *>(palloc(sizeof(Datum) * (ranked.size() + 1)));
        for (size_t i = 0; i < ranked.size(); ++i) elems[i] = CStringGetTextDatum(names[ranked[i].product].c_str());
        return PointerGetDatum(construct_array(elems, int(ranked.size()), TEXTOID, -1, false, TYPALIGN_INT));
    });
}

namespace {

// A one-dimensional array without NULLs of a fixed-width, by-value element type, built
// with one copy (construct_array would box every element in a Datum first).
template <typename T>
Datum flat_array(const T *values, size_t n, Oid element_type) {
    return pg_call([&] {
        // PostgreSQL's one representation of an empty array has no dimensions.
        if (n == 0) return PointerGetDatum(construct_empty_array(element_type));
        const size_t bytes = ARR_OVERHEAD_NONULLS(1) + n * sizeof(T);
        ArrayType *a = static_cast<ArrayType *>(palloc0(bytes));
        SET_VARSIZE(a, bytes);
        a->ndim = 1;
        a->dataoffset = 0;
        a->elemtype = element_type;
        *ARR_DIMS(a) = int(n);
        *ARR_LBOUND(a) = 1;
        memcpy(ARR_DATA_PTR(a), values, n * sizeof(T));
        return PointerGetDatum(a);
    });
}

// The elements of a one-dimensional array without NULLs, copied out in one go.
template <typename T>
std::vector<T> flat_array_values(Datum array, Oid element_type, size_t expected, const std::string &what) {
    std::vector<T> out;
    int n = 0, ndim = 0;
    bool has_null = false, right_type = true;
    pg_call([&] {
        ArrayType *a = DatumGetArrayTypeP(array);
        ndim = ARR_NDIM(a);
        n = ndim == 0 ? 0 : ArrayGetNItems(ndim, ARR_DIMS(a));
        has_null = ARR_HASNULL(a);
        right_type = ARR_ELEMTYPE(a) == element_type;
        if (ndim <= 1 && !has_null && right_type && size_t(n) == expected) {
            const T *data = reinterpret_cast<const T *>(ARR_DATA_PTR(a));
            out.assign(data, data + n);
        }
    });
    if (ndim > 1 || has_null || !right_type || size_t(n) != expected)
        throw SqlError(ERRCODE_DATA_CORRUPTED,
                       what + " has " + std::to_string(n) + " elements" + (has_null ? " with NULLs" : "") +
                           (ndim > 1 ? " in several dimensions" : "") + ", expected " + std::to_string(expected));
    return out;
}

}  // namespace

Datum real_array(const float *values, size_t n) { return flat_array<float>(values, n, FLOAT4OID); }

Datum flag_array(const uint8_t *values, size_t n) {
    std::vector<int16_t> wide(values, values + n);
    return flat_array<int16_t>(wide.data(), n, INT2OID);
}

Datum bytea_datum(const std::vector<uint8_t> &bytes) {
    return pg_call([&] {
        bytea *result = static_cast<bytea *>(palloc(VARHDRSZ + bytes.size()));
        SET_VARSIZE(result, VARHDRSZ + bytes.size());
        memcpy(VARDATA(result), bytes.data(), bytes.size());
        return PointerGetDatum(result);
    });
}

std::vector<float> real_array_values(Datum array, size_t expected, const std::string &what) {
    return flat_array_values<float>(array, FLOAT4OID, expected, what);
}

std::vector<uint8_t> flag_array_values(Datum array, size_t expected, const std::string &what) {
    const std::vector<int16_t> wide = flat_array_values<int16_t>(array, INT2OID, expected, what);
    std::vector<uint8_t> out(wide.size());
    for (size_t i = 0; i < wide.size(); ++i) out[i] = wide[i] != 0;
    return out;
}

}  // namespace recsys::pg
