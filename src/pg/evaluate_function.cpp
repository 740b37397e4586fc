// recsys.evaluate(): MAP@7 and friends of a registered model on one month, next to two
// baselines (global and per-segment popularity of adds), computed by the same metric code.
#include "evaluate_function.h"

#include <string>

#include "guard.h"
#include "memory_budget.h"
#include "model_cache.h"
#include "month_evaluation.h"
#include "spi_customer_source.h"
#include "sql_text.h"
#include "sql_values.h"

using namespace recsys;
using namespace recsys::pg;

namespace recsys::pg {

int32_t resolve_evaluation_month(const SourceReader &reader, int32_t requested) {
    const std::string range_sql = "SELECT " + sql::call("min", reader.month_sql()) + ", " +
                                  sql::call("max", reader.month_sql()) + " FROM " + reader.relation_name();
    bool empty = false;
    DateADT lo = 0, hi = 0;
    pg_call([&] {
        if (SPI_execute(range_sql.c_str(), true, 1) != SPI_OK_SELECT) elog(ERROR, "month range query failed");
        bool n1, n2;
        Datum d1 = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &n1);
        Datum d2 = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &n2);
        empty = n1 || n2;
        if (!empty) {
            lo = DatumGetDateADT(d1);
            hi = DatumGetDateADT(d2);
        }
    });
    if (empty)
        throw SqlError(ERRCODE_NO_DATA_FOUND, "relation " + reader.relation_name() + " has no snapshots to evaluate on");
    const int32_t first_month = month_of_date(lo), last_month = month_of_date(hi);
    const int32_t month = requested < 0 ? last_month : requested;
    if (month - 1 < first_month || month > last_month)
        throw SqlError(ERRCODE_NO_DATA_FOUND,
                       "cannot evaluate on " + month_label(month) + ": " + reader.relation_name() + " has months " +
                           month_label(first_month) + " to " + month_label(last_month),
                       "Evaluation needs snapshots of the month and of the month before it.");
    return month;
}

}  // namespace recsys::pg


// recsys.evaluate(model_name, version, month) -> TABLE(method, map7, map7_adders, precision7,
// recall7, coverage, customers, adders)
RECSYS_FUNCTION(recsys_evaluate) {
    pg_call([&] { InitMaterializedSRF(fcinfo, 0); });
    if (PG_ARGISNULL(0)) throw SqlError(ERRCODE_NULL_VALUE_NOT_ALLOWED, "model_name must not be NULL");
    const std::string name = text_arg(fcinfo, 0);
    const bool has_version = !PG_ARGISNULL(1);
    const int32_t requested_version = has_version ? PG_GETARG_INT32(1) : 0;
    if (has_version && requested_version <= 0)
        throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE,
                       "model version must be a positive integer, not " + std::to_string(requested_version));
    const bool has_month = !PG_ARGISNULL(2);
    const int32_t requested_month = has_month ? month_of_date(PG_GETARG_DATEADT(2)) : -1;

    spi_connect();
    // NULL version: the production version, else the latest one.
    int32_t version = requested_version;
    if (!has_version) {
        bool found = false;
        version = pg_call([&] {
            Oid types[1] = {TEXTOID};
            Datum args[1] = {CStringGetTextDatum(name.c_str())};
            if (SPI_execute_with_args("SELECT version FROM recsys.models WHERE name OPERATOR(pg_catalog.=) $1 "
                                      "ORDER BY status OPERATOR(pg_catalog.=) 'production' DESC, version DESC LIMIT 1",
                                      1, types, args, nullptr, true, 1) != SPI_OK_SELECT)
                elog(ERROR, "model lookup failed");
            int32 v = 0;
            if (SPI_processed > 0) {
                bool isnull;
                v = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
                found = true;
            }
            return v;
        });
        if (!found)
            throw SqlError(ERRCODE_UNDEFINED_OBJECT, "model \"" + name + "\" does not exist",
                           "", "Train one with recsys.train() or register one with recsys.register_model().");
    }
    std::shared_ptr<LoadedModel> m = acquire_model(name, version);

    const int32_t month = resolve_evaluation_month(*m->reader, requested_month);

    const size_t batch_size = plan_batch("recsys.evaluate", model_label(name, version),
                                         m->model, evaluation_bytes(m->model), SIZE_MAX);
    EvaluationOptions options;
    options.batch_size = batch_size;
    options.baselines = true;
    options.poll = interrupt_poll();
    SpiCustomerSource source(*m->reader, m->model);
    const MonthEvaluation ev = evaluate_month(m->model, *m->encoder, source, month, options);
    if (ev.lstm.customers() == 0)
        throw SqlError(ERRCODE_NO_DATA_FOUND, "no customer has snapshots in both " + month_label(month - 1) + " and " +
                                                  month_label(month) + " in " + m->reader->relation_name());

    // Pure: recording the result is recsys.evaluate_and_record()'s explicit step.
    spi_finish();

    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    const char *methods[3] = {"lstm", "popularity", "segment_popularity"};
    const RankingMetrics *metrics[3] = {&ev.lstm, &ev.popularity, &ev.segment_popularity};
    for (int i = 0; i < 3; ++i) {
        const RankingMetrics &r = *metrics[i];
        const char *method = methods[i];
        pg_call([&] {
            Datum values[10] = {CStringGetTextDatum(method), Float8GetDatum(r.map()), Float8GetDatum(r.map_adders()),
                                Float8GetDatum(r.precision()), Float8GetDatum(r.recall()), Float8GetDatum(r.coverage()),
                                Int64GetDatum(int64(r.customers())), Int64GetDatum(int64(r.adders())),
                                Int32GetDatum(version), DateADTGetDatum(date_of_month(month))};
            bool nulls[10] = {false, false, false, false, false, false, false, false, false, false};
            tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
        });
    }
    return (Datum)0;
}
