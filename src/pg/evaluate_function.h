// recsys.evaluate() and what recsys.compare_versions() shares with it: which month a call
// evaluates on. The evaluation itself is the core's (src/core/month_evaluation.h), fed by the
// relation through an SpiCustomerSource.
#pragma once

#include <cstdint>

#include "source_reader.h"

namespace recsys::pg {

// The month to evaluate on: `requested` (a month index), or the relation's latest month when
// requested < 0. Raises 02000 (no_data_found) when the relation is empty or lacks the month or
// the month before it. Needs an open SPI connection.
int32_t resolve_evaluation_month(const SourceReader &reader, int32_t requested);

}  // namespace recsys::pg
