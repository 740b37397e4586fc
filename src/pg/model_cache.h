// Per-backend cache of parsed models, keyed by (name, version) and checked against the
// registry's SHA-256, so a model is parsed once per backend and reused.
//
// Which version is "production" is resolved through the registry and remembered until the
// registry table changes: recsys.models carries a trigger that sends a relcache
// invalidation for the table on every change, and the callback registered here bumps a
// generation counter. PostgreSQL delivers that invalidation to every backend before its
// next statement after the change commits (and to the changing backend at once), so no
// statement scores with a version that a committed promote or rollback replaced.
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

struct LoadedModel {
    std::string name;
    int32_t version = 0;
    std::string sha256_hex;
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

// Registers the relcache callback; called from _PG_init.
void register_model_cache_callbacks();

// Sends the invalidation that tells every backend the registry changed (from the trigger).
void invalidate_registry_everywhere(Oid registry_relid);

}  // namespace recsys::pg
