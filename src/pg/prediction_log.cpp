#include "prediction_log.h"

#include <string>

#include "guard.h"
#include "shadow_scoring.h"
#include "sql_values.h"

namespace recsys::pg {

namespace {

// Backend-local counts, shown by recsys.prediction_log_counters().
LogCounters log_counters;

// Saved once per backend (SPI_keepplan); schema-qualified, so the cached plan is immune to the
// caller's search_path and re-parsed safely if the extension is re-created. `at` and `id` take
// their defaults (the transaction's start, the sequence).
SPIPlanPtr insert_plan = nullptr;

constexpr const char *kInsertSql =
    "INSERT INTO recsys.prediction_log (model, version, customer_id, month, products, scores, entry_point) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7)";

void insert_row(const LoadedModel &m, int64_t customer_id, const std::vector<Ranked> &ranked, const char *entry_point) {
    // The history holds the customer's snapshots in ascending month order; the ranking predicts
    // the adds of the month after the latest one.
    const int32_t month = m.history.month.back() + 1;
    Datum values[7];
    values[0] = pg_call([&] { return CStringGetTextDatum(m.name.c_str()); });
    values[1] = Int32GetDatum(m.version);
    values[2] = Int64GetDatum(customer_id);
    values[3] = DateADTGetDatum(first_day_of_month(month));
    values[4] = ranked_names_array(m.model.products, ranked);
    values[5] = ranked_scores_array(ranked);
    values[6] = pg_call([&] { return CStringGetTextDatum(entry_point); });
    Oid types[7] = {TEXTOID, INT4OID, INT8OID, DATEOID, TEXTARRAYOID, FLOAT4ARRAYOID, TEXTOID};
    // The caller (a recsys_reader) has no right on the log: the row is written as the
    // registry's owner, through the fixed statement above.
    insert_as_registry_owner(&insert_plan, kInsertSql, 7, types, values, "prediction log insert");
}

}  // namespace

void log_prediction(const LoadedModel &m, int64_t customer_id, const std::vector<Ranked> &ranked,
                    const char *entry_point) {
    run_logged_write(
        log_counters, [&] { insert_row(m, customer_id, ranked, entry_point); },
        [&](const std::string &failure) {
            const std::string label = m.label();
            pg_call([&] {
                ereport(WARNING,
                        (errmsg("logging a prediction of %s failed: %s", label.c_str(), failure.c_str()),
                         errdetail("The call returned its result. Further logging failures in this session are only "
                                   "counted (recsys.prediction_log_counters())."),
                         errhint("recsys.log_sample_rate = 0 stops the prediction log.")));
            });
        });
}

}  // namespace recsys::pg

// recsys.prediction_log_counters() -> (sampled, logged, skipped_read_only, errors): this
// backend's prediction-log counts since it started.
RECSYS_FUNCTION(recsys_prediction_log_counters) {
    return recsys::pg::log_counters_datum(fcinfo, recsys::pg::log_counters, "recsys.prediction_log_counters");
}
