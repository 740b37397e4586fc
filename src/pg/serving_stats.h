// Serving statistics (recsys.serving_stats): per database, model, version and entry point,
// calls, customers scored, errors by SQLSTATE and a latency histogram of server time; per model
// version, loads, cache hits and misses and the bytes of parsed models cached across backends.
// Aggregated over all backends in shared memory, which needs shared_preload_libraries =
// 'recsys' (docs/monitoring.md, "Serving statistics").
//
// How calls are seen:
//   - the C entry points are defined with RECSYS_SERVING_FUNCTION (guard.h): run_guarded()
//     calls call_begin() before the body and call_end() after it, with the SQLSTATE of the
//     error when the body failed (every error of a body reaches the guard's catch: C++
//     exceptions, and PostgreSQL errors as PgError from pg_call, a cancel among them);
//   - the PL/pgSQL entry points (refresh_recommendations, advance_month) through PostgreSQL's
//     fmgr hook, whose abort event sees every error raised inside them;
//   - a call made inside another tracked call (score_all inside refresh_recommendations) is
//     counted as part of the outer one: its model, version and customers go to the outer call.
// The bodies say which model version the call used (acquire_model does) and how many
// customers it scored (note_customers).
//
// Everything here is noexcept and cheap when nothing is preloaded or recsys.serving_stats is
// off. Only model_handle() allocates (and may throw std::bad_alloc).
#pragma once

#include <cstdint>
#include <string>

namespace recsys::pg::serving {

// Kept in this order: the SQL view shows entry_names[] (serving_stats.cpp).
enum class EntryPoint : int {
    Recommend,
    RecommendScores,
    RecommendMany,
    ScoreAll,
    Refresh,           // recsys.refresh_recommendations (PL/pgSQL, fmgr hook)
    AdvanceMonth,      // recsys.advance_month (PL/pgSQL, fmgr hook)
    AdvanceCustomer,
    ScoreCustomer,
    Count
};

// A model version's statistics handles, kept per backend for its lifetime (the model cache's
// LoadedModel points at one): the shared entries it found, so that a call takes no lock.
struct ModelHandle;

// From _PG_init: defines the settings; while preloading, requests shared memory and installs
// the shared memory and fmgr hooks.
void init_module();

// Around one call of an entry point (run_guarded): call_begin returns a token for call_end,
// negative when the call is not tracked. sqlstate is 0 when the call succeeded.
int call_begin(int entry_point) noexcept;
void call_end(int token, int sqlstate) noexcept;

// The model name the running call asked for, for its errors before a version is resolved
// (those count under version 0, shown as NULL).
void note_model_name(const std::string &name) noexcept;
// Customers scored by the running call.
void note_customers(uint64_t customers) noexcept;
// How the running call scored one customer of a from-start model: continuing a stored state
// (recsys.customer_states) or running the customer's full history.
void note_scoring_path(bool from_stored_state) noexcept;

// The model cache: the handle of a model version (nullptr when statistics are unavailable);
// a lookup served from the cache, one that was not, a parse; bytes of parsed models added
// (delta > 0) or freed.
ModelHandle *model_handle(const std::string &name, int32_t version);
void cache_hit(ModelHandle *handle) noexcept;
void cache_miss(ModelHandle *handle) noexcept;
void model_loaded(ModelHandle *handle) noexcept;
void cached_bytes_changed(ModelHandle *handle, int64_t delta) noexcept;

}  // namespace recsys::pg::serving
