// The online path's read of recsys.customer_states: one customer's stored LSTM state for a
// from-start model, when recommend() may use it.
//
// A state is used only when the caller may read recsys.customer_states (SELECT on the table,
// or on each of its columns; row-level security, if enabled, applies since the lookup runs
// with the caller's rights), when it was computed by the very model version that scores, and
// when its shape fits that model. Whether it covers the same history the snapshots show now is
// checked by the caller against the snapshot of the state's month (scoring_functions.cpp).
// Anything else is "no usable state", never an error: the caller runs the full history.
#pragma once

#include <cstdint>
#include <vector>

#include "model_cache.h"

namespace recsys::pg {

struct StoredState {
    int32_t month = 0;               // the state is after this month
    std::vector<float> state;        // model.state_size() floats
    std::vector<uint8_t> products;   // that month's products, P flags
};

// Why a call did not use a stored state (for tests and docs; the counters only count paths).
enum class StateMiss { None, NotPermitted, NoRow, OtherVersion, BadShape };

// Reads the stored state of `customer` for `m` into *out (SPI connected). Returns
// StateMiss::None when *out holds a usable state.
StateMiss read_stored_state(const LoadedModel &m, int64_t customer, StoredState *out);

}  // namespace recsys::pg
