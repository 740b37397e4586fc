// recsys.generate_santander(): the synthetic Santander generator as a set-returning
// function, so demo and benchmark data are made inside the database with one INSERT.
#include <cmath>
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

}  // namespace

// recsys.generate_santander(customers, months, seed, first_customer, first_month)
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
