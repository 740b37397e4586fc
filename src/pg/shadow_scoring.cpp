#include "shadow_scoring.h"

#include <algorithm>
#include <exception>
#include <string>

#include "guard.h"
#include "sql_values.h"

namespace recsys::pg {

// ---- Logging plumbing

namespace {

// Ends the subtransaction opened by run_logged_write, as PL/pgSQL's exception blocks do.
void end_subtransaction(bool commit, MemoryContext context, ResourceOwner owner) {
    pg_call([&] {
        if (commit) ReleaseCurrentSubTransaction();
        else RollbackAndReleaseCurrentSubTransaction();
        MemoryContextSwitchTo(context);
        CurrentResourceOwner = owner;
    });
}

}  // namespace

void run_logged_write(LogCounters &counters, const std::function<void()> &write,
                      const std::function<void(const std::string &)> &warn) {
    ++counters.sampled;
    // A read-only query must stay a successful read-only query: no write is attempted where it
    // would fail (a hot standby is always read-only; RecoveryInProgress() for clarity).
    if (XactReadOnly || RecoveryInProgress()) {
        ++counters.skipped_read_only;
        return;
    }
    const MemoryContext context = CurrentMemoryContext;
    const ResourceOwner owner = CurrentResourceOwner;
    // The subtransaction undoes whatever a failure leaves behind (locks, a half-written row,
    // the SPI state of a failed query) without aborting the caller's transaction.
    pg_call([&] {
        BeginInternalSubTransaction(nullptr);
        MemoryContextSwitchTo(context);
    });
    bool failed = true;
    std::string failure;
    try {
        write();
        failed = false;
    } catch (const PgError &e) {
        // A cancel or statement_timeout stops the caller's statement (PL/pgSQL's WHEN OTHERS
        // does not catch it either).
        if (e.edata()->sqlerrcode == ERRCODE_QUERY_CANCELED) {
            const std::exception_ptr cancel = std::current_exception();
            end_subtransaction(false, context, owner);
            std::rethrow_exception(cancel);
        }
        failure = e.what();
    } catch (const std::exception &e) {
        failure = e.what();
    } catch (...) {
        failure = "unexpected C++ exception";
    }
    if (!failed) {
        end_subtransaction(true, context, owner);
        ++counters.logged;
        return;
    }
    end_subtransaction(false, context, owner);
    ++counters.errors;
    if (!counters.warned) {
        counters.warned = true;
        warn(failure);
    }
}

void insert_as_registry_owner(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types, Datum *values,
                              const char *what) {
    as_registry_owner([&] {
        pg_call([&] {
            if (*plan == nullptr) {
                SPIPlanPtr p = SPI_prepare(sql, nargs, types);
                if (p == nullptr) elog(ERROR, "SPI_prepare failed for the %s: %s", what, SPI_result_code_string(SPI_result));
                SPI_keepplan(p);
                *plan = p;
            }
            const int rc = SPI_execute_plan(*plan, values, nullptr, false, 0);
            if (rc != SPI_OK_INSERT) elog(ERROR, "%s failed: %s", what, SPI_result_code_string(rc));
        });
    });
}

Datum ranked_scores_array(const std::vector<Ranked> &ranked) {
    std::vector<float> scores(ranked.size());
    for (size_t i = 0; i < ranked.size(); ++i) scores[i] = ranked[i].score;
    return real_array(scores.data(), scores.size());
}

DateADT first_day_of_month(int32_t month) { return date2j(month / 12, month % 12 + 1, 1) - POSTGRES_EPOCH_JDATE; }

Datum log_counters_datum(FunctionCallInfo fcinfo, const LogCounters &counters, const char *function) {
    return pg_call([&] {
        TupleDesc desc;
        if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE)
            elog(ERROR, "%s must return a composite type", function);
        desc = BlessTupleDesc(desc);
        Datum values[4] = {Int64GetDatum(counters.sampled), Int64GetDatum(counters.logged),
                           Int64GetDatum(counters.skipped_read_only), Int64GetDatum(counters.errors)};
        bool nulls[4] = {false, false, false, false};
        return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
    });
}

// ---- Shadow scoring

namespace {

// Backend-local counts, shown by recsys.shadow_counters().
LogCounters shadow_counters;

// Saved once per backend (SPI_keepplan); schema-qualified, so a cached plan is immune to the
// caller's search_path and re-parsed safely if the extension is re-created.
SPIPlanPtr insert_plan = nullptr;

constexpr const char *kInsertSql =
    "INSERT INTO recsys.shadow_log (name, customer_id, month, production_version, production_products, "
    "production_scores, shadow_version, shadow_products, shadow_scores) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

// Scores the customer with the shadow version and writes the log row. Runs inside the
// subtransaction; any error leaves through an exception.
void score_and_insert(const ShadowSetting &shadow, const LoadedModel &production, int64_t customer_id,
                      const std::vector<Ranked> &ranked, uint32_t k, ScoreSingleFn score_single) {
    // The production history holds the customer's snapshots in ascending month order: the
    // latest month is the one both rankings predict the month after of.
    const int32_t month = production.history.month.back();
    // Its own (name, version) entry of the model cache: the production resolution of this
    // statement stays pinned, and the two models' buffers are distinct (versions differ).
    std::shared_ptr<LoadedModel> s = acquire_model(production.name, shadow.version);
    score_single(*s, customer_id);
    const uint32_t products = s->model.product_count();
    const std::vector<Ranked> shadow_ranked = top_k(s->scores.data(), s->held.data(), products, std::min(k, products));

    Datum values[9];
    values[0] = pg_call([&] { return CStringGetTextDatum(production.name.c_str()); });
    values[1] = Int64GetDatum(customer_id);
    values[2] = DateADTGetDatum(first_day_of_month(month));
    values[3] = Int32GetDatum(production.version);
    values[4] = ranked_names_array(production.model.products, ranked);
    values[5] = ranked_scores_array(ranked);
    values[6] = Int32GetDatum(s->version);
    values[7] = ranked_names_array(s->model.products, shadow_ranked);
    values[8] = ranked_scores_array(shadow_ranked);
    // The caller (recsys_reader) has no INSERT right on the log: the row is written as the
    // registry's owner, through the fixed statement above.
    Oid types[9] = {TEXTOID, INT8OID, DATEOID, INT4OID, TEXTARRAYOID, FLOAT4ARRAYOID, INT4OID, TEXTARRAYOID,
                    FLOAT4ARRAYOID};
    insert_as_registry_owner(&insert_plan, kInsertSql, 9, types, values, "shadow log insert");
}

}  // namespace

void shadow_score_and_log(const ShadowSetting &shadow, const LoadedModel &production, int64_t customer_id,
                          const std::vector<Ranked> &ranked, uint32_t k, ScoreSingleFn score_single) {
    run_logged_write(
        shadow_counters, [&] { score_and_insert(shadow, production, customer_id, ranked, k, score_single); },
        [&](const std::string &failure) {
            const std::string label = model_label(production.name, shadow.version);
            pg_call([&] {
                ereport(WARNING,
                        (errmsg("shadow scoring with %s failed: %s", label.c_str(), failure.c_str()),
                         errdetail("The call returned the production version's result. Further shadow failures in "
                                   "this session are only counted (recsys.shadow_counters())."),
                         errhint("Check the shadow version with recsys.recommend(id, version => %d), or stop it with "
                                 "recsys.set_shadow('%s', NULL).",
                                 shadow.version, production.name.c_str())));
            });
        });
}

}  // namespace recsys::pg

// recsys.shadow_counters() -> (sampled, logged, skipped_read_only, errors): this backend's
// shadow-scoring counts since it started.
RECSYS_FUNCTION(recsys_shadow_counters) {
    return recsys::pg::log_counters_datum(fcinfo, recsys::pg::shadow_counters, "recsys.shadow_counters");
}
