// recsys.compare_versions(): the evaluation engine of the promotion gate. A candidate and a
// baseline version (usually production) are evaluated on the same month by the same code (the
// core month evaluation, src/core/month_evaluation.h), customer by customer, and compared with
// a paired bootstrap overall and per subpopulation (src/core/paired_comparison.h). Each version
// streams the relation once with its own features; the customers are paired by id, and the
// fingerprint of the evaluated rows proves both saw the same ones.
//
// Memory: the per-customer outcomes (ids, average precisions, adder flags, subpopulation
// codes, for both versions) and the comparison's scratch grow with the customers of the month;
// they are counted up front (one aggregate query counts the customers) and taken from
// recsys.max_batch_memory before the evaluation batches are planned, so a month too large
// for the budget fails with 54000 before any scoring. (The subpopulation labels and the
// per-subpopulation results are not counted: a few dozen short strings.)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "evaluate_function.h"
#include "guard.h"
#include "memory_budget.h"
#include "model_cache.h"
#include "model_json.h"
#include "month_evaluation.h"
#include "paired_comparison.h"
#include "spi_customer_source.h"
#include "sql_text.h"
#include "sql_values.h"

using namespace recsys;
using namespace recsys::pg;

namespace {

constexpr int32_t kMinResamples = 100, kMaxResamples = 100000;

// Customers with rows in both month - 1 and month (an upper bound when a customer has two
// rows in one month, which the evaluation then refuses): what the outcome arrays will hold.
size_t count_evaluated_customers(const SourceReader &reader, int32_t month) {
    const std::string query = "SELECT " + sql::call("count", "*") + " FROM (SELECT " + reader.id_sql() + " FROM " +
                              reader.relation_name() + " WHERE " + reader.months_between(month - 1, month + 1) +
                              " GROUP BY 1 HAVING " + sql::call("count", "*") + sql::op(">=") + "2) s";
    const char *text = query.c_str();
    return size_t(pg_call([&] {
        if (SPI_execute(text, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
            elog(ERROR, "evaluated customer count query failed");
        bool isnull;
        const Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
        return isnull ? int64(0) : DatumGetInt64(d);
    }));
}

// Bytes that stay allocated for the whole call: both versions' outcomes, and the scratch of
// paired_bootstrap / compare_subpopulations (per customer: the differences, their codes and
// one dimension's member lists; per resample: its mean).
size_t kept_bytes(size_t customers, size_t candidate_dimensions, std::optional<size_t> baseline_dimensions,
                  uint32_t resamples) {
    size_t per_customer = CustomerOutcomes::bytes_per_customer(candidate_dimensions);
    if (baseline_dimensions) per_customer += CustomerOutcomes::bytes_per_customer(*baseline_dimensions) + 16;
    return customers * per_customer + size_t(resamples) * sizeof(double);
}

std::string metrics_json(int32_t version, const RankingMetrics &m) {
    return "{\"version\": " + std::to_string(version) + ", \"map7\": " + json_number(m.map()) +
           ", \"map7_adders\": " + json_number(m.map_adders()) + ", \"precision7\": " + json_number(m.precision()) +
           ", \"recall7\": " + json_number(m.recall()) + ", \"coverage\": " + json_number(m.coverage()) + "}";
}

// Per subpopulation of the candidate alone: customers, adders and mean average precision, in
// the order compare_subpopulations() uses (dimension order, then value label byte order).
std::string candidate_subpopulations_json(const CustomerOutcomes &o) {
    const Subpopulations &g = o.groups;
    std::string out;
    for (size_t d = 0; d < g.dimensions().size(); ++d) {
        std::vector<uint64_t> customers(g.value_count(d), 0), adders(g.value_count(d), 0);
        std::vector<double> ap_sum(g.value_count(d), 0.0);
        for (size_t c = 0; c < g.customers(); ++c) {
            const uint32_t code = g.code_of(c, d);
            if (code == Subpopulations::kNone) continue;
            ++customers[code];
            adders[code] += o.adder[c];
            ap_sum[code] += o.average_precision[c];
        }
        std::map<std::string, uint32_t> by_label;
        for (uint32_t v = 0; v < g.value_count(d); ++v)
            if (customers[v] > 0) by_label.emplace(g.label(d, v), v);
        for (const auto &[label, v] : by_label) {
            out += out.empty() ? "" : ", ";
            out += "{\"dimension\": " + json_string(g.dimensions()[d]) + ", \"value\": " + json_string(label) +
                   ", \"customers\": " + std::to_string(customers[v]) + ", \"adders\": " + std::to_string(adders[v]) +
                   ", \"candidate_map7\": " + json_number(ap_sum[v] / double(customers[v])) +
                   ", \"baseline_map7\": null, \"difference\": null, \"low\": null, \"high\": null}";
        }
    }
    return "[" + out + "]";
}

std::string compared_subpopulations_json(const std::vector<SubpopulationComparison> &comparisons) {
    std::string out;
    for (const SubpopulationComparison &s : comparisons) {
        const DifferenceInterval &i = s.interval;
        out += out.empty() ? "" : ", ";
        out += "{\"dimension\": " + json_string(s.dimension) + ", \"value\": " + json_string(s.value) +
               ", \"customers\": " + std::to_string(i.customers) + ", \"adders\": " + std::to_string(s.adders) +
               ", \"candidate_map7\": " + json_number(i.mean_a) + ", \"baseline_map7\": " + json_number(i.mean_b) +
               ", \"difference\": " + json_number(i.difference) + ", \"low\": " + json_number(i.low) +
               ", \"high\": " + json_number(i.high) + "}";
    }
    return "[" + out + "]";
}

std::string date_text(int32_t month) {
    const DateADT d = date_of_month(month);
    int y, m, day;
    j2date(d + POSTGRES_EPOCH_JDATE, &y, &m, &day);
    char buf[16];
    snprintf(buf, sizeof buf, "%04d-%02d-%02d", y, m, day);
    return buf;
}

std::string source_text(const LoadedModel &m) {
    return m.reader->relation_name() + " (id column " + m.model.source.id_column + ", month column " +
           m.model.source.month_column + ")";
}

}  // namespace

// recsys.compare_versions(model_name, candidate, baseline, month, resamples, confidence, seed,
// subpopulation_confidence) -> jsonb (see sql/0.3.0/35_compare_versions.sql)
RECSYS_FUNCTION(recsys_compare_versions) {
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
        throw SqlError(ERRCODE_NULL_VALUE_NOT_ALLOWED, "model_name and candidate must not be NULL");
    if (PG_ARGISNULL(4) || PG_ARGISNULL(5) || PG_ARGISNULL(6))
        throw SqlError(ERRCODE_NULL_VALUE_NOT_ALLOWED, "resamples, confidence and seed must not be NULL");
    const std::string name = text_arg(fcinfo, 0);
    const int32_t candidate_version = version_arg(fcinfo, 1);
    const bool has_baseline = !PG_ARGISNULL(2);
    const int32_t baseline_version = has_baseline ? version_arg(fcinfo, 2) : 0;
    const int32_t requested_month = PG_ARGISNULL(3) ? -1 : month_of_date(PG_GETARG_DATEADT(3));
    const int32_t resamples = PG_GETARG_INT32(4);
    const double confidence = PG_GETARG_FLOAT8(5);
    const int64_t seed = PG_GETARG_INT64(6);
    // Subpopulation intervals may use a higher level than the overall one: a gate that judges
    // some twenty subpopulations at 95% each would refuse an equally good candidate by chance
    // most of the time. NULL: the overall level.
    const double subpopulation_confidence = PG_NARGS() > 7 && !PG_ARGISNULL(7) ? PG_GETARG_FLOAT8(7) : confidence;
    if (resamples < kMinResamples || resamples > kMaxResamples)
        throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE,
                       "resamples must be between " + std::to_string(kMinResamples) + " and " +
                           std::to_string(kMaxResamples) + ", not " + std::to_string(resamples));
    if (!(confidence > 0.5 && confidence < 1.0))
        throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE,
                       "confidence must be greater than 0.5 and less than 1, not " + json_number(confidence),
                       "", "Pass confidence => 0.95 for a 95% interval.");
    if (!(subpopulation_confidence > 0.5 && subpopulation_confidence < 1.0))
        throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE,
                       "subpopulation_confidence must be greater than 0.5 and less than 1, not " +
                           json_number(subpopulation_confidence));

    spi_connect();
    std::shared_ptr<LoadedModel> candidate = acquire_model(name, candidate_version);
    std::shared_ptr<LoadedModel> baseline = has_baseline ? acquire_model(name, baseline_version) : nullptr;
    // The figures are stored in validation records that readers see: like score_all(), never
    // with more rights than the roles that registered the versions (the caller's own rights
    // apply to the reads as well).
    require_registrant_can_read(*candidate);
    if (baseline) require_registrant_can_read(*baseline);
    if (baseline && (baseline->reader->relation_id() != candidate->reader->relation_id() ||
                     baseline->model.source.id_column != candidate->model.source.id_column ||
                     baseline->model.source.month_column != candidate->model.source.month_column))
        throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE,
                       "cannot compare " + candidate->label() + " with version " + std::to_string(baseline_version) +
                           ": they read different data",
                       candidate->label() + " reads " + source_text(*candidate) + "; " + baseline->label() +
                           " reads " + source_text(*baseline) + ".",
                       "Compare versions that read the same relation, id and month columns.");
    const SourceReader &reader = *candidate->reader;
    const std::string relation = reader.relation_name();
    const int32_t month = resolve_evaluation_month(reader, requested_month);

    const size_t expected = count_evaluated_customers(reader, month);
    if (expected == 0)
        throw SqlError(ERRCODE_NO_DATA_FOUND, "no customer has snapshots in both " + month_label(month - 1) + " and " +
                                                  month_label(month) + " in " + relation);
    const size_t candidate_dimensions = subpopulation_dimensions(candidate->model).size();
    const std::optional<size_t> baseline_dimensions =
        baseline ? std::optional<size_t>(subpopulation_dimensions(baseline->model).size()) : std::nullopt;
    const size_t kept = kept_bytes(expected, candidate_dimensions, baseline_dimensions, uint32_t(resamples));
    // Checked here rather than left to plan_batch(), so that the error names what is too large:
    // the month's customers, not the model.
    const size_t budget = max_batch_memory_bytes();
    for (const LoadedModel *m : {candidate.get(), baseline.get()}) {
        if (!m) continue;
        const size_t one = evaluation_bytes(m->model).total(1), fetch = fetch_bytes(m->model);
        if (kept + one + fetch > budget)
            throw SqlError(ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                           "recsys.compare_versions: the " + std::to_string(expected) + " customers of " +
                               month_label(month) + " need more memory than the " + std::to_string(budget) +
                               " bytes recsys.max_batch_memory allows",
                           "Their figures for the paired comparison take " + std::to_string(kept) + " bytes; " +
                               m->label() + " needs " + std::to_string(one) + " bytes to score one customer and " +
                               std::to_string(fetch) + " bytes for a fetch of rows beside them.",
                           "A superuser can raise recsys.max_batch_memory.");
    }

    auto evaluate = [&](const LoadedModel &m) {
        EvaluationOptions options;
        options.batch_size = plan_batch("recsys.compare_versions", m.label(), m.model,
                                        evaluation_bytes(m.model) + BatchBytes{kept, 0}, expected);
        options.outcomes = true;
        options.relation = relation;
        options.expected_customers = expected;
        options.poll = interrupt_poll();
        SpiCustomerSource source(*m.reader, m.model);
        return evaluate_month(m.model, *m.encoder, source, month, options);
    };
    const MonthEvaluation a = evaluate(*candidate);
    const CustomerOutcomes &ao = *a.outcomes;
    if (ao.ids.empty())
        throw SqlError(ERRCODE_NO_DATA_FOUND, "no customer has snapshots in both " + month_label(month - 1) + " and " +
                                                  month_label(month) + " in " + relation);
    std::optional<MonthEvaluation> b;
    if (baseline) {
        b.emplace(evaluate(*baseline));
        const CustomerOutcomes &bo = *b->outcomes;
        if (bo.ids != ao.ids || bo.fingerprint != ao.fingerprint)
            throw SqlError(ERRCODE_DATA_EXCEPTION,
                           "the two versions were evaluated on different customers of " + relation + " in " +
                               month_label(month),
                           std::to_string(ao.ids.size()) + " customers for version " + std::to_string(candidate_version) +
                               ", " + std::to_string(bo.ids.size()) + " for version " +
                               std::to_string(baseline_version) + ".",
                           "The relation changed while it was read; run the comparison again.");
    }
    spi_finish();

    const uint64_t customers = a.lstm.customers(), adders = a.lstm.adders();
    std::string difference = "null", subpopulations;
    if (b) {
        const PollFn poll = interrupt_poll();
        const DifferenceInterval overall =
            paired_bootstrap(ao.average_precision.data(), b->outcomes->average_precision.data(), nullptr, ao.ids.size(),
                             uint32_t(resamples), confidence, uint64_t(seed), poll);
        difference = "{\"mean\": " + json_number(overall.difference) + ", \"low\": " + json_number(overall.low) +
                     ", \"high\": " + json_number(overall.high) + "}";
        subpopulations = compared_subpopulations_json(
            compare_subpopulations(ao.groups, ao.average_precision.data(), b->outcomes->average_precision.data(),
                                   ao.adder.data(), uint32_t(resamples), subpopulation_confidence, uint64_t(seed), poll));
    } else {
        subpopulations = candidate_subpopulations_json(ao);
    }
    const std::string json =
        "{\"relation\": " + json_string(relation) + ", \"month\": " + json_string(date_text(month)) +
        ", \"customers\": " + std::to_string(customers) + ", \"adders\": " + std::to_string(adders) +
        ", \"fingerprint\": " + json_string(to_hex(ao.fingerprint)) + ", \"resamples\": " + std::to_string(resamples) +
        ", \"confidence\": " + json_number(confidence) +
        ", \"subpopulation_confidence\": " + json_number(subpopulation_confidence) + ", \"seed\": " + std::to_string(seed) +
        ", \"candidate\": " + metrics_json(candidate_version, a.lstm) +
        ", \"baseline\": " + (b ? metrics_json(baseline_version, b->lstm) : std::string("null")) +
        ", \"difference\": " + difference + ", \"subpopulations\": " + subpopulations + "}";
    const char *json_text = json.c_str();
    return pg_call([&] { return DirectFunctionCall1(jsonb_in, CStringGetDatum(json_text)); });
}
