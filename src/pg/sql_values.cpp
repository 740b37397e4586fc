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

Datum real_array(const float *values, size_t n) {
    return pg_call([&] {
        Datum *elems = static_cast<Datum *>(palloc(sizeof(Datum) * (n + 1)));
        for (size_t i = 0; i < n; ++i) elems[i] = Float4GetDatum(values[i]);
        return PointerGetDatum(construct_array(elems, int(n), FLOAT4OID, 4, true, TYPALIGN_INT));
    });
}

Datum flag_array(const uint8_t *values, size_t n) {
    return pg_call([&] {
        Datum *elems = static_cast<Datum *>(palloc(sizeof(Datum) * (n + 1)));
        for (size_t i = 0; i < n; ++i) elems[i] = Int16GetDatum(values[i]);
        return PointerGetDatum(construct_array(elems, int(n), INT2OID, 2, true, TYPALIGN_SHORT));
    });
}

Datum bytea_datum(const std::vector<uint8_t> &bytes) {
    return pg_call([&] {
        bytea *result = static_cast<bytea *>(palloc(VARHDRSZ + bytes.size()));
        SET_VARSIZE(result, VARHDRSZ + bytes.size());
        memcpy(VARDATA(result), bytes.data(), bytes.size());
        return PointerGetDatum(result);
    });
}

namespace {

template <typename T, typename Convert>
std::vector<T> array_values(Datum array, Oid type, int16 length, bool by_value, char align, size_t expected,
                            const std::string &what, Convert convert) {
    std::vector<T> out;
    bool has_null = false;
    int n = 0;
    pg_call([&] {
        Datum *elems;
        bool *nulls;
        deconstruct_array(DatumGetArrayTypeP(array), type, length, by_value, align, &elems, &nulls, &n);
        out.reserve(size_t(n));
        for (int i = 0; i < n; ++i) {
            has_null |= nulls[i];
            out.push_back(convert(elems[i]));
        }
    });
    if (has_null || size_t(n) != expected)
        throw SqlError(ERRCODE_DATA_CORRUPTED,
                       what + " has " + std::to_string(n) + " elements" + (has_null ? " with NULLs" : "") + ", expected " +
                           std::to_string(expected));
    return out;
}

}  // namespace

std::vector<float> real_array_values(Datum array, size_t expected, const std::string &what) {
    return array_values<float>(array, FLOAT4OID, 4, true, TYPALIGN_INT, expected, what,
                               [](Datum d) { return DatumGetFloat4(d); });
}

std::vector<uint8_t> flag_array_values(Datum array, size_t expected, const std::string &what) {
    return array_values<uint8_t>(array, INT2OID, 2, true, TYPALIGN_SHORT, expected, what,
                                 [](Datum d) { return uint8_t(DatumGetInt16(d) != 0); });
}

}  // namespace recsys::pg
