// Per-backend cache of parsed models, keyed by (name, version) and checked against the
// registry's SHA-256, so a model is parsed once per backend and reused; bounded by
// recsys.model_cache_size models and recsys.model_cache_memory bytes.
//
// Which version is "production" is resolved through the registry and remembered until the
// registry table changes: recsys.models carries a trigger that sends a relcache
// invalidation for the table on every change, and the callback registered here bumps a
// generation counter. Each statement's first call takes in pending invalidations, so the
// first statement that starts after a promote or rollback commits scores with the new
// version, inside an explicit transaction too; one statement scores with one version
// (docs/cpp-in-postgres.md, "model cache").
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "feature_encoder.h"
#include "history.h"
#include "lstm_forward.h"
#include "model.h"
#include "postgres_headers.h"
#include "source_reader.h"

namespace recsys::pg {

// "model "name" version N": how error messages name a model version.
std::string model_label(const std::string &name, int32_t version);

struct LoadedModel {
    std::string name;
    int32_t version = 0;
    std::string sha256_hex;
    size_t bytes = 0;  // what the cache counts against recsys.model_cache_memory
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
};

// Returns the model to score with. version < 0 means the production version of `name`.
// Needs an open SPI connection. Raises a clear error for an unknown model or version, or
// when the model has no production version.
std::shared_ptr<LoadedModel> acquire_model(const std::string &name, int32_t version);

// Raises 42501 unless the model's registrant may SELECT every column the model reads: batch
// scoring, whose results are stored and shared, never runs with more rights than the role
// that registered the model (the caller's own rights apply to the read as well).
void require_registrant_can_read(const LoadedModel &m);

// Registers the relcache callback; called from _PG_init.
void register_model_cache_callbacks();

// Sends the invalidation that tells every backend the registry changed (from the trigger).
void invalidate_registry_everywhere(Oid registry_relid);

}  // namespace recsys::pg
