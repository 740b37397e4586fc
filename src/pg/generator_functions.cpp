// recsys.generate_santander(): the synthetic Santander generator as a set-returning
// function, so demo and benchmark data are made inside the database with one INSERT.
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "guard.h"
#include "santander_schema.h"
#include "source_reader.h"
#include "synthetic_santander.h"

using namespace recsys;
using namespace recsys::pg;

namespace {

constexpr int kCustomerColumns = 18;
constexpr int kColumns = kCustomerColumns + 24;

Datum text_or_null(const char *s, bool *isnull) {
    *isnull = s == nullptr;
    return s ? CStringGetTextDatum(s) : (Datum)0;
}

Datum char_or_null(char c, bool *isnull) {
    char buf[2] = {c, 0};
    *isnull = c == 0;
    return c ? CStringGetTextDatum(buf) : (Datum)0;
}

Datum int_or_null(int32_t v, bool *isnull) {
    *isnull = v < 0;
    return Int32GetDatum(v);
}

// ---------------------------------------------------------------------------------------------
// The planted argument: a small JSON value read from jsonb into plain C++ values.

struct Json {
    enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
    double number = 0;
    std::string string;
    std::vector<std::pair<std::string, Json>> members;  // Object, in jsonb's key order
    std::vector<Json> elements;                          // Array

    const Json *member(const char *key) const {
        for (const auto &m : members)
            if (m.first == key) return &m.second;
        return nullptr;
    }
};

struct JsonToken {
    JsonbIteratorToken type;
    JsonbValue value;
    double number;  // jbvNumeric as double
};

// Every token of a jsonb value, nested containers expanded; each PostgreSQL call in pg_call.
std::vector<JsonToken> jsonb_tokens(Jsonb *jb) {
    std::vector<JsonToken> tokens;
    JsonbIterator *it = pg_call([&] { return JsonbIteratorInit(&jb->root); });
    for (;;) {
        JsonToken t{};
        t.type = pg_call([&] { return JsonbIteratorNext(&it, &t.value, false); });
        if (t.type == WJB_DONE) break;
        if ((t.type == WJB_VALUE || t.type == WJB_ELEM) && t.value.type == jbvNumeric)
            t.number = pg_call([&] {
                return DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(t.value.val.numeric)));
            });
        tokens.push_back(t);
    }
    return tokens;
}

Json scalar(const JsonToken &t) {
    Json j;
    switch (t.value.type) {
        case jbvString:
            j.kind = Json::String;
            j.string.assign(t.value.val.string.val, size_t(t.value.val.string.len));
            break;
        case jbvNumeric:
            j.kind = Json::Number;
            j.number = t.number;
            break;
        case jbvBool:
            j.kind = Json::Bool;
            j.number = t.value.val.boolean ? 1 : 0;
            break;
        default:
            j.kind = Json::Null;
            break;
    }
    return j;
}

// Builds the value that starts at tokens[i] (a BEGIN token or a scalar); advances i past it.
Json build_json(const std::vector<JsonToken> &tokens, size_t &i) {
    const JsonToken &t = tokens.at(i++);
    if (t.type == WJB_BEGIN_OBJECT) {
        Json j;
        j.kind = Json::Object;
        while (tokens.at(i).type == WJB_KEY) {
            std::string key(tokens[i].value.val.string.val, size_t(tokens[i].value.val.string.len));
            ++i;
            const JsonToken &v = tokens.at(i);
            j.members.emplace_back(std::move(key), v.type == WJB_VALUE ? (++i, scalar(v)) : build_json(tokens, i));
        }
        ++i;  // WJB_END_OBJECT
        return j;
    }
    if (t.type == WJB_BEGIN_ARRAY) {
        Json j;
        j.kind = Json::Array;
        while (tokens.at(i).type != WJB_END_ARRAY) {
            const JsonToken &e = tokens[i];
            j.elements.push_back(e.type == WJB_ELEM ? (++i, scalar(e)) : build_json(tokens, i));
        }
        ++i;
        return j;
    }
    return scalar(t);
}

[[noreturn]] void bad_planted(const std::string &message) {
    throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE, "planted: " + message,
                   "",
                   "Example: {\"from_month\": \"2015-06-28\", \"segment\": \"03 - UNIVERSITARIO\", "
                   "\"swap_products\": [\"ind_recibo_ult1\", \"ind_tjcr_fin_ult1\"], "
                   "\"uptake\": {\"product\": \"ind_recibo_ult1\", \"factor\": 2}, "
                   "\"shift\": {\"column\": \"renta\", \"factor\": 1.5}} (docs/generated-data.md).");
}

void only_keys(const Json &object, const char *what, std::initializer_list<const char *> keys) {
    for (const auto &m : object.members) {
        bool known = false;
        for (const char *k : keys) known = known || m.first == k;
        if (!known) {
            std::string list;
            for (const char *k : keys) list += std::string(list.empty() ? "" : ", ") + k;
            bad_planted("unknown key \"" + m.first + "\" in " + what + " (keys: " + list + ")");
        }
    }
}

const std::string &string_member(const Json &object, const char *key, const char *what) {
    const Json *v = object.member(key);
    if (!v || v->kind != Json::String) bad_planted(std::string(what) + " needs \"" + key + "\" as a string");
    return v->string;
}

double factor_member(const Json &object, const char *what) {
    const Json *v = object.member("factor");
    if (!v || v->kind != Json::Number) bad_planted(std::string(what) + " needs \"factor\" as a number");
    if (!(v->number > 0 && std::isfinite(v->number)) || v->number > 1e6)
        bad_planted(std::string(what) + " factor must be positive (at most 1e6)");
    return v->number;
}

int32_t product_member(const std::string &name) {
    const int32_t p = synthetic_product_index(name.c_str());
    if (p < 0) bad_planted("unknown product \"" + name + "\" (a product flag column such as ind_cco_fin_ult1)");
    return p;
}

PlantedChange parse_change(const Json &planted) {
    if (planted.kind != Json::Object) bad_planted("a change must be a JSON object");
    only_keys(planted, "planted", {"from_month", "segment", "swap_products", "uptake", "shift"});
    PlantedChange change;
    const std::string &from = string_member(planted, "from_month", "planted");
    change.from_month = month_of_date(pg_call([&] {
        return DatumGetDateADT(DirectFunctionCall1(date_in, CStringGetDatum(from.c_str())));
    }));
    if (const Json *segment = planted.member("segment"); segment && segment->kind != Json::Null) {
        if (segment->kind != Json::String) bad_planted("segment must be a string or null");
        change.segment = synthetic_segment_index(segment->string.c_str());
        if (change.segment < 0)
            bad_planted("unknown segment \"" + segment->string +
                        "\" (01 - TOP, 02 - PARTICULARES, 03 - UNIVERSITARIO, or null for every customer)");
    }
    if (const Json *swap = planted.member("swap_products")) {
        if (swap->kind != Json::Array || swap->elements.size() != 2 || swap->elements[0].kind != Json::String ||
            swap->elements[1].kind != Json::String)
            bad_planted("swap_products must be an array of two product names");
        change.swap_a = product_member(swap->elements[0].string);
        change.swap_b = product_member(swap->elements[1].string);
        if (change.swap_a == change.swap_b) bad_planted("swap_products must name two different products");
    }
    if (const Json *uptake = planted.member("uptake")) {
        if (uptake->kind != Json::Object) bad_planted("uptake must be an object {\"product\": ..., \"factor\": ...}");
        only_keys(*uptake, "uptake", {"product", "factor"});
        change.uptake_product = product_member(string_member(*uptake, "product", "uptake"));
        change.uptake_factor = factor_member(*uptake, "uptake");
    }
    if (const Json *shift = planted.member("shift")) {
        if (shift->kind != Json::Object) bad_planted("shift must be an object {\"column\": ..., \"factor\": ...}");
        only_keys(*shift, "shift", {"column", "factor"});
        const std::string &column = string_member(*shift, "column", "shift");
        if (column == "renta") change.shift_column = PlantedColumn::Renta;
        else if (column == "age") change.shift_column = PlantedColumn::Age;
        else if (column == "antiguedad") change.shift_column = PlantedColumn::Antiguedad;
        else bad_planted("shift column must be renta, age or antiguedad, not \"" + column + "\"");
        change.shift_factor = factor_member(*shift, "shift");
    }
    if (change.swap_a < 0 && change.uptake_product < 0 && change.shift_column == PlantedColumn::None)
        bad_planted("a change needs at least one of swap_products, uptake, shift");
    return change;
}

// One change (an object) or several (an array of objects, applied in order).
std::vector<PlantedChange> parse_planted(Jsonb *jb) {
    if (JB_ROOT_IS_SCALAR(jb)) bad_planted("must be a JSON object or an array of objects");
    const std::vector<JsonToken> tokens = jsonb_tokens(jb);
    size_t i = 0;
    const Json planted = build_json(tokens, i);
    std::vector<PlantedChange> changes;
    if (planted.kind == Json::Array) {
        if (planted.elements.empty()) bad_planted("an empty array plants nothing (pass NULL for the default data)");
        for (const Json &change : planted.elements) changes.push_back(parse_change(change));
    } else {
        changes.push_back(parse_change(planted));
    }
    return changes;
}

}  // namespace

// recsys.generate_santander(customers, months, seed, first_customer, first_month, planted)
RECSYS_FUNCTION(recsys_generate_santander) {
    pg_call([&] { InitMaterializedSRF(fcinfo, 0); });
    for (int i = 0; i < 5; ++i)
        if (PG_ARGISNULL(i)) return (Datum)0;
    const int64_t customers = PG_GETARG_INT64(0);
    const int32_t months = PG_GETARG_INT32(1);
    const int64_t seed = PG_GETARG_INT64(2);
    const int64_t first_customer = PG_GETARG_INT64(3);
    const DateADT first_date = PG_GETARG_DATEADT(4);
    if (customers < 0 || customers > 100000000)
        throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE, "customers must be between 0 and 100000000");
    if (months < 1 || months > 240) throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE, "months must be between 1 and 240");
    if (first_customer < 0) throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE, "first_customer must not be negative");

    SyntheticConfig config;
    config.seed = uint64_t(seed);
    config.months = months;
    config.first_month = month_of_date(first_date);
    // planted NULL (or a 0.2.0 call with five arguments): the default data.
    if (PG_NARGS() > 5 && !PG_ARGISNULL(5)) {
        Jsonb *planted = pg_call([&] { return PG_GETARG_JSONB_P(5); });
        config.planted = parse_planted(planted);
    }
    const SyntheticSantander generator(config);
    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    MemoryContext row_context = pg_call([] {
        return AllocSetContextCreate(CurrentMemoryContext, "recsys generator row", ALLOCSET_SMALL_SIZES);
    });
    std::vector<SyntheticRow> rows;
    for (int64_t c = first_customer; c < first_customer + customers; ++c) {
        generator.customer(c, rows);
        pg_call([&] {
            MemoryContext old = MemoryContextSwitchTo(row_context);
            Datum v[kColumns];
            bool n[kColumns] = {false};
            for (const SyntheticRow &r : rows) {
                v[0] = DateADTGetDatum(date_of_month(r.month));
                v[1] = Int64GetDatum(r.ncodpers);
                v[2] = char_or_null(r.ind_empleado, &n[2]);
                v[3] = text_or_null(r.pais_residencia, &n[3]);
                v[4] = char_or_null(r.sexo, &n[4]);
                v[5] = int_or_null(r.age, &n[5]);
                n[6] = r.fecha_alta_month < 0;
                v[6] = n[6] ? (Datum)0
                            : DateADTGetDatum(date2j(r.fecha_alta_month / 12, r.fecha_alta_month % 12 + 1,
                                                     r.fecha_alta_day > 0 ? r.fecha_alta_day : 1) -
                                              POSTGRES_EPOCH_JDATE);
                v[7] = int_or_null(r.ind_nuevo, &n[7]);
                v[8] = int_or_null(r.antiguedad, &n[8]);
                v[9] = int_or_null(r.indrel, &n[9]);
                v[10] = char_or_null(r.tiprel_1mes, &n[10]);
                v[11] = char_or_null(r.indresi, &n[11]);
                v[12] = char_or_null(r.indext, &n[12]);
                v[13] = text_or_null(r.canal_entrada, &n[13]);
                v[14] = int_or_null(r.cod_prov, &n[14]);
                v[15] = int_or_null(r.ind_actividad_cliente, &n[15]);
                n[16] = std::isnan(r.renta);
                v[16] = Float8GetDatum(n[16] ? 0.0 : r.renta);
                v[17] = text_or_null(r.segmento, &n[17]);
                for (int p = 0; p < 24; ++p) {
                    v[kCustomerColumns + p] = Int16GetDatum(r.products[p]);
                    n[kCustomerColumns + p] = false;
                }
                tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
            }
            MemoryContextSwitchTo(old);
            MemoryContextReset(row_context);
        });
        if ((c & 1023) == 0) check_for_interrupts();
    }
    return (Datum)0;
}
