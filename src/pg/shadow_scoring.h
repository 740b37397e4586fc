// Shadow scoring (recsys.set_shadow, docs/lifecycle.md "Shadow scoring"): a sampled share of
// the production-version calls of recommend() and recommend_scores() also scores the customer
// with the shadow version and logs both rankings in recsys.shadow_log. The caller always gets
// production's result, and the shadow never fails the caller's call (a cancel excepted).
#pragma once

#include <cstdint>
#include <vector>

#include "model_cache.h"
#include "ranking.h"

namespace recsys::pg {

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
