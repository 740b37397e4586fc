// recsys.train(): trains the default Santander LSTM inside the backend and registers it.
//
// This file is the glue: argument checks, the months present and a fingerprint of the data,
// the data check of the validation month (recsys.require_valid_data), feature statistics,
// memory planning, and registration. The training itself (epochs, mini-batch Adam, the no-add
// subsampling, early stopping) is the core's train_model() (src/core/training_loop.h), fed by
// the relation through an SpiCustomerSource.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "feature_fitting.h"
#include "lstm_training.h"
#include "memory_budget.h"
#include "model_format.h"
#include "model_json.h"
#include "month_evaluation.h"
#include "santander_features.h"
#include "spi_customer_source.h"
#include "sql_text.h"
#include "sql_values.h"
#include "training_loop.h"

using namespace recsys;
using namespace recsys::pg;

namespace {

void notice(const std::string &message) {
    pg_call([&] { ereport(NOTICE, (errmsg("%s", message.c_str()))); });
}

void report_activity(const std::string &text) {
    pg_call([&] { pgstat_report_activity(STATE_RUNNING, text.c_str()); });
}

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Runs recsys.require_valid_data() on the validation month (it stores the check and raises an
// error naming the first failing check, unless a member of recsys_override gives a reason);
// returns the id of the stored check.
int64_t require_valid_data(Oid relation, int32_t month, const std::string *override_reason, const SourceSpec &source) {
    const char *reason = override_reason ? override_reason->c_str() : nullptr;
    const char *id_column = source.id_column.c_str(), *month_column = source.month_column.c_str();
    return pg_call([&] {
        Oid types[5] = {OIDOID, DATEOID, TEXTOID, TEXTOID, TEXTOID};
        Datum args[5] = {ObjectIdGetDatum(relation), DateADTGetDatum(date_of_month(month)),
                         reason ? CStringGetTextDatum(reason) : (Datum)0, CStringGetTextDatum(id_column),
                         CStringGetTextDatum(month_column)};
        const char nulls[6] = {' ', ' ', reason ? ' ' : 'n', ' ', ' ', '\0'};
        if (SPI_execute_with_args("SELECT recsys.require_valid_data($1::pg_catalog.regclass, $2::pg_catalog.date, "
                                  "NULL::pg_catalog.text, NULL::pg_catalog.int4, $3, $4, $5)",
                                  5, types, args, nulls, false, 1) != SPI_OK_SELECT ||
            SPI_processed != 1)
            elog(ERROR, "the data check of the training data failed to run");
        bool isnull;
        const Datum id = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
        if (isnull) elog(ERROR, "recsys.require_valid_data returned NULL");
        return int64(DatumGetInt64(id));
    });
}

// Records the reference distribution of every feature and product over the training months
// with recsys.record_feature_reference() (sql/0.3.0/84_drift.sql), beside the new version:
// recsys.feature_drift() and recsys.training_serving_skew() compare later months with it.
void record_feature_reference(const std::string &name, int32_t version, int32_t first_month, int32_t last_month) {
    const char *model_name = name.c_str();
    pg_call([&] {
        // A library newer than the installed SQL (before ALTER EXTENSION recsys UPDATE) has no
        // such function to call.
        if (SPI_execute("SELECT pg_catalog.to_regprocedure('recsys.record_feature_reference(pg_catalog.text, "
                        "pg_catalog.int4, pg_catalog.date, pg_catalog.date)') IS NOT NULL",
                        true, 1) != SPI_OK_SELECT)
            elog(ERROR, "feature reference lookup failed");
        bool isnull;
        if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull))) return;
        Oid types[4] = {TEXTOID, INT4OID, DATEOID, DATEOID};
        Datum args[4] = {CStringGetTextDatum(model_name), Int32GetDatum(version),
                         DateADTGetDatum(date_of_month(first_month)), DateADTGetDatum(date_of_month(last_month))};
        if (SPI_execute_with_args("SELECT recsys.record_feature_reference($1, $2, $3, $4)", 4, types, args, nullptr,
                                  false, 1) != SPI_OK_SELECT)
            elog(ERROR, "recording the feature reference failed");
    });
}

}  // namespace

// recsys.train(model_name, source, train_months, validation_month, window_months, hidden,
// layers, epochs, batch_size, learning_rate, clip_norm, patience, seed, max_customers,
// start_month, id_column, month_column, data_override_reason) -> integer: the registered
// version. The last three arguments are 0.3.0's: declared with 0.2.0's 15 arguments (the
// library installed before ALTER EXTENSION recsys UPDATE) it reads ncodpers and fecha_dato and
// has no data check to run.
RECSYS_FUNCTION(recsys_train) {
    const Clock::time_point started = Clock::now();
    const int nargs = PG_NARGS();
    const bool has_data_check = nargs >= 18;
    for (int i = 0; i < std::min(nargs, 17); ++i)
        if (i != 3 && i != 13 && i != 14 && PG_ARGISNULL(i))
            throw SqlError(ERRCODE_NULL_VALUE_NOT_ALLOWED,
                           "only validation_month, max_customers, start_month and data_override_reason may be NULL");
    const bool from_start = !PG_ARGISNULL(14);
    const int32_t start_month = from_start ? month_of_date(PG_GETARG_DATEADT(14)) : 0;
    const std::string name = text_arg(fcinfo, 0), source = text_arg(fcinfo, 1);
    const int32_t train_months = PG_GETARG_INT32(2);
    const bool has_validation = !PG_ARGISNULL(3);
    const int32_t requested_validation = has_validation ? month_of_date(PG_GETARG_DATEADT(3)) : -1;
    const int32_t window = PG_GETARG_INT32(4), hidden = PG_GETARG_INT32(5), layers = PG_GETARG_INT32(6);
    const int32_t epochs = PG_GETARG_INT32(7), batch_size = PG_GETARG_INT32(8);
    const float learning_rate = PG_GETARG_FLOAT4(9), clip_norm = PG_GETARG_FLOAT4(10);
    const int32_t patience = PG_GETARG_INT32(11);
    const int64_t seed = PG_GETARG_INT64(12);
    const bool has_max_customers = !PG_ARGISNULL(13);
    const int32_t max_customers = has_max_customers ? PG_GETARG_INT32(13) : 0;
    const std::string id_column = nargs > 15 ? text_arg(fcinfo, 15) : "ncodpers";
    const std::string month_column = nargs > 16 ? text_arg(fcinfo, 16) : "fecha_dato";
    const bool has_override = has_data_check && !PG_ARGISNULL(17);
    const std::string override_reason = has_override ? text_arg(fcinfo, 17) : std::string();

    check_model_name(name);
    if (from_start) check_start_month(start_month);
    check_range("train_months", train_months, 1, 1200);
    check_range("window_months", window, 1, kMaxWindowMonths);
    check_range("hidden", hidden, 1, kMaxHidden);
    check_range("layers", layers, 1, kMaxLayers);
    check_range("epochs", epochs, 1, 10000);
    check_range("batch_size", batch_size, 1, 65536);
    check_range("learning_rate", learning_rate, 1e-9, 10);
    check_range("clip_norm", clip_norm, 0, 1e9);
    check_range("patience", patience, 0, 10000);
    if (has_max_customers) check_range("max_customers", max_customers, 1, 2147483647.0);

    spi_connect();
    Model model = santander_model_skeleton(SourceSpec{source, id_column, month_column}, uint32_t(window),
                                           uint32_t(hidden), uint32_t(layers));
    if (from_start) {
        model.history = HistoryMode::FromStartMonth;
        model.start_month = start_month;
    }
    auto reader = std::make_unique<SourceReader>(model, "recsys.train");
    model.source.relation = reader->relation_name();

    // Months present, and a fingerprint of the data: md5 over per-month row counts and
    // product flag sums (one cheap aggregate query). Months are written with to_char, so the
    // fingerprint does not depend on the session's DateStyle.
    const std::string concat = sql::op("||");
    std::string sums;
    for (const auto &p : model.products)
        sums += (sums.empty() ? "" : concat + "','::pg_catalog.text" + concat) +
                sql::cast(sql::call("sum", sql::cast(quote_ident(p), "int4")), "text");
    const std::string month_expr =
        sql::cast(sql::call("date_trunc", "'month'::pg_catalog.text, " + sql::cast(reader->month_sql(), "timestamp")), "date");
    const std::string fingerprint_sql =
        "WITH per AS (SELECT " + month_expr + " AS m, " + sql::call("count", "*") + " AS n, " + sums + " AS s FROM " +
        reader->relation_name() + " GROUP BY 1) SELECT m, n, " +
        sql::call("md5", sql::call("string_agg", sql::call("to_char", "m, 'YYYY-MM-DD'::pg_catalog.text") + concat + "':'::pg_catalog.text" + concat +
                                                     sql::cast("n", "text") + concat + "':'::pg_catalog.text" + concat +
                                                     "s, ';'::pg_catalog.text") +
                             " OVER (ORDER BY m ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)") +
        " FROM per WHERE m IS NOT NULL ORDER BY m";
    std::vector<int32_t> months;
    std::string fingerprint;
    pg_call([&] {
        if (SPI_execute(fingerprint_sql.c_str(), true, 0) != SPI_OK_SELECT) elog(ERROR, "month summary query failed");
        for (uint64_t r = 0; r < SPI_processed; ++r) {
            bool isnull;
            const DateADT d = DatumGetDateADT(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
            int y, mo, dd;
            j2date(d + POSTGRES_EPOCH_JDATE, &y, &mo, &dd);
            months.push_back(y * 12 + mo - 1);
            if (r == 0) fingerprint = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 3);
        }
    });
    if (months.empty())
        throw SqlError(ERRCODE_NO_DATA_FOUND, "relation " + reader->relation_name() + " has no snapshots to train on");
    auto has_month = [&](int32_t m) { return std::binary_search(months.begin(), months.end(), m); };
    const int32_t validation = has_validation ? requested_validation : months.back();
    const std::string available = reader->relation_name() + " has months " + month_label(months.front()) + " to " +
                                  month_label(months.back());
    if (!has_month(validation))
        throw SqlError(ERRCODE_NO_DATA_FOUND, "validation_month " + month_label(validation) + " has no data", available + ".",
                       "Pass a month present in the relation, or NULL for its latest month.");
    if (!has_month(validation - 1))
        throw SqlError(ERRCODE_NO_DATA_FOUND, "the month before validation_month " + month_label(validation) + " has no data",
                       available + ".", "Validation scores inputs ending the month before validation_month.");
    const int32_t first_target = validation - train_months;
    for (int32_t m = first_target - 1; m < validation; ++m)
        if (!has_month(m)) {
            int32_t most = 0;
            while (has_month(validation - most - 2)) ++most;
            throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE,
                           "train_months " + std::to_string(train_months) + " is too many for the data: month " +
                               month_label(m) + " has no snapshots",
                           available + "; training on " + std::to_string(train_months) + " target months before " +
                               month_label(validation) + " needs " + month_label(first_target - 1) + " to " +
                               month_label(validation - 1) + ".",
                           "Pass train_months => " + std::to_string(most) + " or fewer.");
        }

    if (from_start && (first_target - 1 < start_month || validation - start_month > window))
        throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE,
                       "start_month " + month_label(start_month) + " does not fit the training months",
                       "Training targets " + month_label(first_target) + " to " + month_label(validation) +
                           " need inputs from " + month_label(first_target - 1) + "; with window_months " +
                           std::to_string(window) + " the history from the start month must end by " +
                           month_label(start_month + window - 1) + ".",
                       "Pass a start_month before the first target month and a window of at least " +
                           std::to_string(validation - start_month) + " months.");
    // Feature statistics from months before the validation month only.
    fit_feature_statistics(model, *reader, validation - 1);

    TrainingOptions options;
    options.first_target = first_target;
    options.validation = validation;
    options.epochs = uint32_t(epochs);
    options.patience = uint32_t(patience);
    options.batch_size = size_t(batch_size);
    options.adam.learning_rate = learning_rate;
    options.adam.clip_norm = clip_norm;
    options.seed = uint64_t(seed);

    // Memory, before the weights are allocated: the training loop (trainer, example batches,
    // gradients, the working and best epoch's copies of the weights) and the model's own
    // weights (later its serialized bytes, once the copies are gone) must fit in
    // recsys.max_batch_memory with one validation customer beside them. batch_size is not
    // lowered (it changes what is learned): a batch_size that does not fit is an error;
    // validation batches take what remains.
    BatchBytes train_need = training_bytes(model, options);
    train_need.fixed += weight_bytes(model);
    const BatchBytes eval_need = evaluation_bytes(model);
    {
        BatchBytes with_eval = train_need;
        with_eval.fixed += eval_need.total(1) + fetch_bytes(model);
        const size_t most = with_eval.max_batch(max_batch_memory_bytes());
        check_batch_fits("recsys.train", "model \"" + name + "\"", model,
                         BatchBytes{train_need.fixed + eval_need.total(1), train_need.per_customer}, size_t(batch_size),
                         "batch_size " + std::to_string(batch_size),
                         most > 0 ? "Pass batch_size => " + std::to_string(most) + " or less."
                                  : "Use a smaller window_months, hidden or layers.");
    }
    options.validation_batch = std::min<size_t>(
        1024, BatchBytes{eval_need.fixed + fetch_bytes(model) + train_need.total(size_t(batch_size)), eval_need.per_customer}
                  .max_batch(max_batch_memory_bytes()));

    // The validation month, the newest month training reads, must pass its data checks
    // before anything is trained on the data.
    const int64_t data_validation_id =
        has_data_check ? require_valid_data(reader->relation_id(), validation, has_override ? &override_reason : nullptr,
                                            model.source)
                       : -1;

    size_weights(model);
    initialize_weights(model, uint64_t(seed));

    int64_t max_id = -1;
    if (has_max_customers) {
        const std::string limit_sql = "SELECT " + sql::call("max", "id") + " FROM (SELECT DISTINCT " + reader->id_sql() +
                                      " AS id FROM " + reader->relation_name() + " ORDER BY 1 LIMIT " +
                                      std::to_string(max_customers) + ") s";
        const char *limit_text = limit_sql.c_str();
        max_id = pg_call([&] {
            if (SPI_execute(limit_text, true, 1) != SPI_OK_SELECT) elog(ERROR, "customer limit query failed");
            bool isnull;
            Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
            return isnull ? int64(-1) : DatumGetInt64(d);
        });
    }

    TrainingCallbacks callbacks;
    callbacks.poll = interrupt_poll();
    callbacks.progress = [&](const TrainingProgress &p) {
        char buf[512];
        if (p.validating)
            snprintf(buf, sizeof buf, "recsys.train: model %s epoch %u/%u validating", name.c_str(), p.epoch, p.epochs);
        else
            snprintf(buf, sizeof buf, "recsys.train: model %s epoch %u/%u batch %llu loss %.5f examples %llu",
                     name.c_str(), p.epoch, p.epochs, (unsigned long long)p.batches, p.mean_loss,
                     (unsigned long long)p.examples);
        report_activity(buf);
    };
    callbacks.epoch_done = [&](const EpochSummary &e) {
        char buf[512];
        snprintf(buf, sizeof buf,
                 "recsys.train: epoch %u/%u: train loss %.5f, validation MAP@7 %.5f (%s, %llu customers), "
                 "%llu examples, %.0f examples/s, %.1f s",
                 e.epoch, e.epochs, e.train_loss, e.validation_map7, month_label(validation).c_str(),
                 (unsigned long long)e.validation_customers, (unsigned long long)e.examples, e.examples_per_second,
                 e.seconds);
        notice(buf);
    };
    callbacks.stopped_early = [&](uint32_t without_improvement, uint32_t best_epoch) {
        notice("recsys.train: no improvement for " + std::to_string(without_improvement) +
               " epochs, stopping; keeping epoch " + std::to_string(best_epoch));
    };
    SpiCustomerSource customers(*reader, model, max_id);
    const TrainingResult trained = train_model(model, customers, options, callbacks);
    if (trained.no_examples)
        throw SqlError(ERRCODE_NO_DATA_FOUND,
                       "no training examples: no customer of " + reader->relation_name() +
                           " has snapshots in two consecutive months between " + month_label(first_target - 1) +
                           " and " + month_label(validation - 1));
    const MonthEvaluation &best_eval = trained.best_evaluation;
    reader.reset();
    const std::vector<uint8_t> bytes = serialize_model(model);
    const double seconds = seconds_since(started);

    auto num = [](double v) { return json_number(v); };
    const std::string hyperparameters =
        "{\"source\": " + json_string(source) + ", \"train_months\": " + std::to_string(train_months) +
        ", \"validation_month\": " + json_string(month_label(validation)) + ", \"window_months\": " + std::to_string(window) +
        ", \"start_month\": " + (from_start ? json_string(month_label(start_month)) : std::string("null")) +
        ", \"hidden\": " + std::to_string(hidden) + ", \"layers\": " + std::to_string(layers) +
        ", \"epochs\": " + std::to_string(epochs) + ", \"batch_size\": " + std::to_string(batch_size) +
        ", \"learning_rate\": " + num(learning_rate) + ", \"clip_norm\": " + num(clip_norm) +
        ", \"patience\": " + std::to_string(patience) + ", \"seed\": " + std::to_string(seed) +
        ", \"max_customers\": " + (has_max_customers ? std::to_string(max_customers) : std::string("null")) +
        ", \"no_add_sample_rate\": " + num(options.no_add_sample_rate) + ", \"optimizer\": \"adam\", \"loss\": \"masked_bce\"}";
    const std::string metrics =
        "{\"validation_month\": " + json_string(month_label(validation)) + ", \"map7\": " + num(best_eval.lstm.map()) +
        ", \"map7_adders\": " + num(best_eval.lstm.map_adders()) + ", \"precision7\": " + num(best_eval.lstm.precision()) +
        ", \"recall7\": " + num(best_eval.lstm.recall()) + ", \"coverage\": " + num(best_eval.lstm.coverage()) +
        ", \"validation_customers\": " + std::to_string(best_eval.lstm.customers()) +
        ", \"validation_adders\": " + std::to_string(best_eval.lstm.adders()) + ", \"train_loss\": " + num(trained.best_train_loss) +
        ", \"best_epoch\": " + std::to_string(trained.best_epoch) +
        ", \"epochs_run\": " + std::to_string(trained.epochs_run) +
        ", \"examples_per_second\": " + num(double(trained.examples) * trained.epochs_run / trained.train_seconds) +
        ", \"seconds\": " + num(seconds) + "}";
    const std::string training_data =
        "{\"relation\": " + json_string(model.source.relation) + ", \"train_months\": [" +
        json_string(month_label(first_target)) + ", " + json_string(month_label(validation - 1)) +
        "], \"validation_month\": " + json_string(month_label(validation)) +
        ", \"rows\": " + std::to_string(trained.rows) + ", \"customers\": " + std::to_string(trained.customers) +
        ", \"examples\": " + std::to_string(trained.examples) +
        ", \"candidate_examples\": " + std::to_string(trained.candidates) +
        ", \"fingerprint\": " + json_string(fingerprint) +
        ", \"data_validation_id\": " + (data_validation_id >= 0 ? std::to_string(data_validation_id) : "null") +
        ", \"data_override_reason\": " + (has_override ? json_string(override_reason) : "null") + "}";
    const std::string description = "recsys.train on " + model.source.relation;

    const int32_t version = pg_call([&] {
        Oid types[6] = {TEXTOID, BYTEAOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
        bytea *b = static_cast<bytea *>(palloc(VARHDRSZ + bytes.size()));
        SET_VARSIZE(b, VARHDRSZ + bytes.size());
        memcpy(VARDATA(b), bytes.data(), bytes.size());
        Datum args[6] = {CStringGetTextDatum(name.c_str()), PointerGetDatum(b),
                         CStringGetTextDatum(hyperparameters.c_str()), CStringGetTextDatum(metrics.c_str()),
                         CStringGetTextDatum(training_data.c_str()), CStringGetTextDatum(description.c_str())};
        if (SPI_execute_with_args("SELECT recsys.register_model($1, $2, $3::pg_catalog.jsonb, $4::pg_catalog.jsonb, "
                                  "$5::pg_catalog.jsonb, $6)", 6, types,
                                  args, nullptr, false, 1) != SPI_OK_SELECT)
            elog(ERROR, "registering the trained model failed");
        bool isnull;
        return DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    });
    // The training months' feature distributions, stored with the version (0.2.0's declaration,
    // without the data check, predates them; so does a 0.3.0 install made before them).
    if (has_data_check) {
        report_activity("recsys.train: model " + name + " recording the feature reference");
        record_feature_reference(name, version, first_target, validation - 1);
    }
    spi_finish();
    // Put the statement's own text back in pg_stat_activity.
    if (debug_query_string) report_activity(debug_query_string);
    PG_RETURN_INT32(version);
}
