// Where the month evaluation and the training loop read their customers from: an interface
// that yields complete customers (all their rows of the requested months, ascending), in
// ascending id order, so the core never knows whether they come from an SPI cursor
// (src/pg/spi_customer_source.h) or from memory (the unit tests).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

#include "history.h"

namespace recsys {

// on_customer(history, c): customer c of `history` is complete. `history` may hold other
// customers too (only c is meant for this call); it is valid only during the call.
using CustomerFn = std::function<void(const HistoryBatch &history, size_t c)>;

class CustomerSource {
public:
    virtual ~CustomerSource() = default;

    // Calls on_customer once for every customer with at least one row whose month index lies in
    // [first_month, end_month), with exactly those rows, in ascending id order. Returns the
    // number of rows read. May throw (a cancel, bad data); what was handed out stays handed out.
    virtual uint64_t for_each_customer(int32_t first_month, int32_t end_month, const CustomerFn &on_customer) = 0;
};

}  // namespace recsys
