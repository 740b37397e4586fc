// Module entry: configuration parameters, cache callbacks, BLAS threading.
#include <cblas.h>

#include "guard.h"
#include "model_cache.h"
#include "settings.h"

extern "C" {
PG_MODULE_MAGIC;
void _PG_init(void);
}

namespace recsys::pg::settings {
int batch_size = 1024;
int model_cache_size = 8;
int fetch_rows = 20000;
}  // namespace recsys::pg::settings

void _PG_init(void) {
    using namespace recsys::pg;
    // One BLAS thread per backend: PostgreSQL's parallelism is processes (parallel workers,
    // connections), and BLAS threads in a backend would compete with them for the cores.
    openblas_set_num_threads(1);

    DefineCustomIntVariable("recsys.batch_size", "Customers scored together in one batch of matrix products.",
                            "Larger batches use the BLAS better; memory grows linearly with it.",
                            &settings::batch_size, 1024, 1, 65536, PGC_USERSET, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("recsys.model_cache_size", "Parsed models each backend keeps in memory.", nullptr,
                            &settings::model_cache_size, 8, 1, 1024, PGC_USERSET, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("recsys.fetch_rows", "Snapshot rows read from the source relation per fetch in batch scoring.",
                            nullptr, &settings::fetch_rows, 20000, 100, 10000000, PGC_USERSET, 0, nullptr, nullptr,
                            nullptr);
    MarkGUCPrefixReserved("recsys");
    register_model_cache_callbacks();
}
