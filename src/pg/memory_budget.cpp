#include "memory_budget.h"

#include <algorithm>
#include <cstdio>

#include "guard.h"
#include "lstm_forward.h"
#include "settings.h"

namespace recsys::pg {

namespace {

// Processes the budget is shared among (BatchMemoryShare); 1 outside parallel scoring.
int participants = 1;

// One fetched row: its SPI heap tuple (headers, the id and month, one datum per feature and
// product column; numeric and short text columns take well under 16 bytes each) and the row
// it becomes in a HistoryBatch, twice for the vectors' growth.
size_t fetch_row_bytes(const Model &model) {
    return 96 + 16 * (model.features.size() + model.product_count()) + 2 * history_row_bytes(model);
}

size_t fetch_rows_for_budget(const Model &model, size_t budget) {
    const size_t rows = budget / 4 / fetch_row_bytes(model);
    return std::max<size_t>(1, std::min<size_t>(size_t(settings::fetch_rows), rows));
}

std::string describe(const Model &model) {
    return "window " + std::to_string(model.window_months) + " months, hidden " + std::to_string(model.hidden) + ", " +
           std::to_string(model.layers.size()) + (model.layers.size() == 1 ? " layer" : " layers") + ", " +
           std::to_string(model.step_width()) + " inputs per month";
}

std::string kilobytes(size_t bytes) { return std::to_string((bytes + 1023) / 1024) + " kB"; }

// Whose budget a message speaks of: the setting's, or this process's share of it.
std::string budget_name() {
    if (participants == 1) return "recsys.max_batch_memory";
    return "this process's share of recsys.max_batch_memory (" +
           kilobytes(size_t(settings::max_batch_memory_kb) * 1024) + " among " + std::to_string(participants) +
           " processes of a parallel call)";
}

// The least budget (in bytes) in which `need` for `batch` customers and a fetch fit.
size_t least_budget(const Model &model, const BatchBytes &need, size_t batch) {
    const size_t base = need.total(batch);
    size_t budget = base;
    for (int i = 0; i < 64; ++i) {
        const size_t next = base + fetch_rows_for_budget(model, budget) * fetch_row_bytes(model);
        if (next <= budget) break;
        budget = next;
    }
    return (budget + 1023) / 1024 * 1024;
}

[[noreturn]] void too_big(const std::string &message, const char *unit, const Model &model, const BatchBytes &need,
                          const std::string &hint) {
    const size_t budget = max_batch_memory_bytes();
    throw SqlError(ERRCODE_PROGRAM_LIMIT_EXCEEDED, message,
                   "Its buffers take " + std::to_string(need.per_customer) + " bytes per " + unit + " (" +
                       describe(model) + ") plus " + std::to_string(need.fixed) +
                       " bytes whatever the batch size, and a fetch of " +
                       std::to_string(fetch_rows_within_budget(model)) + " snapshot rows about " +
                       std::to_string(fetch_bytes(model)) + " bytes; " + budget_name() + " is " + kilobytes(budget) +
                       ".",
                   hint);
}

}  // namespace

size_t max_batch_memory_bytes() { return size_t(settings::max_batch_memory_kb) * 1024 / size_t(participants); }

BatchMemoryShare::BatchMemoryShare(int n) : previous_(participants) { participants = std::max(1, n); }
BatchMemoryShare::~BatchMemoryShare() { participants = previous_; }

long fetch_rows_within_budget(const Model &model) { return long(fetch_rows_for_budget(model, max_batch_memory_bytes())); }

size_t fetch_bytes(const Model &model) { return size_t(fetch_rows_within_budget(model)) * fetch_row_bytes(model); }

size_t plan_batch(const char *function, const std::string &label, const Model &model, const BatchBytes &need,
                  size_t customers) {
    const size_t budget = max_batch_memory_bytes();
    const BatchBytes with_fetch{need.fixed + fetch_bytes(model), need.per_customer};
    const size_t fit = with_fetch.max_batch(budget);
    if (fit == 0)
        too_big(std::string(function) + ": " + label + " needs " + std::to_string(with_fetch.total(1)) +
                    " bytes for a batch of one customer (" + std::to_string(need.per_customer) +
                    " bytes per customer), more than the " + std::to_string(budget) + " bytes " + budget_name() +
                    " allows",
                "customer", model, need,
                "A superuser can raise recsys.max_batch_memory to " + kilobytes(least_budget(model, need, 1)) +
                    " or more; or use a model with a smaller window or hidden size.");
    const size_t wanted = std::min(size_t(settings::batch_size), std::max<size_t>(customers, 1));
    const size_t batch = std::min(wanted, fit);
    const size_t bytes = with_fetch.total(batch);
    const long fetch = fetch_rows_within_budget(model);
    const std::string whose = budget_name();
    pg_call([&] {
        elog(DEBUG1, "%s: %s: batches of %zu customers (%zu bytes each), fetches of %ld rows: %zu of the %zu bytes "
                     "%s allows",
             function, label.c_str(), batch, need.per_customer, fetch, bytes, budget, whose.c_str());
    });
    return batch;
}

void check_batch_fits(const char *function, const std::string &label, const Model &model, const BatchBytes &need,
                      size_t batch, const std::string &what, const std::string &hint) {
    const size_t budget = max_batch_memory_bytes();
    const BatchBytes with_fetch{need.fixed + fetch_bytes(model), need.per_customer};
    if (with_fetch.total(batch) <= budget) return;
    too_big(std::string(function) + ": " + what + " for " + label + " needs " + std::to_string(with_fetch.total(batch)) +
                " bytes, more than the " + std::to_string(budget) + " bytes " + budget_name() + " allows",
            "example", model, need,
            hint + (hint.empty() ? "" : " ") + "A superuser can raise recsys.max_batch_memory to " +
                kilobytes(least_budget(model, need, batch)) + " or more.");
}

size_t single_customer_bytes(const Model &model) {
    return (LstmForward::buffer_bytes(model) + EncodedBatch::buffer_bytes(model)).total(1);
}

void check_single_customer(const std::string &label, const Model &model) {
    const size_t bytes = single_customer_bytes(model), budget = max_batch_memory_bytes();
    if (bytes <= budget) return;
    throw SqlError(ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                   label + " needs " + std::to_string(bytes) + " bytes to score one customer, more than the " +
                       std::to_string(budget) + " bytes " + budget_name() + " allows",
                   "Its buffers for one customer (" + describe(model) + ").",
                   "A superuser can raise recsys.max_batch_memory to " + kilobytes(bytes) + " or more.");
}

PollFn interrupt_poll() {
    return [] { check_for_interrupts(); };
}

}  // namespace recsys::pg
