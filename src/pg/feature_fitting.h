// Fitting a feature spec to data: means and standard deviations of numeric features (after
// their clip and transform, exactly as the encoder applies them) and the vocabularies of
// categorical features, computed in SQL over the training months only.
#pragma once

#include <string>

#include "model.h"
#include "source_reader.h"

namespace recsys::pg {

constexpr size_t kMaxFittedVocabulary = 64;  // the most frequent values; the rest map to "unknown"

// until_month < 0: every row; else rows whose month index <= until_month.
void fit_feature_statistics(Model &model, const SourceReader &reader, int32_t until_month);

}  // namespace recsys::pg
