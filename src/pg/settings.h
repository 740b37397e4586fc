// recsys's configuration parameters (GUCs), defined in module.cpp.
#pragma once

namespace recsys::pg::settings {

extern int batch_size;        // recsys.batch_size: customers scored per GEMM batch
extern int model_cache_size;  // recsys.model_cache_size: parsed models kept per backend
extern int model_cache_memory_kb;  // recsys.model_cache_memory: bytes of parsed models kept per backend (kB)
extern int fetch_rows;        // recsys.fetch_rows: rows read from the source per cursor fetch
extern int max_batch_memory_kb;  // recsys.max_batch_memory: batch buffers one call may use (kB)
extern int parallel_workers;  // recsys.parallel_workers: workers score_all starts (-1: one fewer than the CPUs)
extern double log_sample_rate;  // recsys.log_sample_rate: share of online calls logged in recsys.prediction_log

extern int reduced_precision_kernels;  // recsys.reduced_precision_kernels: auto, avx2 or none (a cap)

}  // namespace recsys::pg::settings
