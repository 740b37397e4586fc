// The model's source relation as a CustomerSource (src/core/customer_source.h): each
// for_each_customer() opens an SPI cursor over the requested months (ordered by id and month)
// and streams it through a HistoryBatch (history_stream.h), so memory holds one fetch of rows,
// never the relation. Needs an open SPI connection.
#pragma once

#include <cstdint>

#include "customer_source.h"
#include "model.h"
#include "source_reader.h"

namespace recsys::pg {

class SpiCustomerSource : public CustomerSource {
public:
    // max_id >= 0 limits the customers read to ids <= max_id (train()'s max_customers).
    SpiCustomerSource(SourceReader &reader, const Model &model, int64_t max_id = -1)
        : reader_(reader), model_(model), max_id_(max_id) {}

    uint64_t for_each_customer(int32_t first_month, int32_t end_month, const CustomerFn &on_customer) override;

private:
    SourceReader &reader_;
    const Model &model_;
    int64_t max_id_;
};

}  // namespace recsys::pg
