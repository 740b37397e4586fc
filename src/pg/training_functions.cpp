// SQL-callable model construction: a model over a Santander-shaped relation with its
// feature spec fitted to the data and weights initialised from a seed.
#include "guard.h"
#include "feature_fitting.h"
#include "batch_memory.h"
#include "lstm_training.h"
#include "memory_budget.h"
#include "model_format.h"
#include "santander_features.h"
#include "source_reader.h"
#include "sql_values.h"

using namespace recsys;
using namespace recsys::pg;

// recsys.untrained_model(source, window_months, hidden, layers, seed, until, id_column,
// month_column) -> bytea: the default Santander feature set fitted to the source's rows up
// to `until`, with random weights. Training starts from it; the demo serves it until then.
RECSYS_FUNCTION(recsys_untrained_model) {
    for (int i = 0; i < 8; ++i)
        if (i != 5 && PG_ARGISNULL(i))
            throw SqlError(ERRCODE_NULL_VALUE_NOT_ALLOWED, "only until and start_month may be NULL");
    SourceSpec source{text_arg(fcinfo, 0), text_arg(fcinfo, 6), text_arg(fcinfo, 7)};
    const int32_t window = PG_GETARG_INT32(1), hidden = PG_GETARG_INT32(2), layers = PG_GETARG_INT32(3);
    const int64_t seed = PG_GETARG_INT64(4);
    check_range("window_months", window, 1, kMaxWindowMonths);
    check_range("hidden", hidden, 1, kMaxHidden);
    check_range("layers", layers, 1, kMaxLayers);
    const int32_t until = PG_ARGISNULL(5) ? -1 : month_of_date(PG_GETARG_DATEADT(5));

    Model model = santander_model_skeleton(source, uint32_t(window), uint32_t(hidden), uint32_t(layers));
    if (!PG_ARGISNULL(8)) {
        model.history = HistoryMode::FromStartMonth;
        model.start_month = month_of_date(PG_GETARG_DATEADT(8));
        check_start_month(model.start_month);
    }
    // The weights and their serialized copy are allocated at once: bounded like any batch.
    const size_t weights = weight_bytes(model), budget = max_batch_memory_bytes();
    if (2 * weights > budget)
        throw SqlError(ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                       "a model with hidden " + std::to_string(hidden) + ", layers " + std::to_string(layers) + " has " +
                           std::to_string(weights) + " bytes of weights; building it needs twice that, more than the " +
                           std::to_string(budget) + " bytes recsys.max_batch_memory allows",
                       "", "Choose fewer hidden units or layers, or have a superuser raise recsys.max_batch_memory.");
    spi_connect();
    {
        SourceReader reader(model, "the new model");
        model.source.relation = reader.relation_name();
        fit_feature_statistics(model, reader, until);
    }
    spi_finish();
    size_weights(model);
    initialize_weights(model, uint64_t(seed));
    return bytea_datum(serialize_model(model));
}
