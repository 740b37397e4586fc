#include "spi_customer_source.h"

#include "history_stream.h"
#include "sql_text.h"

namespace recsys::pg {

uint64_t SpiCustomerSource::for_each_customer(int32_t first_month, int32_t end_month, const CustomerFn &on_customer) {
    std::string where = reader_.months_between(first_month, end_month);
    if (max_id_ >= 0) where += " AND " + reader_.id_sql() + sql::op("<=") + sql::int8_literal(max_id_);
    uint64_t rows = 0;
    stream_history(reader_, model_, reader_.batch_query(where), 0, nullptr, nullptr, 1, &rows,
                   [&](HistoryBatch &history, size_t n) {
                       for (size_t c = 0; c < n; ++c) on_customer(history, c);
                   });
    return rows;
}

}  // namespace recsys::pg
