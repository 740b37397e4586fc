// Shadow scoring (recsys.set_shadow, docs/lifecycle.md "Shadow scoring"): a sampled share of
// the production-version calls of recommend() and recommend_scores() also scores the customer
// with the shadow version and logs both rankings in recsys.shadow_log. The caller always gets
// production's result, and the shadow never fails the caller's call (a cancel excepted).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model_cache.h"
#include "ranking.h"

namespace recsys::pg {

// ---- Logging plumbing shared by the sampled online logs (shadow scoring, the prediction log)

// Backend-local counts of one sampled logging path, shown by an SQL function. A shared-memory
// counter would need shared_preload_libraries; these answer "is it logging in my session?",
// and the logged table itself is the cluster-wide record.
struct LogCounters {
    int64_t sampled = 0;            // calls drawn
    int64_t logged = 0;             // rows written
    int64_t skipped_read_only = 0;  // drawn in a read-only transaction or on a hot standby
    int64_t errors = 0;             // the logging failed (the call itself still succeeded)
    bool warned = false;            // the one WARNING per backend has been raised
};

// Runs write() for a drawn call: counts it as sampled; in a read-only transaction or on a hot
// standby skips it and counts the skip (a read-only query stays a successful one); otherwise
// runs it inside a subtransaction (BeginInternalSubTransaction, as PL/pgSQL's exception
// blocks do). A failure rolls back the subtransaction only and is counted; the first one of
// the backend is reported by warn(message), which must raise at most a WARNING. A cancel or
// statement_timeout is rethrown: it stops the caller's statement, as it would without logging.
// Needs the caller's open SPI connection if write() uses SPI.
void run_logged_write(LogCounters &counters, const std::function<void()> &write,
                      const std::function<void(const std::string &)> &warn);

// Executes `sql`, a fixed, schema-qualified INSERT, through a plan saved in *plan (prepared and
// kept on first use) with the rights of the registry's owner: the roles calling the scoring
// functions have no right on the logs. `what` names the statement in internal errors.
void insert_as_registry_owner(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types, Datum *values,
                              const char *what);

// real[] of the scores of a ranking, in rank order.
Datum ranked_scores_array(const std::vector<Ranked> &ranked);

// The first day of a month index (year * 12 + month - 1).
DateADT first_day_of_month(int32_t month);

// (sampled, logged, skipped_read_only, errors) as the composite result of an SQL function.
Datum log_counters_datum(FunctionCallInfo fcinfo, const LogCounters &counters, const char *function);

// ---- Shadow scoring

// Scores one customer into m.scores / m.held with the model's preallocated buffers (the
// single-customer forward of recommend()).
using ScoreSingleFn = void (*)(LoadedModel &m, int64_t customer_id);

// Whether this call is shadowed: a branch when no shadow is set, one draw of the backend's
// PRNG otherwise. Never in parallel mode (neither a worker nor the leader of a parallel query
// may write or start a subtransaction), nor when the shadow version has become production.
inline bool shadow_drawn(const ShadowSetting &shadow, int32_t production_version) {
    if (likely(shadow.version <= 0)) return false;
    if (shadow.version == production_version || IsInParallelMode()) return false;
    return pg_prng_double(&pg_global_prng_state) < shadow.sample;
}

// For a drawn call: production has just scored customer_id (production.history holds the
// customer's snapshots) and ranked it as `ranked` (k asked for). Scores the customer with the
// shadow version and inserts one row into recsys.shadow_log as the registry's owner, inside a
// subtransaction; skips the write in a read-only transaction or on a hot standby. Failures are
// counted (recsys.shadow_counters()), and reported by one WARNING per backend. Needs the
// caller's open SPI connection.
void shadow_score_and_log(const ShadowSetting &shadow, const LoadedModel &production, int64_t customer_id,
                          const std::vector<Ranked> &ranked, uint32_t k, ScoreSingleFn score_single);

}  // namespace recsys::pg
