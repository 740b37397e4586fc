// The prediction log (recsys.log_sample_rate, docs/monitoring.md "Prediction log and realized
// quality"): a sampled share of the online calls (recommend(), recommend_scores()) writes what
// it returned to recsys.prediction_log, so that realized quality can be computed once the
// predicted month's snapshots land. Logging never fails the caller's call (a cancel excepted).
#pragma once

#include <cstdint>
#include <vector>

#include "model_cache.h"
#include "ranking.h"
#include "settings.h"

namespace recsys::pg {

// Whether this call is logged. With the default rate 0 this is one branch. Never in parallel
// mode (neither a worker nor the leader of a parallel query may write or start a
// subtransaction). The draw uses the backend's PRNG, as shadow scoring does.
inline bool prediction_log_drawn() {
    const double rate = settings::log_sample_rate;
    if (likely(rate <= 0.0)) return false;
    if (IsInParallelMode()) return false;
    return rate >= 1.0 || pg_prng_double(&pg_global_prng_state) < rate;
}

// For a drawn call: m has just scored customer_id (m.history holds the customer's snapshots)
// and ranked it as `ranked`. Inserts one row into recsys.prediction_log as the registry's
// owner, inside a subtransaction; skipped and counted in a read-only transaction or on a hot
// standby; a failure is counted (recsys.prediction_log_counters()) and reported by one WARNING
// per backend. entry_point: the SQL function's name. Needs the caller's open SPI connection.
void log_prediction(const LoadedModel &m, int64_t customer_id, const std::vector<Ranked> &ranked,
                    const char *entry_point);

}  // namespace recsys::pg
