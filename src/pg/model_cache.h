// Per-backend cache of parsed models, keyed by (name, version) and checked against the
// registry's SHA-256, so a model is parsed once per backend and reused; bounded by
// recsys.model_cache_size models and recsys.model_cache_memory bytes.
//
// Which version is "production" is resolved through the registry and remembered until the
// registry table changes: recsys.models carries a trigger that sends a relcache
// invalidation for the table on every change, and the callback registered here bumps a
// generation counter (recsys.shadow_deployments carries the same trigger, which announces its
// changes as changes of recsys.models). Each statement's first call takes in pending
// invalidations, so the first statement that starts after a promote or rollback commits scores
// with the new version, inside an explicit transaction too; one statement scores with one
// version (docs/cpp-in-postgres.md, "model cache").
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "feature_encoder.h"
#include "history.h"
#include "lstm_forward.h"
#include "model.h"
#include "postgres_headers.h"
#include "serving_stats.h"
#include "source_reader.h"
#include "state_continuation.h"

namespace recsys::pg {

// "model "name" version N": how error messages name a model version.
std::string model_label(const std::string &name, int32_t version);

struct LoadedModel {
    std::string name;
    int32_t version = 0;
    std::string sha256_hex;
    size_t bytes = 0;  // what the cache counts against recsys.model_cache_memory
    // Its figures in recsys.serving_stats (null without shared_preload_libraries = 'recsys').
    serving::ModelHandle *serving = nullptr;
    std::string label() const { return model_label(name, version); }
    Model model;
    std::unique_ptr<FeatureEncoder> encoder;
    std::unique_ptr<SourceReader> reader;
    // Buffers for scoring one customer, allocated once: no model-sized allocation per call.
    std::unique_ptr<LstmForward> single;
    std::vector<float> steps, statics, scores;
    std::vector<uint8_t> held;
    std::vector<int32_t> end_month;
    std::vector<uint32_t> lengths;
    HistoryBatch history;
    // From-start models only (else null): one customer continued from a stored state, or run
    // over a history longer than the window (scoring_functions.cpp), and its state buffer.
    std::unique_ptr<StateContinuation> continuation;
    std::vector<float> state;
};

// The shadow version set beside a model's production version (recsys.set_shadow), as known
// when the production version was resolved: version 0 when there is none.
struct ShadowSetting {
    int32_t version = 0;
    double sample = 0;  // share of production calls also scored with the shadow version, (0, 1]
};

// Returns the model to score with. version < 0 means the production version of `name`.
// Needs an open SPI connection. Raises a clear error for an unknown model or version, or
// when the model has no production version. With version < 0 and shadow non-null, *shadow
// receives the model's shadow setting, read by the same registry lookup and cached and
// invalidated with it (recsys.shadow_deployments carries the registry's trigger), so a
// statement sees one production version and one shadow setting, and knowing the setting
// costs no query per call.
std::shared_ptr<LoadedModel> acquire_model(const std::string &name, int32_t version, ShadowSetting *shadow = nullptr);

// The owner of recsys.models (the extension's owner), as found by the last acquire_model or
// invalidate_registry_everywhere in this backend; InvalidOid before either ran.
Oid registry_owner_role();

// Runs fn with the rights of the registry's owner. Scoring roles may not read model bytes or
// feature specs (recsys_reader sees metadata only), nor write the shadow log; the scoring
// functions read and write those on the caller's behalf, through fixed, schema-qualified
// statements, and never hand them out. The caller's own rights still govern the source
// relation, which is read outside this. Needs registry_owner_role() to be known.
template <typename Fn>
auto as_registry_owner(Fn &&fn) -> decltype(fn()) {
    Oid saved_user;
    int saved_context;
    GetUserIdAndSecContext(&saved_user, &saved_context);
    SetUserIdAndSecContext(registry_owner_role(), saved_context | SECURITY_LOCAL_USERID_CHANGE);
    try {
        if constexpr (std::is_void_v<decltype(fn())>) {
            fn();
            SetUserIdAndSecContext(saved_user, saved_context);
        } else {
            auto result = fn();
            SetUserIdAndSecContext(saved_user, saved_context);
            return result;
        }
    } catch (...) {
        // (A transaction or subtransaction abort would also restore it.)
        SetUserIdAndSecContext(saved_user, saved_context);
        throw;
    }
}

// Raises 42501 unless the model's registrant may SELECT every column the model reads: batch
// scoring, whose results are stored and shared, never runs with more rights than the role
// that registered the model (the caller's own rights apply to the read as well).
void require_registrant_can_read(const LoadedModel &m);

// Registers the relcache callback; called from _PG_init.
void register_model_cache_callbacks();

// Sends the invalidation that tells every backend the registry changed (from the trigger).
void invalidate_registry_everywhere(Oid registry_relid);

}  // namespace recsys::pg
