// Month evaluation shared by recsys.train (validation after each epoch) and recsys.evaluate:
// streams the source relation, scores every customer with snapshots in month - 1 and month
// (inputs end at month - 1) and compares the top 7 with the products actually added in month.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "guard.h"
#include "history_stream.h"
#include "settings.h"

#include "batch_memory.h"
#include "feature_encoder.h"
#include "history.h"
#include "metrics.h"
#include "model.h"
#include "source_reader.h"

namespace recsys::pg {

constexpr uint32_t kEvaluationK = 7;

// A mini-batch of (customer, window end) examples in the LSTM's input layout. Examples are
// encoded one at a time (each may end at a different month) and laid out time-major by
// finish().
class ExampleBatch {
public:
    ExampleBatch(const FeatureEncoder &encoder, size_t capacity, uint32_t products);
    // What the constructor allocates for a model's examples: per_customer x capacity bytes.
    static BatchBytes buffer_bytes(const Model &model);

    size_t size() const { return n_; }
    bool full() const { return n_ == capacity_; }
    void clear() { n_ = 0; }

    // Adds customer c of `history`, its window ending at as_of. Returns the example's slot.
    size_t add(const HistoryBatch &history, size_t c, int32_t as_of);
    // Lays the examples out time-major (T x size() x step_width) for the LSTM.
    void finish();

    const float *steps() const { return steps_.data(); }
    const float *statics() const { return statics_.data(); }
    uint8_t *held(size_t slot) { return held_.data() + slot * products_; }
    float *labels(size_t slot) { return labels_.data() + slot * products_; }
    float *mask(size_t slot) { return mask_.data() + slot * products_; }
    const float *labels() const { return labels_.data(); }
    const float *mask() const { return mask_.data(); }
    int64_t customer(size_t slot) const { return customers_[slot]; }
    // Sequence lengths for models whose history runs from a start month, else nullptr.
    const uint32_t *lengths() const { return from_start_ ? lengths_.data() : nullptr; }

private:
    const FeatureEncoder &encoder_;
    size_t capacity_, n_ = 0;
    uint32_t products_, T_, W_;
    // Batch buffers, allocated without initialisation (every slot is written by add()).
    Buffer<float> staged_;  // capacity x T x W, example-major
    Buffer<float> steps_, statics_, labels_, mask_;
    Buffer<uint8_t> held_;
    Buffer<int64_t> customers_;
    Buffer<int32_t> end_month_;
    Buffer<uint32_t> lengths_;
    bool from_start_;
};

struct MonthEvaluation {
    RankingMetrics lstm, popularity, segment_popularity;
    uint64_t rows = 0;
    MonthEvaluation(uint32_t products) : lstm(products, kEvaluationK), popularity(products, kEvaluationK),
                                         segment_popularity(products, kEvaluationK) {}
};

// Index of customer c's row for `month` in history, or -1.
long find_month_row(const HistoryBatch &history, size_t c, int32_t month);

// Evaluates `model` (its current weights) on `month`. With baselines, also ranks by global
// add counts over the 12 months before `month` and by the same counts per value of the
// model's "segmento" feature (global counts for a segment without adds). max_id >= 0 limits
// the customers read to ids <= max_id. Needs an open SPI connection.
MonthEvaluation evaluate_month(const Model &model, SourceReader &reader, const FeatureEncoder &encoder, int32_t month,
                               bool baselines, int64_t max_id, size_t batch_size);
// What evaluate_month allocates for batches of scored customers (its LstmForward, examples,
// added flags and scores), for sizing batch_size to recsys.max_batch_memory. Not counted: the
// baselines' per-customer flags, which grow with the customers of the month (2P + 4 bytes each).
BatchBytes evaluation_bytes(const Model &model);

// Streams `sql` (a SourceReader::batch_query, ordered by id and month) through a
// HistoryBatch, calling on_customer(history, c) for every customer once all its rows are
// read; only the current fetch's customers are in memory. Polls for cancellation.
template <typename OnCustomer>
void stream_customers(SourceReader &reader, const Model &model, const std::string &sql, uint64_t *rows_read,
                      OnCustomer on_customer) {
    stream_history(reader, model, sql, 0, nullptr, nullptr, 1, rows_read, [&](HistoryBatch &history, size_t n) {
        for (size_t c = 0; c < n; ++c) on_customer(history, c);
    });
}

}  // namespace recsys::pg
