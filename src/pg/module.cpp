// Module entry: configuration parameters, cache callbacks, BLAS threading.
#include <cblas.h>

#include <string>

#include "blas_core.h"
#include "guard.h"
#include "model_cache.h"
#include "reduced_precision.h"
#include "serving_stats.h"
#include "settings.h"

extern "C" {
PG_MODULE_MAGIC;
void _PG_init(void);
}

namespace recsys::pg::settings {
int batch_size = 1024;
int model_cache_size = 8;
int model_cache_memory_kb = 256 * 1024;
int fetch_rows = 20000;
int max_batch_memory_kb = 256 * 1024;
int parallel_workers = -1;
double log_sample_rate = 0.0;
int reduced_precision_kernels = 0;
}  // namespace recsys::pg::settings

namespace {

const struct config_enum_entry reduced_precision_kernel_options[] = {
    {"auto", int(recsys::CpuFeatureCap::All), false},
    {"avx2", int(recsys::CpuFeatureCap::Avx2), false},
    {"none", int(recsys::CpuFeatureCap::None), false},
    {nullptr, 0, false},
};

char *blas_core_setting = nullptr;

// recsys.blas_core (read only), and a word in the server log when OpenBLAS chose kernels that
// use less of this CPU than others would (blas_core.h): it cannot be changed from here, only by
// the server's environment, so the DBA must hear of it. A WARNING once when the postmaster
// preloads recsys, a LOG line per backend that loads it otherwise.
void report_blas_core() {
    static const std::string core = recsys::blas_core_name();
    DefineCustomStringVariable("recsys.blas_core", "The kernels OpenBLAS chose for this CPU (openblas_get_corename()).",
                               "OpenBLAS chooses them when it loads; the environment variable OPENBLAS_CORETYPE of the "
                               "server overrides its choice.",
                               &blas_core_setting, core.c_str(), PGC_INTERNAL, GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE,
                               nullptr, nullptr, nullptr);
    const std::string better = recsys::better_blas_core(core, recsys::this_blas_cpu());
    if (better.empty()) return;
    ereport(process_shared_preload_libraries_in_progress ? WARNING : LOG,
            (errmsg("OpenBLAS chose its \"%s\" kernels, which use less of this CPU than its \"%s\" kernels would",
                    core.c_str(), better.c_str()),
             errdetail("OpenBLAS picks kernels by CPU model when it loads and falls back to old ones on models newer "
                       "than itself; recsys's matrix products then run several times slower (sgemm at 29 against 130 "
                       "GFLOP/s on one such CPU)."),
             errhint("Set OPENBLAS_CORETYPE=%s in the PostgreSQL server's environment (on Debian in "
                     "/etc/postgresql/15/<cluster>/environment) and restart it; SHOW recsys.blas_core tells what it uses.",
                     better.c_str())));
}

}  // namespace

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
    DefineCustomIntVariable("recsys.model_cache_memory", "Memory for parsed models each backend keeps.",
                            "Least recently used models beyond it are freed; the model in use always stays.",
                            &settings::model_cache_memory_kb, 256 * 1024, 1024, INT_MAX, PGC_USERSET, GUC_UNIT_KB, nullptr,
                            nullptr, nullptr);
    DefineCustomIntVariable("recsys.fetch_rows", "Snapshot rows read from the source relation per fetch in batch scoring.",
                            "Lowered for a call to what a quarter of recsys.max_batch_memory holds.", &settings::fetch_rows, 20000, 100, 10000000, PGC_USERSET, 0, nullptr, nullptr,
                            nullptr);
    // PGC_SUSET: scoring roles may lower recsys.batch_size or raise it to its maximum, but
    // only a superuser may let a call use more memory.
    DefineCustomIntVariable(
        "recsys.max_batch_memory", "Most memory one recsys call may use for its batch buffers.",
        "Batch scoring, evaluation and training size their batches and fetches to fit it (recsys.batch_size is "
        "lowered for the call when needed); a call that cannot fit one customer fails with 54000. The default, "
        "256MB, holds batches of 1024 customers for models needing up to five times the reference model's "
        "memory per customer (about 40kB), keeps 100 connections scoring at once within about 25GB, and "
        "frees in milliseconds on cancel; a superuser may raise it for larger models.",
        &settings::max_batch_memory_kb, 256 * 1024, 64, MAX_KILOBYTES, PGC_SUSET, GUC_UNIT_KB, nullptr, nullptr,
        nullptr);
    // PGC_SUSET: the prediction log keeps per-customer rankings (read by recsys_admin) and every
    // logged call writes a row as the extension's owner, so what is logged, and how much the
    // table grows, is a DBA's decision (ALTER SYSTEM / ALTER ROLE ... SET, or GRANT SET ON
    // PARAMETER), not something a scoring role may switch on for itself.
    DefineCustomRealVariable(
        "recsys.log_sample_rate", "Share of online recommend() and recommend_scores() calls logged in recsys.prediction_log.",
        "0 (the default) logs nothing and costs one branch per call; 1 logs every call. Logged rows are what realized "
        "quality (recsys.realized_quality) is computed from once the predicted month's snapshots land.",
        &settings::log_sample_rate, 0.0, 0.0, 1.0, PGC_SUSET, 0, nullptr, nullptr, nullptr);
    // Workers are PostgreSQL parallel workers (max_worker_processes, max_parallel_workers bound
    // them); PGC_USERSET like max_parallel_workers_per_gather.
    DefineCustomIntVariable(
        "recsys.parallel_workers", "Parallel workers one score_all call (and so a refresh) starts beside its own backend.",
        "-1 (the default): one fewer than the CPUs the server sees, so that the call and its workers use every core; "
        "0: the calling backend scores alone. Fewer start when max_parallel_workers or max_worker_processes has no "
        "room, and none for a small relation, a temporary table or a view; the calling backend scores what they do not.",
        &settings::parallel_workers, -1, -1, 1024, PGC_USERSET, 0, nullptr, nullptr, nullptr);
    // PGC_SUSET although it can only take instructions away (never lets a kernel run on a CPU
    // without them): slowing every reduced-precision model of a session down, or failing it,
    // is a superuser's decision. It applies to scorers built after it is set (a backend's
    // cached single-customer scorer keeps its kernel until the model leaves the cache).
    DefineCustomEnumVariable(
        "recsys.reduced_precision_kernels", "Which CPU instructions the bf16 and int8 scoring kernels may use.",
        "auto: the best this CPU has (AVX-512 BF16 or VNNI, else AVX2 with FMA); avx2: never AVX-512; none: no "
        "kernel, so bf16 and int8 models fail with 0A000 as on a CPU without those instructions.",
        &settings::reduced_precision_kernels, 0, reduced_precision_kernel_options, PGC_SUSET, 0, nullptr,
        [](int value, void *) { recsys::set_cpu_feature_cap(recsys::CpuFeatureCap(value)); }, nullptr);
    report_blas_core();
    // recsys.serving_stats*; with shared_preload_libraries = 'recsys', its shared memory and hooks.
    serving::init_module();
    MarkGUCPrefixReserved("recsys");
    register_model_cache_callbacks();
}
