// Drift and skew monitoring (docs/monitoring.md, "Drift and skew"), the parts that need C++:
//   recsys.population_stability_index(): the core's PSI, for recsys.feature_drift (PL/pgSQL,
//     sql/0.3.0/84_drift.sql) and for anyone's own bins;
//   recsys.prediction_skew(): every customer of a month scored in GEMM batches, the mean
//     predicted probability per product and segment beside the adds observed the month after;
//   recsys.training_serving_skew(): every customer's row of a month encoded by the model's own
//     FeatureEncoder, the moments of each encoded input beside those the training reference
//     implies.
// The model is read through the model cache (the registry's owner's rights, as scoring does);
// the source relation, the reference and the hyper-parameters with the caller's rights.
#include <cmath>
#include <string>
#include <vector>

#include "drift_prediction_skew.h"
#include "drift_statistics.h"
#include "guard.h"
#include "memory_budget.h"
#include "model_cache.h"
#include "month_evaluation.h"
#include "spi_customer_source.h"
#include "sql_text.h"
#include "sql_values.h"

using namespace recsys;
using namespace recsys::pg;

namespace {

// The elements of a float8[] without NULLs; `what` names it in errors.
std::vector<double> float8_array_values(Datum array, const char *what) {
    std::vector<double> out;
    bool has_null = false;
    pg_call([&] {
        ArrayType *arr = DatumGetArrayTypeP(array);
        if (ARR_NDIM(arr) > 1) ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR), errmsg("%s must be one-dimensional", what)));
        Datum *elems;
        bool *nulls;
        int n;
        deconstruct_array(arr, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, &n);
        out.resize(size_t(n));
        for (int i = 0; i < n; ++i) {
            has_null = has_null || nulls[i];
            out[size_t(i)] = nulls[i] ? 0.0 : DatumGetFloat8(elems[i]);
        }
    });
    if (has_null) throw SqlError(ERRCODE_NULL_VALUE_NOT_ALLOWED, std::string(what) + " must not contain NULL");
    return out;
}

// The name and month arguments (0 and 1) must not be NULL.
void require_name_and_month(FunctionCallInfo fcinfo) {
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
        throw SqlError(ERRCODE_NULL_VALUE_NOT_ALLOWED, "model name and month must not be NULL");
}

// recsys.train() records the rate at which it kept training examples without any add; a model
// registered otherwise has none (1: nothing to correct).
double no_add_sample_rate(const LoadedModel &m) {
    double rate = 1;
    pg_call([&] {
        Oid types[2] = {TEXTOID, INT4OID};
        Datum args[2] = {CStringGetTextDatum(m.name.c_str()), Int32GetDatum(m.version)};
        if (SPI_execute_with_args("SELECT (hyperparameters OPERATOR(pg_catalog.->>) 'no_add_sample_rate')::pg_catalog.float8 "
                                  "FROM recsys.models WHERE name OPERATOR(pg_catalog.=) $1 AND version OPERATOR(pg_catalog.=) $2",
                                  2, types, args, nullptr, true, 1) != SPI_OK_SELECT)
            elog(ERROR, "hyper-parameter lookup failed");
        if (SPI_processed == 1) {
            bool isnull;
            const Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
            if (!isnull) rate = DatumGetFloat8(d);
        }
    });
    if (!(rate > 0 && rate <= 1))
        throw SqlError(ERRCODE_DATA_EXCEPTION,
                       m.label() + " records a no_add_sample_rate of " + std::to_string(rate) + ", outside (0, 1]");
    return rate;
}

struct StoredFeatureReference {
    std::string column, kind;
    FeatureReference reference;
    std::vector<std::string> values;  // categorical: the vocabulary the counts are of
};

// The reference recorded for a model version (recsys.feature_references), per feature.
std::vector<StoredFeatureReference> read_feature_reference(const LoadedModel &m) {
    const std::string name = m.name;
    const int32_t version = m.version;
    bool found = false;
    std::vector<StoredFeatureReference> out;
    pg_call([&] {
        Oid types[2] = {TEXTOID, INT4OID};
        Datum args[2] = {CStringGetTextDatum(name.c_str()), Int32GetDatum(version)};
        if (SPI_execute_with_args("SELECT 1 FROM recsys.feature_references WHERE name OPERATOR(pg_catalog.=) $1 "
                                  "AND version OPERATOR(pg_catalog.=) $2",
                                  2, types, args, nullptr, true, 1) != SPI_OK_SELECT)
            elog(ERROR, "feature reference lookup failed");
        found = SPI_processed == 1;
        if (!found) return;
        if (SPI_execute_with_args(
                "SELECT e.f OPERATOR(pg_catalog.->>) 'column', e.f OPERATOR(pg_catalog.->>) 'kind', "
                "(r.reference OPERATOR(pg_catalog.->>) 'rows')::pg_catalog.float8, "
                "(e.f OPERATOR(pg_catalog.->>) 'null_count')::pg_catalog.float8, "
                "(e.f OPERATOR(pg_catalog.->>) 'transformed_mean')::pg_catalog.float8, "
                "(e.f OPERATOR(pg_catalog.->>) 'transformed_stddev')::pg_catalog.float8, "
                "(e.f OPERATOR(pg_catalog.->>) 'unknown_count')::pg_catalog.float8, "
                "ARRAY(SELECT pg_catalog.jsonb_array_elements_text(e.f OPERATOR(pg_catalog.->) 'values')), "
                "ARRAY(SELECT (x.c)::pg_catalog.float8 "
                "FROM pg_catalog.jsonb_array_elements_text(e.f OPERATOR(pg_catalog.->) 'counts') x(c)) "
                "FROM recsys.feature_references r CROSS JOIN LATERAL "
                "pg_catalog.jsonb_array_elements(r.reference OPERATOR(pg_catalog.->) 'features') WITH ORDINALITY e(f, o) "
                "WHERE r.name OPERATOR(pg_catalog.=) $1 AND r.version OPERATOR(pg_catalog.=) $2 ORDER BY e.o",
                2, types, args, nullptr, true, 0) != SPI_OK_SELECT)
            elog(ERROR, "feature reference query failed");
        out.resize(SPI_processed);
        for (uint64_t i = 0; i < SPI_processed; ++i) {
            HeapTuple t = SPI_tuptable->vals[i];
            TupleDesc d = SPI_tuptable->tupdesc;
            StoredFeatureReference &s = out[i];
            const char *column = SPI_getvalue(t, d, 1), *kind = SPI_getvalue(t, d, 2);
            s.column = column ? column : "";
            s.kind = kind ? kind : "";
            bool isnull;
            Datum v;
            double *numbers[5] = {&s.reference.rows, &s.reference.null_count, &s.reference.transformed_mean,
                                  &s.reference.transformed_stddev, &s.reference.unknown_count};
            for (int k = 0; k < 5; ++k) {
                v = SPI_getbinval(t, d, 3 + k, &isnull);
                *numbers[k] = isnull ? 0.0 : DatumGetFloat8(v);
            }
            Datum *elems;
            bool *nulls;
            int n;
            v = SPI_getbinval(t, d, 8, &isnull);
            deconstruct_array(DatumGetArrayTypeP(v), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
            s.values.resize(size_t(n));
            for (int k = 0; k < n; ++k)
                if (!nulls[k]) s.values[size_t(k)] = TextDatumGetCString(elems[k]);
            v = SPI_getbinval(t, d, 9, &isnull);
            deconstruct_array(DatumGetArrayTypeP(v), FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, &n);
            s.reference.value_counts.resize(size_t(n));
            for (int k = 0; k < n; ++k) s.reference.value_counts[size_t(k)] = nulls[k] ? 0.0 : DatumGetFloat8(elems[k]);
        }
    });
    if (!found)
        throw SqlError(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, m.label() + " has no feature reference",
                       "recsys.train() records one for every model it trains; a model registered otherwise has "
                       "none until one is recorded.",
                       "Record one with SELECT recsys.record_feature_reference('" + name + "', " +
                           std::to_string(version) + ", months_from, months_to) over its training months.");
    return out;
}

}  // namespace

// recsys.population_stability_index(expected float8[], actual float8[], epsilon float8) -> float8
RECSYS_FUNCTION(recsys_population_stability_index) {
    const std::vector<double> expected = float8_array_values(PG_GETARG_DATUM(0), "expected");
    const std::vector<double> actual = float8_array_values(PG_GETARG_DATUM(1), "actual");
    PG_RETURN_FLOAT8(population_stability_index(expected, actual, PG_GETARG_FLOAT8(2)));
}

// recsys.prediction_skew(model_name, month, version) -> TABLE(product, segment, customers,
// mean_predicted, calibrated_predicted, observed_add_rate, observed_adds, ratio, status)
RECSYS_FUNCTION(recsys_prediction_skew) {
    pg_call([&] { InitMaterializedSRF(fcinfo, 0); });
    require_name_and_month(fcinfo);
    const std::string name = text_arg(fcinfo, 0);
    const int32_t month = month_of_date(PG_GETARG_DATEADT(1));
    const int32_t requested = version_arg(fcinfo, 2);

    spi_connect();
    std::shared_ptr<LoadedModel> m = acquire_model(name, requested);
    PredictionSkewOptions options;
    options.no_add_sample_rate = no_add_sample_rate(*m);
    options.batch_size = plan_batch("recsys.prediction_skew", m->label(), m->model, evaluation_bytes(m->model), SIZE_MAX);
    options.poll = interrupt_poll();
    SpiCustomerSource source(*m->reader, m->model);
    const PredictionSkew skew = prediction_skew(m->model, *m->encoder, source, month, options);
    if (skew.customers == 0)
        throw SqlError(ERRCODE_NO_DATA_FOUND,
                       "no customer has snapshots in both " + month_label(month) + " and " + month_label(month + 1) +
                           " in " + m->reader->relation_name(),
                       "Prediction skew scores the customers of a month and compares with their snapshots of the "
                       "month after.");
    spi_finish();

    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    for (uint32_t p = 0; p < skew.products; ++p) {
        const char *product = m->model.products[p].c_str();
        for (size_t g = 0; g < skew.segments.size(); ++g) {
            const SkewCell &cell = skew.at(g, p);
            if (cell.customers == 0) continue;
            const char *segment = skew.segments[g].c_str(), *status = skew_status(cell);
            const double observed = cell.observed_rate();
            pg_call([&] {
                Datum values[9] = {CStringGetTextDatum(product), CStringGetTextDatum(segment),
                                   Int64GetDatum(int64(cell.customers)), Float8GetDatum(cell.mean_predicted()),
                                   Float8GetDatum(cell.mean_calibrated()), Float8GetDatum(observed),
                                   Int64GetDatum(int64(cell.adds)),
                                   Float8GetDatum(observed > 0 ? cell.mean_calibrated() / observed : 0.0),
                                   CStringGetTextDatum(status)};
                bool nulls[9] = {false, false, false, false, false, false, false, !(observed > 0), false};
                tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
            });
        }
    }
    return (Datum)0;
}

// recsys.training_serving_skew(model_name, month, version) -> TABLE(input, feature,
// training_mean, serving_mean, training_null_rate, serving_null_rate, standardized_difference,
// flagged)
RECSYS_FUNCTION(recsys_training_serving_skew) {
    pg_call([&] { InitMaterializedSRF(fcinfo, 0); });
    require_name_and_month(fcinfo);
    const std::string name = text_arg(fcinfo, 0);
    const int32_t month = month_of_date(PG_GETARG_DATEADT(1));
    const int32_t requested = version_arg(fcinfo, 2);

    spi_connect();
    std::shared_ptr<LoadedModel> m = acquire_model(name, requested);
    const Model &model = m->model;
    const size_t F = model.features.size();
    const std::vector<StoredFeatureReference> stored = read_feature_reference(*m);

    // Training: what the reference implies for each encoded input, per feature.
    std::vector<std::vector<InputMoments>> training(F);
    std::vector<double> training_null(F);
    for (size_t i = 0; i < F; ++i) {
        const FeatureSpec &f = model.features[i];
        const StoredFeatureReference *s = nullptr;
        for (const auto &candidate : stored)
            if (candidate.column == f.column) s = &candidate;
        const bool categorical = f.kind == FeatureKind::Categorical;
        if (!s || s->kind != (categorical ? "categorical" : "numeric") || (categorical && s->values != f.vocabulary))
            throw SqlError(ERRCODE_DATA_EXCEPTION,
                           "the feature reference of " + m->label() + " does not describe its feature \"" + f.column + "\"",
                           "The reference lacks the feature, or records another kind or vocabulary than the model's "
                           "feature spec.",
                           "Record it again with recsys.record_feature_reference().");
        training[i] = reference_input_moments(f, s->reference);
        training_null[i] = s->reference.null_count / s->reference.rows;
    }

    // Serving: every customer's row of the month, encoded as recommend() encodes it.
    std::vector<InputMomentsAccumulator> serving;
    for (const FeatureSpec &f : model.features) serving.emplace_back(f.encoded_width());
    std::vector<float> encoded(64);
    SpiCustomerSource source(*m->reader, model);
    uint64_t customers = 0;
    source.for_each_customer(month, month + 1, [&](const HistoryBatch &h, size_t c) {
        const size_t r = h.row_begin[c + 1] - 1;  // the customer's (latest) row of the month
        for (size_t i = 0; i < F; ++i) {
            const FeatureSpec &f = model.features[i];
            if (encoded.size() < f.encoded_width()) encoded.resize(f.encoded_width());
            m->encoder->encode_feature(f, h.values[r * h.feature_count + i], encoded.data());
            serving[i].add(encoded.data());
        }
        if ((++customers & 4095) == 0) check_for_interrupts();
    });
    if (customers == 0)
        throw SqlError(ERRCODE_NO_DATA_FOUND,
                       "no customer has a snapshot in " + month_label(month) + " in " + m->reader->relation_name());

    // NULL shares of the month in SQL: the reader maps a NULL category and an unknown one alike.
    std::string counts;
    for (const FeatureSpec &f : model.features) counts += ", " + sql::call("count", quote_ident(f.column));
    const std::string null_sql = "SELECT " + sql::call("count", "*") + counts + " FROM " + m->reader->relation_name() +
                                 " WHERE " + m->reader->months_between(month, month + 1);
    std::vector<double> serving_null(F, 0.0);
    pg_call([&] {
        if (SPI_execute(null_sql.c_str(), true, 1) != SPI_OK_SELECT) elog(ERROR, "NULL share query failed");
        bool isnull;
        const double rows = double(DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)));
        for (size_t i = 0; i < F; ++i) {
            const double present =
                double(DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, int(i) + 2, &isnull)));
            serving_null[i] = rows > 0 ? 1 - present / rows : 0.0;
        }
    });
    spi_finish();

    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    for (size_t i = 0; i < F; ++i) {
        const FeatureSpec &f = model.features[i];
        const std::vector<std::string> names = encoded_input_names(f);
        const std::vector<InputMoments> now = serving[i].moments();
        const bool null_moved = std::fabs(serving_null[i] - training_null[i]) > kSkewNullRateFlag;
        for (size_t k = 0; k < names.size(); ++k) {
            const double difference = standardized_difference(training[i][k], now[k]);
            const bool flagged = null_moved || std::fabs(difference) > kSkewDifferenceFlag;
            const char *input = names[k].c_str(), *feature = f.column.c_str();
            pg_call([&] {
                Datum values[8] = {CStringGetTextDatum(input), CStringGetTextDatum(feature),
                                   Float8GetDatum(training[i][k].mean), Float8GetDatum(now[k].mean),
                                   Float8GetDatum(training_null[i]), Float8GetDatum(serving_null[i]),
                                   Float8GetDatum(difference), BoolGetDatum(flagged)};
                bool nulls[8] = {false, false, false, false, false, false, false, false};
                tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
            });
        }
    }
    return (Datum)0;
}
