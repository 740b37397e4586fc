#include "parallel_scoring.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "guard.h"
#include "memory_budget.h"
#include "settings.h"
#include "sql_text.h"
#include "sql_values.h"

extern "C" {
#include "catalog/pg_proc.h"
#include "optimizer/clauses.h"
}

// The worker's entry point, looked up by name in the recsys library by ParallelWorkerMain.
extern "C" PGDLLEXPORT void recsys_score_all_worker(dsm_segment *seg, shm_toc *toc);

namespace recsys::pg {

namespace {

// Keys of the parallel context's table of contents.
constexpr uint64 kTaskKey = 1;
constexpr uint64 kModelNameKey = 2;
constexpr uint64 kQueuesKey = 3;

// Each participant claims slices of the id range one at a time, so a worker that starts late,
// or a slice denser than the others, leaves the rest to the others; 4 slices per participant
// balance well while each slice stays one index range scan.
constexpr int64_t kSlicesPerParticipant = 4;
// Starting a worker costs a process and a model load; a participant is worth it for about a
// thousand customers or more (ids are counted: the relation's id span bounds the customers).
constexpr int64_t kMinIdsPerParticipant = 1024;
// One queue per worker; rows are sent in messages of up to kMessageBytes.
constexpr Size kQueueBytes = 4 * 1024 * 1024;
constexpr size_t kMessageBytes = 64 * 1024;
// The calling backend drains the queues after this many customers of its own.
constexpr int kDrainEvery = 256;

struct SharedTask {
    pg_atomic_uint64 next_slice;
    int64_t slices;  // of the shard
    int64_t lo, hi;  // the source's smallest and largest id
    int32_t version, k, shard, shards;
    int32_t participants;  // the calling backend and the workers planned: they share recsys.max_batch_memory
    bool has_as_of;
    DateADT as_of;
};

// The smallest and largest customer id of the source relation.
struct IdBounds {
    bool empty = true;
    int64_t lo = 0, hi = -1;
};

IdBounds source_id_bounds(const SourceReader &reader) {
    const std::string range_sql = "SELECT " + sql::call("min", reader.id_sql()) + ", " +
                                  sql::call("max", reader.id_sql()) + " FROM " + reader.relation_name();
    const char *range_text = range_sql.c_str();
    IdBounds b;
    pg_call([&] {
        if (SPI_execute(range_text, true, 1) != SPI_OK_SELECT) elog(ERROR, "id range query failed");
        bool lo_null, hi_null;
        const Datum l = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &lo_null);
        const Datum h = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &hi_null);
        if (!lo_null && !hi_null) {
            b.empty = false;
            b.lo = DatumGetInt64(l);
            b.hi = DatumGetInt64(h);
        }
        SPI_freetuptable(SPI_tuptable);
    });
    return b;
}

// Slice i of n of the id range: ids in [lo + span * i / n, lo + span * (i + 1) / n). The first
// and last slices are open-ended, so no id is lost to rounding or overflow, and slice c of C of
// shard s of S is exactly slice s * C + c of S * C: workers split a shard, never cross it.
std::string id_slice_condition(const std::string &id, const IdBounds &b, int64_t i, int64_t n) {
    if (n <= 1) return std::string();
    const __int128 span = __int128(b.hi) - b.lo + 1;
    std::string range;
    if (i > 0) range = id + sql::op(">=") + sql::int8_literal(int64_t(b.lo + span * i / n));
    if (i + 1 < n)
        range += (range.empty() ? "" : " AND ") + id + sql::op("<") + sql::int8_literal(int64_t(b.lo + span * (i + 1) / n));
    return range;
}

// Whether workers may read the source: not a temporary relation (other backends cannot read
// its buffers), and nothing in the batch query (a view's functions, row-level security
// policies) that PostgreSQL's planner would keep out of a parallel worker.
bool source_is_parallel_safe(const LoadedModel &m, const ScoreAllRequest &request) {
    const Oid relid = m.reader->relation_id();
    const std::string query = m.reader->batch_query(request.has_as_of ? m.reader->month_sql() + sql::op("<=") + "$1" : "");
    const char *query_text = query.c_str();
    const int nparams = request.has_as_of ? 1 : 0;
    return pg_call([&] {
        if (get_rel_persistence(relid) == RELPERSISTENCE_TEMP) return false;
        Oid types[1] = {DATEOID};
        List *raw = pg_parse_query(query_text);
        ListCell *lc;
        foreach (lc, raw) {
            List *queries = pg_analyze_and_rewrite_fixedparams(lfirst_node(RawStmt, lc), query_text, types, nparams, nullptr);
            ListCell *q;
            foreach (q, queries)
                if (max_parallel_hazard(lfirst_node(Query, q)) != PROPARALLEL_SAFE) return false;
        }
        return true;
    });
}

// Workers to ask for: recsys.parallel_workers (-1: one fewer than the CPUs, within
// max_parallel_workers), none where a parallel operation cannot start, and fewer for a small
// id range.
int planned_workers(const LoadedModel &m, const ScoreAllRequest &request, const IdBounds &bounds) {
    int workers = settings::parallel_workers;
    if (workers < 0) workers = std::min(std::max(0, int(sysconf(_SC_NPROCESSORS_ONLN)) - 1), max_parallel_workers);
    if (workers == 0 || bounds.empty) return 0;
    // Already inside a parallel query (score_all is PARALLEL SAFE) or a worker: no nesting.
    if (IsInParallelMode() || IsParallelWorker()) return 0;
    const __int128 span = (__int128(bounds.hi) - bounds.lo + 1) / request.shards;
    workers = int(std::min<__int128>(workers, span / kMinIdsPerParticipant - 1));
    if (workers <= 0) return 0;
    return source_is_parallel_safe(m, request) ? workers : 0;
}

// Wire format of a worker's rows: customer id (int64), count (uint16), then per product its
// index (uint16) and score (float4); native byte order, both ends are the same server.
void append_record(std::vector<char> &out, int64_t customer, const std::vector<Ranked> &ranked) {
    const uint16_t count = uint16_t(ranked.size());
    const size_t at = out.size();
    out.resize(at + sizeof customer + sizeof count + ranked.size() * (sizeof(uint16_t) + sizeof(float)));
    char *p = out.data() + at;
    std::memcpy(p, &customer, sizeof customer);
    p += sizeof customer;
    std::memcpy(p, &count, sizeof count);
    p += sizeof count;
    for (const Ranked &r : ranked) {
        const uint16_t product = uint16_t(r.product);
        std::memcpy(p, &product, sizeof product);
        p += sizeof product;
        std::memcpy(p, &r.score, sizeof r.score);
        p += sizeof r.score;
    }
}

void decode_records(const char *data, size_t bytes, std::vector<Ranked> &ranked, const RankedSink &sink) {
    const char *end = data + bytes;
    while (data < end) {
        int64_t customer;
        uint16_t count;
        std::memcpy(&customer, data, sizeof customer);
        data += sizeof customer;
        std::memcpy(&count, data, sizeof count);
        data += sizeof count;
        ranked.resize(count);
        for (Ranked &r : ranked) {
            uint16_t product;
            std::memcpy(&product, data, sizeof product);
            data += sizeof product;
            std::memcpy(&r.score, data, sizeof r.score);
            data += sizeof r.score;
            r.product = product;
        }
        sink(customer, ranked);
    }
}

uint64_t claim_slice(SharedTask *task) { return pg_atomic_fetch_add_u64(&task->next_slice, 1); }

// Slice `slice` of the shard, as a condition on the id.
std::string shard_slice_condition(const LoadedModel &m, const SharedTask &task, int64_t slice) {
    const IdBounds b{false, task.lo, task.hi};
    return id_slice_condition(m.reader->id_sql(), b, int64_t(task.shard) * task.slices + slice,
                              int64_t(task.shards) * task.slices);
}

// The calling backend's side of a parallel call.
class Leader {
public:
    Leader(LoadedModel &m, const ScoreAllRequest &request, const RankedSink &sink) : m_(m), request_(request), sink_(sink) {}

    void run(int workers, const IdBounds &bounds) {
        start(workers, bounds);
        // recsys.max_batch_memory bounds the whole call: each process plans its batches in its share.
        const BatchMemoryShare share(task_->participants);
        // Score slices alongside the workers, draining their queues now and then so that they
        // never wait on a full queue for long.
        int since_drain = 0;
        const RankedSink own = [&](int64_t customer, const std::vector<Ranked> &ranked) {
            sink_(customer, ranked);
            if (++since_drain >= kDrainEvery) {
                since_drain = 0;
                drain(false);
            }
        };
        for (uint64_t slice; (slice = claim_slice(task_)) < uint64_t(task_->slices);)
            score_all_customers(m_, request_, shard_slice_condition(m_, *task_, int64_t(slice)), own);
        drain(true);
        // Raises the first worker error, if any; then the workers are gone.
        ParallelContext *pcxt = pcxt_;
        pg_call([&] {
            WaitForParallelWorkersToFinish(pcxt);
            DestroyParallelContext(pcxt);
            ExitParallelMode();
        });
    }

private:
    void start(int workers, const IdBounds &bounds) {
        const ScoreAllRequest &r = request_;
        const char *name = r.model_name.c_str();
        const size_t name_bytes = r.model_name.size() + 1;
        ParallelContext *pcxt = nullptr;
        SharedTask *task = nullptr;
        shm_mq_handle **queues = nullptr;
        pg_call([&] {
            EnterParallelMode();
            pcxt = CreateParallelContext("recsys", "recsys_score_all_worker", workers);
            shm_toc_estimate_chunk(&pcxt->estimator, sizeof(SharedTask));
            shm_toc_estimate_chunk(&pcxt->estimator, name_bytes);
            shm_toc_estimate_chunk(&pcxt->estimator, mul_size(kQueueBytes, workers));
            shm_toc_estimate_keys(&pcxt->estimator, 3);
            InitializeParallelDSM(pcxt);  // may lower pcxt->nworkers to 0 when no segment is available

            task = static_cast<SharedTask *>(shm_toc_allocate(pcxt->toc, sizeof(SharedTask)));
            pg_atomic_init_u64(&task->next_slice, 0);
            task->slices = kSlicesPerParticipant * (workers + 1);
            task->lo = bounds.lo;
            task->hi = bounds.hi;
            task->version = r.version;
            task->k = r.k;
            task->shard = r.shard;
            task->shards = r.shards;
            // Planned, not launched: a worker reads it before the launch is known; a process
            // planned but not started leaves its share unused.
            task->participants = pcxt->nworkers + 1;
            task->has_as_of = r.has_as_of;
            task->as_of = r.as_of;
            shm_toc_insert(pcxt->toc, kTaskKey, task);
            char *name_copy = static_cast<char *>(shm_toc_allocate(pcxt->toc, name_bytes));
            memcpy(name_copy, name, name_bytes);
            shm_toc_insert(pcxt->toc, kModelNameKey, name_copy);

            queues = static_cast<shm_mq_handle **>(palloc0(sizeof(shm_mq_handle *) * (workers + 1)));
            if (pcxt->nworkers > 0) {
                char *space = static_cast<char *>(shm_toc_allocate(pcxt->toc, mul_size(kQueueBytes, pcxt->nworkers)));
                for (int i = 0; i < pcxt->nworkers; ++i) {
                    shm_mq *mq = shm_mq_create(space + Size(i) * kQueueBytes, kQueueBytes);
                    shm_mq_set_receiver(mq, MyProc);
                    queues[i] = shm_mq_attach(mq, pcxt->seg, nullptr);
                }
                shm_toc_insert(pcxt->toc, kQueuesKey, space);
            }
            LaunchParallelWorkers(pcxt);
            // A worker that dies before attaching makes its queue read as detached.
            for (int i = 0; i < pcxt->nworkers_launched; ++i) shm_mq_set_handle(queues[i], pcxt->worker[i].bgwhandle);
            // With recsys.parallel_workers = -1 the call takes the workers there are; it says
            // so only when it got none, or got fewer than a count the caller asked for.
            if (pcxt->nworkers_launched < workers && (settings::parallel_workers > 0 || pcxt->nworkers_launched == 0))
                ereport(NOTICE, (errmsg("recsys.score_all started %d of %d parallel workers; this backend scores the rest",
                                        pcxt->nworkers_launched, workers),
                                 errhint("Parallel workers are bounded by max_worker_processes and max_parallel_workers, "
                                         "shared with parallel queries.")));
        });
        pcxt_ = pcxt;
        task_ = task;
        queues_.assign(queues, queues + pcxt->nworkers_launched);
    }

    // Passes every row waiting in the queues to the sink; with wait, until every worker has
    // finished (detached its queue).
    void drain(bool wait) {
        for (;;) {
            bool received = false, open = false;
            for (shm_mq_handle *&queue : queues_) {
                if (queue == nullptr) continue;
                Size bytes = 0;
                void *data = nullptr;
                shm_mq_handle *q = queue;
                const shm_mq_result result = pg_call([&] { return shm_mq_receive(q, &bytes, &data, true); });
                if (result == SHM_MQ_DETACHED) {
                    queue = nullptr;  // the worker finished, or failed: its error reaches this backend
                    continue;
                }
                open = true;
                if (result == SHM_MQ_SUCCESS) {
                    decode_records(static_cast<const char *>(data), bytes, scratch_, sink_);
                    received = true;
                }
            }
            if (!open || (!wait && !received)) return;
            if (!received) {
                // Woken by a worker's message (the queue sets this backend's latch) or an
                // interrupt; a worker's error arrives as an interrupt and is raised here.
                pg_call([] {
                    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH, -1L, PG_WAIT_EXTENSION);
                    ResetLatch(MyLatch);
                    CHECK_FOR_INTERRUPTS();
                });
            } else {
                check_for_interrupts();
            }
        }
    }

    LoadedModel &m_;
    const ScoreAllRequest &request_;
    const RankedSink &sink_;
    ParallelContext *pcxt_ = nullptr;
    SharedTask *task_ = nullptr;
    std::vector<shm_mq_handle *> queues_;
    std::vector<Ranked> scratch_;
};

// A worker: scores slices until none is left, sending its rows to the calling backend.
struct WorkerArgs {
    dsm_segment *seg;
    shm_toc *toc;
};
WorkerArgs worker_args;

Datum worker_body(FunctionCallInfo) {
    shm_toc *toc = worker_args.toc;
    dsm_segment *seg = worker_args.seg;
    SharedTask *task = nullptr;
    const char *name = nullptr;
    shm_mq_handle *queue = nullptr;
    pg_call([&] {
        task = static_cast<SharedTask *>(shm_toc_lookup(toc, kTaskKey, false));
        name = static_cast<const char *>(shm_toc_lookup(toc, kModelNameKey, false));
        char *space = static_cast<char *>(shm_toc_lookup(toc, kQueuesKey, false));
        shm_mq *mq = reinterpret_cast<shm_mq *>(space + Size(ParallelWorkerNumber) * kQueueBytes);
        shm_mq_set_sender(mq, MyProc);
        queue = shm_mq_attach(mq, seg, nullptr);
    });
    ScoreAllRequest request;
    request.model_name = name;
    request.version = task->version;
    request.k = task->k;
    request.has_as_of = task->has_as_of;
    request.as_of = task->as_of;
    request.shard = task->shard;
    request.shards = task->shards;

    const BatchMemoryShare share(task->participants);
    spi_connect();
    std::shared_ptr<LoadedModel> m = acquire_model(request.model_name, request.version);
    std::vector<char> message;
    message.reserve(kMessageBytes + 1024);
    auto send = [&] {
        if (message.empty()) return;
        const char *data = message.data();
        const Size bytes = message.size();
        const shm_mq_result result = pg_call([&] { return shm_mq_send(queue, bytes, data, false, true); });
        message.clear();
        // The calling backend detaches only when it fails or is cancelled; it then ends this worker.
        if (result != SHM_MQ_SUCCESS)
            throw SqlError(ERRCODE_QUERY_CANCELED, "the backend that started this recsys.score_all worker stopped");
    };
    const RankedSink sink = [&](int64_t customer, const std::vector<Ranked> &ranked) {
        append_record(message, customer, ranked);
        if (message.size() >= kMessageBytes) send();
    };
    for (uint64_t slice; (slice = claim_slice(task)) < uint64_t(task->slices);) {
        score_all_customers(*m, request, shard_slice_condition(*m, *task, int64_t(slice)), sink);
        send();
    }
    spi_finish();
    pg_call([&] { shm_mq_detach(queue); });
    return (Datum)0;
}

}  // namespace

void score_all_rows(LoadedModel &m, const ScoreAllRequest &request, const RankedSink &sink) {
    const bool may_use_workers = settings::parallel_workers != 0;
    const IdBounds bounds = request.shards > 1 || may_use_workers ? source_id_bounds(*m.reader) : IdBounds{};
    const int workers = may_use_workers ? planned_workers(m, request, bounds) : 0;
    if (workers == 0) {
        score_all_customers(m, request, id_slice_condition(m.reader->id_sql(), bounds, request.shard, request.shards), sink);
        return;
    }
    Leader(m, request, sink).run(workers, bounds);
}

}  // namespace recsys::pg

// Called by ParallelWorkerMain in the caller's transaction, snapshot and role; an error is
// raised by the guard after every C++ frame is gone, and PostgreSQL sends it to the caller.
void recsys_score_all_worker(dsm_segment *seg, shm_toc *toc) {
    recsys::pg::worker_args = {seg, toc};
    recsys::pg::run_guarded("recsys.score_all (parallel worker)", nullptr, recsys::pg::worker_body);
}
