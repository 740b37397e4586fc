// The default feature set for a Santander-shaped relation (docs/data.md): which columns a
// model reads and how each is encoded. Statistics (means, standard deviations,
// vocabularies) are fitted from the training months by the caller.
#pragma once

#include <cstdint>
#include <vector>

#include "model.h"

namespace recsys {

// Static features from the customer's latest month: age, log income, tenure, activity,
// new-customer flag, sex and segment. With the 24 products and their "added" flags as the
// step input this gives the reference shape: 48 inputs a step, 16 static inputs.
std::vector<FeatureSpec> santander_default_features();

// A model skeleton over `source` with the default features and all 24 products; weights
// are sized but zero (fill them with initialize_weights() or training).
Model santander_model_skeleton(const SourceSpec &source, uint32_t window_months, uint32_t hidden, uint32_t layers);

// Sizes every weight array of `model` from its dimensions, zero-filled.
void size_weights(Model &model);

}  // namespace recsys
