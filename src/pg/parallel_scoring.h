// recsys.score_all over every core from one SQL call: PostgreSQL parallel workers (a
// ParallelContext, as parallel CREATE INDEX uses) score slices of the customers' id range
// beside the calling backend and send their rankings to it through shared-memory queues.
//
// Workers run in the caller's transaction, snapshot and role (ParallelWorkerMain restores
// them), so a parallel call sees exactly the rows a serial one sees; an error in any worker
// fails the call in the caller (and so rolls back a refresh); a cancel or statement_timeout
// of the caller ends every worker (the transaction's abort destroys the parallel context).
// The call falls back to scoring alone when workers cannot help or are not allowed: see
// score_all_rows().
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model_cache.h"
#include "ranking.h"

namespace recsys::pg {

// What one recsys.score_all call scores: one resolved model version, k products per customer,
// the snapshots up to as_of (when has_as_of), shard `shard` of `shards` of the id range.
struct ScoreAllRequest {
    std::string model_name;
    int32_t version = 0;
    int32_t k = 0;
    bool has_as_of = false;
    DateADT as_of = 0;
    int32_t shard = 0;
    int32_t shards = 1;
};

// Receives one scored customer in the calling backend.
using RankedSink = std::function<void(int64_t customer, const std::vector<Ranked> &ranked)>;

// Scores the request's customers whose ids satisfy id_condition (an SQL condition, empty for
// all), in batches, calling sink for each. Defined beside recsys.score_all
// (scoring_functions.cpp); runs in the calling backend and in each worker. Needs SPI.
void score_all_customers(LoadedModel &m, const ScoreAllRequest &request, const std::string &id_condition,
                         const RankedSink &sink);

// Scores every customer of the request, with parallel workers when recsys.parallel_workers,
// max_parallel_workers and the source allow (see parallel_scoring.cpp), else alone; rows reach
// sink in the calling backend, in id order when it scores alone and in no set order with
// workers. Needs SPI.
void score_all_rows(LoadedModel &m, const ScoreAllRequest &request, const RankedSink &sink);

}  // namespace recsys::pg
