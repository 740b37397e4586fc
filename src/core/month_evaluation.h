// Month evaluation shared by training (validation after each epoch), recsys.evaluate and
// recsys.compare_versions: scores every customer with snapshots in month - 1 and month (inputs
// end at month - 1) and compares the top 7 with the products actually added in month.
// Optionally it keeps, per evaluated customer, what a paired comparison of two versions
// needs: the customer's average precision, whether it added anything, its subpopulations,
// and a fingerprint of the evaluated rows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "batch_memory.h"
#include "customer_source.h"
#include "feature_encoder.h"
#include "metrics.h"
#include "model.h"
#include "paired_comparison.h"
#include "polled_gemm.h"
#include "sha256.h"

namespace recsys {

constexpr uint32_t kEvaluationK = 7;
// The column whose vocabulary code is a customer's segment: the per-segment popularity
// baseline ranks by it, and it is the "segment" subpopulation.
constexpr const char *kSegmentColumn = "segmento";
// Months of adds the popularity baselines count and the "add_history" subpopulation looks at:
// the 12 months before the evaluated one.
constexpr int32_t kHistoryMonths = 12;

struct EvaluationOptions {
    // Customers scored together (sized by the caller to its memory budget).
    size_t batch_size = 256;
    // Also rank by global add counts over the kHistoryMonths months before `month` and by the
    // same counts per segment (global counts for a segment without adds, or when the model
    // has no "segmento" feature).
    bool baselines = false;
    // Keep per-customer outcomes and the fingerprint (MonthEvaluation::outcomes).
    bool outcomes = false;
    // The relation evaluated on, as named in the fingerprint.
    std::string relation;
    // Customers the caller expects (0: unknown): the outcome arrays reserve that many, so
    // that what they hold is what the caller counted.
    size_t expected_customers = 0;
    // Called between batches (and inside the LSTM's work); may throw to stop.
    PollFn poll;
};

// The SHA-256 fingerprint of an evaluation set, over a fixed little-endian byte layout:
//   header = "recsys evaluation set 1" (23 ASCII bytes), u32 byte length of the relation
//            name, the name's bytes, i32 month index (year * 12 + month - 1), u32 P (products)
//   record = i64 customer id, P bytes: the products held in month - 1 (0/1), P bytes: the
//            products added in month (0/1); one per evaluated customer, in id order.
// Records are hashed in chunks of kChunk customers, chained, so memory stays bounded:
//   d = SHA-256(header); for each chunk: d = SHA-256(d || the chunk's records);
//   fingerprint = SHA-256(d || u64 number of customers).
// The rows two versions are compared on are the same exactly when the fingerprints are.
class EvaluationFingerprint {
public:
    static constexpr size_t kChunk = 4096;
    EvaluationFingerprint(const std::string &relation, int32_t month, uint32_t products);
    void add(int64_t customer, const uint8_t *held_before, const uint8_t *added);
    Sha256Digest finish();

private:
    void flush();
    uint32_t products_;
    uint64_t customers_ = 0;
    Sha256Digest chained_;
    std::vector<uint8_t> chunk_;  // chained_ followed by the pending records
};

// Per evaluated customer, in id order.
struct CustomerOutcomes {
    std::vector<int64_t> ids;
    std::vector<double> average_precision;  // AP@7 of the model's ranking (average_precision_at_k)
    std::vector<uint8_t> adder;             // 1 when the customer added at least one product
    Subpopulations groups;                  // dimensions: subpopulation_dimensions(model)
    Sha256Digest fingerprint{};

    explicit CustomerOutcomes(std::vector<std::string> dimensions) : groups(std::move(dimensions)) {}
    // Bytes kept per customer with `dimensions` subpopulation dimensions (at most, when the
    // caller passed expected_customers).
    static size_t bytes_per_customer(size_t dimensions);
};

struct MonthEvaluation {
    RankingMetrics lstm, popularity, segment_popularity;
    uint64_t rows = 0;  // rows the source read
    std::optional<CustomerOutcomes> outcomes;
    explicit MonthEvaluation(uint32_t products)
        : lstm(products, kEvaluationK), popularity(products, kEvaluationK), segment_popularity(products, kEvaluationK) {}
};

// The subpopulation dimensions of a model's customers, in this order, each only when the
// model reads its column (values from the customer's row of month - 1):
//   "segment"     segmento (categorical): its label; NULL or unknown -> "unknown"
//   "age_band"    age (numeric): age_band()
//   "income_band" renta (numeric): income_band()
//   "tenure"      antiguedad (numeric, months): tenure_band()
//   "channel"     canal_entrada (categorical): its label; NULL or unknown -> "unknown"
// and always "add_history": "added before" when the customer added a product in one of the
// kHistoryMonths months before `month` (a month compared with the month before it, both
// present), else "no add in history".
std::vector<std::string> subpopulation_dimensions(const Model &model);

// The first month of rows evaluate_month() reads (it reads up to and including `month`):
// the window before month, from the start month for a from-start model, and the
// kHistoryMonths + 1 months before month with baselines or outcomes.
int32_t evaluation_first_month(const Model &model, int32_t month, const EvaluationOptions &options);

// Evaluates `model` (its current weights; encoder built on it) on `month` with the customers
// of `source`.
MonthEvaluation evaluate_month(const Model &model, const FeatureEncoder &encoder, CustomerSource &source, int32_t month,
                               const EvaluationOptions &options);

// What evaluate_month allocates for batches of scored customers (its LstmForward, examples,
// added flags and scores), for sizing batch_size to a memory budget. Not counted: the
// baselines' per-customer flags (2P + 4 bytes each) and the outcomes
// (CustomerOutcomes::bytes_per_customer), which grow with the customers of the month.
BatchBytes evaluation_bytes(const Model &model);

}  // namespace recsys
