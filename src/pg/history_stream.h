// Streams a model's source rows (a SourceReader::batch_query, ordered by id and month)
// through a HistoryBatch in cursor fetches of recsys.fetch_rows rows (fewer when
// recsys.max_batch_memory requires), handing complete customers to the caller in groups, so
// memory stays bounded whatever the relation's size.
#pragma once

#include <string>

#include "guard.h"
#include "history.h"
#include "memory_budget.h"
#include "model.h"
#include "settings.h"
#include "source_reader.h"

namespace recsys::pg {

// Calls on_batch(history, n) whenever at least `group` complete customers are buffered, or
// when the complete customers hold group x (window + 1) rows (what memory_budget.h counts
// per customer; customers with longer histories come in smaller groups), and once at the
// end: customers [0, n) of `history` are complete (all their rows read); they are dropped
// after the call. Polls for cancellation between fetches. rows_read may be null.
template <typename OnBatch>
void stream_history(SourceReader &reader, const Model &model, const std::string &sql, int nargs, Oid *types,
                    Datum *args, size_t group, uint64_t *rows_read, OnBatch on_batch) {
    HistoryBatch history;
    history.reset(model.features.size(), model.product_count());
    // A fast-start plan: the rows are consumed in (id, month) order as they come, so the
    // (id, month) index serves the ORDER BY; without it the planner sorts a range of ids (a
    // parallel score_all's slice) in full before the first row, spilling to disk.
    Portal portal = pg_call([&] {
        return SPI_cursor_open_with_args(nullptr, sql.c_str(), nargs, types, args, nullptr, true, CURSOR_OPT_FAST_PLAN);
    });
    const long fetch = fetch_rows_within_budget(model);
    const size_t row_limit = group * (size_t(model.window_months) + 1);
    BatchRowReceiver receiver(reader);
    for (;;) {
        check_for_interrupts();
        const uint64_t rows = receiver.fetch(portal, fetch, history);
        if (rows == 0) break;
        if (rows_read) *rows_read += rows;
        // The last customer's rows may continue in the next fetch.
        if (history.customer_count() > group ||
            (history.customer_count() > 1 && history.row_begin[history.customer_count() - 1] >= row_limit)) {
            const size_t complete = history.customer_count() - 1;
            on_batch(history, complete);
            history.drop_first_customers(complete);
        }
    }
    if (history.customer_count() > 0) on_batch(history, history.customer_count());
    pg_call([&] { SPI_cursor_close(portal); });
}

}  // namespace recsys::pg
