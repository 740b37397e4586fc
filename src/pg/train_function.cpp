// recsys.train(): trains the default Santander LSTM inside the backend and registers it.
//
// The source relation is streamed through an SPI cursor ordered by (id, month) once per
// epoch; each customer's rows give one example per target month (inputs end at m - 1,
// labels = products held in m but not in m - 1, mask = products not held in m - 1).
// Examples fill mini-batches of batch_size and every full batch takes one Adam step, so
// memory holds one fetch of rows and one mini-batch, never the table.
//
// Subsampling: an example whose customer adds nothing in the target month is kept with
// probability kNoAddSampleRate (a hash of seed, customer and month decides, so runs are
// reproducible); examples with at least one add are always kept. Adds are ~3.5% of
// customer-months, so this cuts an epoch ~7x while keeping most of the signal; the ranking
// within a customer, which is all MAP@7 sees, is hardly affected by the shifted base rate.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "evaluate_function.h"
#include "feature_fitting.h"
#include "lstm_forward.h"
#include "lstm_training.h"
#include "memory_budget.h"
#include "model_format.h"
#include "santander_features.h"
#include "model_json.h"
#include "splitmix64.h"
#include "sql_text.h"
#include "sql_values.h"

using namespace recsys;
using namespace recsys::pg;

namespace {

constexpr double kNoAddSampleRate = 0.1;

bool keep_no_add_example(uint64_t seed, int64_t customer, int32_t month) {
    const uint64_t h = splitmix64(splitmix64(seed ^ 0x7261696E) ^ splitmix64(uint64_t(customer)) ^ uint64_t(month));
    return double(h >> 11) * (1.0 / 9007199254740992.0) < kNoAddSampleRate;
}

void notice(const std::string &message) {
    pg_call([&] { ereport(NOTICE, (errmsg("%s", message.c_str()))); });
}

void report_activity(const std::string &text) {
    pg_call([&] { pgstat_report_activity(STATE_RUNNING, text.c_str()); });
}

struct WeightsSnapshot {
    std::vector<LstmLayer> layers;
    std::vector<float> dense_w, dense_b;
    void take(const Model &m) {
        layers = m.layers;
        dense_w = m.dense_w;
        dense_b = m.dense_b;
    }
    void restore(Model &m) const {
        m.layers = layers;
        m.dense_w = dense_w;
        m.dense_b = dense_b;
    }
};

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

// recsys.train(model_name, source, train_months, validation_month, window_months, hidden,
// layers, epochs, batch_size, learning_rate, clip_norm, patience, seed, max_customers,
// start_month) -> integer: the registered version.
RECSYS_FUNCTION(recsys_train) {
    const Clock::time_point started = Clock::now();
    for (int i = 0; i < 14; ++i)
        if (i != 3 && i != 13 && PG_ARGISNULL(i))
            throw SqlError(ERRCODE_NULL_VALUE_NOT_ALLOWED,
                           "only validation_month, max_customers and start_month may be NULL");
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
    Model model = santander_model_skeleton(SourceSpec{source, "ncodpers", "fecha_dato"}, uint32_t(window),
                                           uint32_t(hidden), uint32_t(layers));
    if (from_start) {
        model.history = HistoryMode::FromStartMonth;
        model.start_month = start_month;
    }
    auto reader = std::make_unique<SourceReader>(model, "recsys.train");
    model.source.relation = reader->relation_name();
    const uint32_t P = model.product_count();

    // Months present, and a fingerprint of the data: md5 over per-month row counts and
    // product flag sums (one cheap aggregate query).
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
        sql::call("md5", sql::call("string_agg", sql::cast("m", "text") + concat + "':'::pg_catalog.text" + concat +
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

    // Memory, before the weights are allocated: the trainer, the example batches (one per
    // target month for a from-start model), the weights, their gradients, the best epoch's
    // copy and the serialized model must fit in recsys.max_batch_memory with one validation
    // customer beside them. batch_size is not lowered (it changes what is learned): a
    // batch_size that does not fit is an error; validation batches take what remains.
    const size_t example_batches = from_start ? size_t(validation - first_target) : 1;
    BatchBytes train_need = LstmTrainer::buffer_bytes(model);
    train_need.fixed += 4 * weight_bytes(model);
    train_need.per_customer += example_batches * ExampleBatch::buffer_bytes(model).per_customer;
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
    const size_t validation_batch = std::min<size_t>(
        1024, BatchBytes{eval_need.fixed + fetch_bytes(model) + train_need.total(size_t(batch_size)), eval_need.per_customer}
                  .max_batch(max_batch_memory_bytes()));
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

    const int32_t first_row = from_start ? start_month : first_target - 1 - window;
    std::string where = reader->months_between(first_row, validation);
    if (max_id >= 0) where += " AND " + reader->id_sql() + sql::op("<=") + sql::int8_literal(max_id);
    const std::string train_sql = reader->batch_query(where);

    FeatureEncoder encoder(model);
    AdamOptions options;
    options.learning_rate = learning_rate;
    options.clip_norm = clip_norm;
    LstmTrainer trainer(model, size_t(batch_size), options);
    trainer.set_poll(interrupt_poll());
    ModelGradients grads(model);
    // A sliding-window model mixes target months in one batch. A from-start model's
    // sequences grow with the month, so it keeps one batch per target month, each run for
    // exactly the months since the start.
    std::vector<std::unique_ptr<ExampleBatch>> batches;
    for (int32_t m = first_target; m < (from_start ? validation : first_target + 1); ++m)
        batches.push_back(std::make_unique<ExampleBatch>(encoder, size_t(batch_size), P));
    auto batch_for = [&](int32_t target) -> ExampleBatch & {
        return *batches[from_start ? size_t(target - first_target) : 0];
    };
    auto steps_for = [&](int32_t target) -> size_t {
        return from_start ? size_t(target - start_month) : 0;  // inputs end at target - 1
    };

    WeightsSnapshot best;
    double best_map = -1.0, best_train_loss = 0.0;
    int best_epoch = 0, epochs_run = 0, since_best = 0;
    MonthEvaluation best_eval(P);
    uint64_t rows = 0, customers = 0, examples = 0, candidates = 0;
    double train_seconds = 0.0;

    for (int epoch = 1; epoch <= epochs; ++epoch) {
        const Clock::time_point epoch_start = Clock::now();
        Clock::time_point last_report = epoch_start - std::chrono::seconds(10);
        uint64_t epoch_rows = 0, epoch_customers = 0, epoch_examples = 0, epoch_candidates = 0, batches = 0;
        double loss_sum = 0.0;
        auto step = [&](int32_t target) {
            ExampleBatch &batch = batch_for(target);
            if (batch.size() == 0) return;
            batch.finish();
            const double loss = trainer.forward_backward(batch.steps(), batch.statics(), batch.labels(), batch.mask(),
                                                         batch.size(), grads, steps_for(target));
            trainer.adam_step(grads);
            loss_sum += loss * double(batch.size());
            epoch_examples += batch.size();
            ++batches;
            batch.clear();
            check_for_interrupts();
            if (seconds_since(last_report) >= 2.0) {
                last_report = Clock::now();
                char buf[512];
                snprintf(buf, sizeof buf, "recsys.train: model %s epoch %d/%d batch %llu loss %.5f examples %llu",
                         name.c_str(), epoch, epochs, (unsigned long long)batches, loss_sum / double(epoch_examples),
                         (unsigned long long)epoch_examples);
                report_activity(buf);
            }
        };
        stream_customers(*reader, model, train_sql, &epoch_rows, [&](const HistoryBatch &h, size_t c) {
            ++epoch_customers;
            for (int32_t m = first_target; m < validation; ++m) {
                const long rp = find_month_row(h, c, m - 1);
                if (rp < 0) continue;
                const long rm = find_month_row(h, c, m);
                if (rm < 0) continue;
                ++epoch_candidates;
                const uint8_t *now = h.products.data() + size_t(rm) * P, *before = h.products.data() + size_t(rp) * P;
                bool any_add = false;
                for (uint32_t p = 0; p < P; ++p) any_add = any_add || (now[p] && !before[p]);
                if (!any_add && !keep_no_add_example(uint64_t(seed), h.customer_ids[c], m)) continue;
                ExampleBatch &batch = batch_for(m);
                const size_t slot = batch.add(h, c, m - 1);
                float *labels = batch.labels(slot), *mask = batch.mask(slot);
                for (uint32_t p = 0; p < P; ++p) {
                    labels[p] = now[p] && !before[p] ? 1.0f : 0.0f;
                    mask[p] = before[p] ? 0.0f : 1.0f;
                }
                if (batch.full()) step(m);
            }
        });
        for (int32_t m = first_target; m < validation; ++m) step(m);  // the last, partial batches
        const double epoch_train_seconds = seconds_since(epoch_start);
        train_seconds += epoch_train_seconds;
        rows = epoch_rows;
        customers = epoch_customers;
        examples = epoch_examples;
        candidates = epoch_candidates;
        if (epoch_examples == 0)
            throw SqlError(ERRCODE_NO_DATA_FOUND,
                           "no training examples: no customer of " + reader->relation_name() +
                               " has snapshots in two consecutive months between " + month_label(first_target - 1) +
                               " and " + month_label(validation - 1));
        const double train_loss = loss_sum / double(epoch_examples);

        report_activity("recsys.train: model " + name + " epoch " + std::to_string(epoch) + "/" + std::to_string(epochs) +
                        " validating");
        MonthEvaluation ev = evaluate_month(model, *reader, encoder, validation, false, max_id, validation_batch);
        ++epochs_run;
        const double map7 = ev.lstm.map();
        char buf[512];
        snprintf(buf, sizeof buf,
                 "recsys.train: epoch %d/%d: train loss %.5f, validation MAP@7 %.5f (%s, %llu customers), "
                 "%llu examples, %.0f examples/s, %.1f s",
                 epoch, epochs, train_loss, map7, month_label(validation).c_str(),
                 (unsigned long long)ev.lstm.customers(), (unsigned long long)epoch_examples,
                 double(epoch_examples) / epoch_train_seconds, seconds_since(epoch_start));
        notice(buf);
        if (map7 > best_map) {
            best_map = map7;
            best_epoch = epoch;
            best_train_loss = train_loss;
            best.take(model);
            best_eval = ev;
            since_best = 0;
        } else if (++since_best > patience) {
            notice("recsys.train: no improvement for " + std::to_string(since_best) + " epochs, stopping; keeping epoch " +
                   std::to_string(best_epoch));
            break;
        }
    }
    best.restore(model);
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
        ", \"no_add_sample_rate\": " + num(kNoAddSampleRate) + ", \"optimizer\": \"adam\", \"loss\": \"masked_bce\"}";
    const std::string metrics =
        "{\"validation_month\": " + json_string(month_label(validation)) + ", \"map7\": " + num(best_eval.lstm.map()) +
        ", \"map7_adders\": " + num(best_eval.lstm.map_adders()) + ", \"precision7\": " + num(best_eval.lstm.precision()) +
        ", \"recall7\": " + num(best_eval.lstm.recall()) + ", \"coverage\": " + num(best_eval.lstm.coverage()) +
        ", \"validation_customers\": " + std::to_string(best_eval.lstm.customers()) +
        ", \"validation_adders\": " + std::to_string(best_eval.lstm.adders()) + ", \"train_loss\": " + num(best_train_loss) +
        ", \"best_epoch\": " + std::to_string(best_epoch) + ", \"epochs_run\": " + std::to_string(epochs_run) +
        ", \"examples_per_second\": " + num(double(examples) * epochs_run / train_seconds) +
        ", \"seconds\": " + num(seconds) + "}";
    const std::string training_data =
        "{\"relation\": " + json_string(model.source.relation) + ", \"train_months\": [" +
        json_string(month_label(first_target)) + ", " + json_string(month_label(validation - 1)) +
        "], \"validation_month\": " + json_string(month_label(validation)) + ", \"rows\": " + std::to_string(rows) +
        ", \"customers\": " + std::to_string(customers) + ", \"examples\": " + std::to_string(examples) +
        ", \"candidate_examples\": " + std::to_string(candidates) + ", \"fingerprint\": " + json_string(fingerprint) + "}";
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
    spi_finish();
    // Put the statement's own text back in pg_stat_activity.
    if (debug_query_string) report_activity(debug_query_string);
    PG_RETURN_INT32(version);
}
