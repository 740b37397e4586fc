// The per-call memory budget (recsys.max_batch_memory): batch sizes and fetch sizes are
// chosen so that a call's batch buffers fit in it, computed before anything is allocated from
// the core's buffer_bytes() functions (src/core/batch_memory.h).
//
// A call's batch memory = fixed + per_customer x batch + one cursor fetch of snapshot rows.
// The fetch takes at most a quarter of the budget (recsys.fetch_rows is lowered to fit);
// the batch is min(recsys.batch_size, the customers the call scores, what the rest holds),
// so no setting a scoring role may change can take a call past the budget. A call that
// cannot fit even one customer fails with program_limit_exceeded (54000), naming the figures
// and the setting.
#pragma once

#include <cstddef>
#include <string>

#include "batch_memory.h"
#include "model.h"
#include "polled_gemm.h"

namespace recsys::pg {

// This process's share of recsys.max_batch_memory, in bytes: all of it, or, inside a parallel
// recsys.score_all, 1/participants of it (the calling backend and each worker), so that the
// setting bounds the whole call rather than each process.
size_t max_batch_memory_bytes();

// While one lives, this process holds 1/participants of recsys.max_batch_memory.
class BatchMemoryShare {
public:
    explicit BatchMemoryShare(int participants);
    ~BatchMemoryShare();
    BatchMemoryShare(const BatchMemoryShare &) = delete;
    BatchMemoryShare &operator=(const BatchMemoryShare &) = delete;

private:
    int previous_;
};

// Rows per cursor fetch for this model: recsys.fetch_rows, lowered so that one fetch (the SPI
// tuples and their HistoryBatch rows) takes at most a quarter of the budget.
long fetch_rows_within_budget(const Model &model);
// Estimated bytes of that fetch.
size_t fetch_bytes(const Model &model);

// The batch size for a call of `function` (e.g. "recsys.score_all") with model `label`:
// min(recsys.batch_size, customers, the largest batch whose need.total() fits in the budget
// beside one fetch). customers: how many the call scores (SIZE_MAX when unknown). Raises
// ERROR 54000 when not even one customer fits. Logs the plan at DEBUG1.
size_t plan_batch(const char *function, const std::string &label, const Model &model, const BatchBytes &need,
                  size_t customers);

// Raises ERROR 54000 unless need.total(batch) plus one fetch fits in the budget; for callers
// whose batch size is not ours to lower (train()'s batch_size argument, a batch of examples).
// what names the batch in the message ("batch_size 256"), hint what to change.
void check_batch_fits(const char *function, const std::string &label, const Model &model, const BatchBytes &need,
                      size_t batch, const std::string &what, const std::string &hint);

// Bytes of the single-customer buffers a loaded model keeps for recommend() (an LstmForward
// and an EncodedBatch for one customer), and a check that they fit in the budget (ERROR 54000
// naming the model otherwise), for the model cache to call before allocating them.
size_t single_customer_bytes(const Model &model);
void check_single_customer(const std::string &label, const Model &model);

// The poll every core object that the glue runs gets: check_for_interrupts().
PollFn interrupt_poll();

}  // namespace recsys::pg
