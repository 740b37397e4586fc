// SQL functions of reduced-precision scoring (docs/reduced-precision.md): the bytes of a model
// at another precision (the registry's recsys.register_reduced_precision derives a new version
// with it), and what this CPU runs for each precision.
#include <string>
#include <vector>

#include "errors.h"
#include "guard.h"
#include "model_format.h"
#include "reduced_precision.h"
#include "sql_values.h"

using namespace recsys;
using namespace recsys::pg;

// recsys.model_with_precision(model bytea, precision text) -> bytea: the same model (feature
// spec, products, float32 weights) marked to score in `precision`. The float32 weights are
// kept, so the result at 'fp32' of a derived model is the original bytes.
RECSYS_FUNCTION(recsys_model_with_precision) {
    std::vector<uint8_t> bytes;
    pg_call([&] {
        bytea *b = PG_GETARG_BYTEA_PP(0);
        const uint8_t *p = reinterpret_cast<const uint8_t *>(VARDATA_ANY(b));
        bytes.assign(p, p + VARSIZE_ANY_EXHDR(b));
    });
    const WeightPrecision precision = parse_precision(text_arg(fcinfo, 1));
    Model model = parse_model(bytes.data(), bytes.size());
    model.precision = precision;
    return bytea_datum(serialize_model(model));
}

// recsys.precision_kernel(precision text) -> text: the kernel this backend would score a model
// of that precision with ('fp32' for float32: OpenBLAS sgemm), under
// recsys.reduced_precision_kernels; 0A000 naming what the CPU lacks when there is none.
RECSYS_FUNCTION(recsys_precision_kernel) {
    const WeightPrecision precision = parse_precision(text_arg(fcinfo, 0));
    const std::string kernel =
        precision == WeightPrecision::Fp32 ? "sgemm" : kernel_name(choose_kernel(precision, CpuFeatures::usable()));
    return pg_call([&] { return PointerGetDatum(cstring_to_text_with_len(kernel.data(), int(kernel.size()))); });
}
