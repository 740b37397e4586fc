// recsys's configuration parameters (GUCs), defined in module.cpp.
#pragma once

namespace recsys::pg::settings {

extern int batch_size;        // recsys.batch_size: customers scored per GEMM batch
extern int model_cache_size;  // recsys.model_cache_size: parsed models kept per backend
extern int fetch_rows;        // recsys.fetch_rows: rows read from the source per cursor fetch

}  // namespace recsys::pg::settings
