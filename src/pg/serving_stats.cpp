// Serving statistics in shared memory (serving_stats.h; docs/monitoring.md).
//
// Layout, sized at server start by recsys.serving_stats_max (PGC_POSTMASTER):
//   Shared   header: the LWLock, the table's size, entries in use, calls not counted
//   Entry[max]       one per (database, model, version, entry point), plus one per (database,
//                    model, version) for the model cache ("model entry"); each with its own
//                    spinlock, initialized once at startup and never moved
//   HTAB             (database, model, version, entry point) -> slot
// The LWLock (one, named tranche "recsys serving stats") guards the index and the slots'
// assignment: taken shared to find an entry, exclusive to create one or to reset. Counters
// are updated under the entry's spinlock only. A backend finds each entry once and keeps a
// pointer with the entry's incarnation (ModelHandle); a reset may free and reuse slots, so a
// call checks the incarnation under the spinlock and looks the entry up again if it changed.
//
// The hot path of a tracked call: two clock reads, then one spinlock section of a dozen
// additions on the entry (bench/serving_stats_cost.sh measures it).
#include "serving_stats.h"

#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "guard.h"
#include "latency_histogram.h"

extern "C" {
#include "catalog/pg_proc.h"
#include "nodes/primnodes.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/hsearch.h"
}

using recsys::LatencyBuckets;

namespace recsys::pg::serving {

namespace {

constexpr int kEntryPoints = int(EntryPoint::Count);
constexpr int kModelEntry = kEntryPoints;  // entry_point of the per model version entry
constexpr int kModelNameBytes = 64;        // model names are 1 to 63 bytes (the registry's CHECK)
constexpr int kSqlstateSlots = 8;          // distinct SQLSTATEs counted per entry; more go to "other"
constexpr const char *kTrancheName = "recsys serving stats";

const char *const entry_names[kEntryPoints] = {"recommend",    "recommend_scores", "recommend_many",
                                               "score_all",    "refresh",          "advance_month",
                                               "advance_customer", "score_customer"};

// Settings (init_module).
bool track = true;        // recsys.serving_stats
int max_entries = 1000;   // recsys.serving_stats_max

// ---------------------------------------------------------------------------------------------
// Shared memory
// ---------------------------------------------------------------------------------------------

// The index key; built with memset so that padding and the name's tail are zero (HASH_BLOBS).
struct Key {
    Oid database;
    int32 version;      // 0: the call failed before a version was resolved
    int32 entry_point;  // EntryPoint, or kModelEntry
    char model[kModelNameBytes];  // "": not known (an error before recsys saw a name)
};

struct Counters {
    uint64 calls;      // every call, failed ones included
    uint64 errors;     // failed calls
    uint64 customers;  // customers scored by calls that succeeded
    // Of those, customers of from-start models scored by the online functions continuing a
    // stored state, and by running their full history (no usable state).
    uint64 from_stored_state, from_full_history;
    uint64 timed;      // calls that succeeded: the ones in the histogram and the sums below
    uint64 total_ns;
    uint64 max_ns;
    uint64 cache_hits, cache_misses, loads;
    int64 cached_bytes;  // model entries: bytes of parsed models cached now, all backends (a gauge)
    int32 error_codes[kSqlstateSlots];
    uint64 error_counts[kSqlstateSlots];
    uint64 other_errors;  // errors beyond kSqlstateSlots distinct SQLSTATEs
    TimestampTz since;    // created or last reset
    uint64 histogram[LatencyBuckets::kCount];
};

struct Entry {
    slock_t mutex;
    uint64 incarnation;  // 0 while the slot is free; changes only under the exclusive LWLock
    Key key;
    Counters c;
};

struct IndexItem {
    Key key;
    int32 slot;
};

struct Shared {
    LWLock *lock;
    int32 max_entries;
    int32 used;
    int32 next_free;  // where the search for a free slot starts
    uint64 next_incarnation;
    pg_atomic_uint64 dropped;  // calls and cache lookups not counted because the table was full
};

Shared *shared = nullptr;
Entry *entries = nullptr;
HTAB *index_table = nullptr;

shmem_request_hook_type prev_shmem_request = nullptr;
shmem_startup_hook_type prev_shmem_startup = nullptr;
needs_fmgr_hook_type prev_needs_fmgr_hook = nullptr;
fmgr_hook_type prev_fmgr_hook = nullptr;

Size header_size() { return MAXALIGN(sizeof(Shared)); }

Size shared_size() {
    Size size = add_size(header_size(), mul_size(Size(max_entries), sizeof(Entry)));
    return add_size(size, hash_estimate_size(max_entries, sizeof(IndexItem)));
}

void shmem_request() {
    if (prev_shmem_request) prev_shmem_request();
    RequestAddinShmemSpace(shared_size());
    RequestNamedLWLockTranche(kTrancheName, 1);
}

void shmem_startup() {
    if (prev_shmem_startup) prev_shmem_startup();
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found;
    void *memory = ShmemInitStruct(kTrancheName, add_size(header_size(), mul_size(Size(max_entries), sizeof(Entry))), &found);
    Shared *header = static_cast<Shared *>(memory);
    Entry *slots = reinterpret_cast<Entry *>(static_cast<char *>(memory) + header_size());
    if (!found) {
        header->lock = &GetNamedLWLockTranche(kTrancheName)->lock;
        header->max_entries = max_entries;
        header->used = 0;
        header->next_free = 0;
        header->next_incarnation = 1;
        pg_atomic_init_u64(&header->dropped, 0);
        for (int i = 0; i < max_entries; ++i) {
            SpinLockInit(&slots[i].mutex);
            slots[i].incarnation = 0;
        }
    }
    HASHCTL info;
    memset(&info, 0, sizeof info);
    info.keysize = sizeof(Key);
    info.entrysize = sizeof(IndexItem);
    index_table = ShmemInitHash("recsys serving stats index", max_entries, max_entries, &info, HASH_ELEM | HASH_BLOBS);
    LWLockRelease(AddinShmemInitLock);
    entries = slots;
    shared = header;
}

// Copies a model name into a zeroed buffer of kModelNameBytes, cut to 63 bytes.
void copy_name(char *dst, const char *src, size_t length) {
    const size_t n = std::min(length, size_t(kModelNameBytes - 1));
    memcpy(dst, src, n);
    dst[n] = '\0';
}

Key make_key(const char *model, int32 version, int entry_point) {
    Key key;
    memset(&key, 0, sizeof key);
    key.database = MyDatabaseId;
    key.version = version;
    key.entry_point = entry_point;
    copy_name(key.model, model, strnlen(model, kModelNameBytes - 1));
    return key;
}

// A backend's reference to an entry: valid while the entry's incarnation is the same.
struct EntryRef {
    Entry *entry = nullptr;
    uint64 incarnation = 0;
};

// Finds or creates the entry of key under the LWLock; ref->entry stays null when the table is
// full. Plain PostgreSQL calls only, none of which raises an error here in practice
// (LWLockAcquire fails only when 200 LWLocks are held); see resolve().
void find_or_create(void *context) {
    auto *args = static_cast<std::pair<const Key *, EntryRef *> *>(context);
    const Key *key = args->first;
    EntryRef *ref = args->second;
    ref->entry = nullptr;
    LWLockAcquire(shared->lock, LW_SHARED);
    const IndexItem *item = static_cast<IndexItem *>(hash_search(index_table, key, HASH_FIND, nullptr));
    if (item) {
        ref->entry = &entries[item->slot];
        ref->incarnation = ref->entry->incarnation;
        LWLockRelease(shared->lock);
        return;
    }
    LWLockRelease(shared->lock);
    const TimestampTz now = GetCurrentTimestamp();
    LWLockAcquire(shared->lock, LW_EXCLUSIVE);
    item = static_cast<IndexItem *>(hash_search(index_table, key, HASH_FIND, nullptr));
    if (!item && shared->used < shared->max_entries) {
        int slot = shared->next_free;
        while (entries[slot].incarnation != 0) slot = (slot + 1) % shared->max_entries;
        bool found;
        auto *created = static_cast<IndexItem *>(hash_search(index_table, key, HASH_ENTER_NULL, &found));
        if (created) {
            created->slot = slot;
            Entry &e = entries[slot];
            SpinLockAcquire(&e.mutex);
            e.key = *key;
            memset(&e.c, 0, sizeof e.c);
            e.c.since = now;
            e.incarnation = shared->next_incarnation++;
            SpinLockRelease(&e.mutex);
            ++shared->used;
            shared->next_free = (slot + 1) % shared->max_entries;
            item = created;
        }
    }
    if (item) {
        ref->entry = &entries[item->slot];
        ref->incarnation = ref->entry->incarnation;
    }
    LWLockRelease(shared->lock);
}

// Looks up (or creates) the entry of key into ref. in_error_cleanup: called while PostgreSQL
// handles an error (the fmgr hook's abort event), where no error state may be flushed, so the
// calls are made directly; elsewhere through run_pg_try, so that no error could ever longjmp
// over a C++ frame (one that would is dropped: the figure is lost, the call goes on).
void resolve(const Key &key, EntryRef *ref, bool in_error_cleanup) {
    std::pair<const Key *, EntryRef *> args(&key, ref);
    if (in_error_cleanup) {
        find_or_create(&args);
    } else if (ErrorData *edata = run_pg_try(find_or_create, &args)) {
        // Swallowed, so no transaction abort would release the lock.
        if (LWLockHeldByMe(shared->lock)) LWLockRelease(shared->lock);
        ref->entry = nullptr;
        FreeErrorData(edata);
    }
    if (!ref->entry) pg_atomic_fetch_add_u64(&shared->dropped, 1);
}

// Applies fn to the counters of ref's entry under its spinlock; false when ref is stale.
template <typename Fn>
bool apply(const EntryRef &ref, Fn &&fn) {
    Entry *e = ref.entry;
    if (!e) return false;
    SpinLockAcquire(&e->mutex);
    const bool valid = e->incarnation == ref.incarnation;
    if (valid) fn(e->c);
    SpinLockRelease(&e->mutex);
    return valid;
}

// ---------------------------------------------------------------------------------------------
// Backend-local state
// ---------------------------------------------------------------------------------------------

}  // namespace

struct ModelHandle {
    char model[kModelNameBytes];
    int32 version;
    EntryRef refs[kEntryPoints + 1];  // per entry point, and the model entry
    int64 local_bytes = 0;    // bytes of this version this backend's cache holds
    int64 counted_bytes = 0;  // the part of them counted in the model entry's gauge
};

namespace {

// Never destroyed (a static destructor would run after PostgreSQL began tearing down); the
// backend keeps one handle per model version it used.
auto &handles = *new std::map<std::pair<std::string, int32_t>, ModelHandle *>();

// Applies fn to entry point `slot` of handle h, looking the entry up when needed.
template <typename Fn>
void apply_to(ModelHandle *h, int slot, bool in_error_cleanup, Fn &&fn) {
    EntryRef &ref = h->refs[slot];
    if (apply(ref, fn)) return;
    resolve(make_key(h->model, h->version, slot), &ref, in_error_cleanup);
    apply(ref, fn);
}

enum CacheEvent { kNoEvent, kHit, kMiss };

void count_cache_event(Counters &c, int event) {
    if (event == kHit) ++c.cache_hits;
    else if (event == kMiss) ++c.cache_misses;
}

// A tracked call in progress in this backend. Calls nest only through the PL/pgSQL entry
// points (refresh_recommendations runs score_all): the stack is short.
struct Frame {
    int entry_point;
    Oid fn_oid;  // the PL/pgSQL function whose fmgr hook pushed the frame; InvalidOid from the guard
    uint64 start_ns;
    ModelHandle *handle;  // the model version the call scored with, once known
    int cache_event;      // the lookup of that version: hit or miss
    uint64 customers;
    uint64 from_stored_state, from_full_history;
    char model[kModelNameBytes];  // the model asked for, for errors before a version is known
};
constexpr int kMaxFrames = 8;
Frame frames[kMaxFrames];
int depth = 0;

uint64 now_ns() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64(ts.tv_sec) * 1000000000u + uint64(ts.tv_nsec);
}

void count_error(Counters &c, int sqlstate) {
    ++c.errors;
    for (int i = 0; i < kSqlstateSlots; ++i) {
        if (c.error_codes[i] == sqlstate || c.error_counts[i] == 0) {
            c.error_codes[i] = sqlstate;
            ++c.error_counts[i];
            return;
        }
    }
    ++c.other_errors;
}

// Records a finished outermost call.
void record(const Frame &f, uint64 ns, int sqlstate, bool in_error_cleanup) {
    auto update = [&](Counters &c) {
        ++c.calls;
        if (sqlstate != 0) {
            count_error(c, sqlstate);
        } else {
            ++c.timed;
            c.total_ns += ns;
            c.max_ns = std::max(c.max_ns, ns);
            ++c.histogram[LatencyBuckets::index(ns)];
            c.customers += f.customers;
            c.from_stored_state += f.from_stored_state;
            c.from_full_history += f.from_full_history;
        }
        count_cache_event(c, f.cache_event);
    };
    if (f.handle) {
        apply_to(f.handle, f.entry_point, in_error_cleanup, update);
    } else if (sqlstate != 0) {
        // Failed before a model version was resolved: version 0, looked up every time (no
        // per-backend handle, so that calls naming many unknown models cost no memory here).
        EntryRef ref;
        resolve(make_key(f.model, 0, f.entry_point), &ref, in_error_cleanup);
        apply(ref, update);
    }
    // A call that succeeded without a model returned NULL for a NULL argument: not counted.
}

// Ends the frame at `token` (the top of the stack).
void end_frame(int token, int sqlstate, bool in_error_cleanup) {
    const uint64 end = now_ns();
    const Frame f = frames[token];
    depth = token;
    if (depth > 0) {
        // Inside another tracked call: the outer call counts it (its error, if any, is the
        // outer call's error too unless the outer call catches it).
        Frame &outer = frames[depth - 1];
        if (!outer.handle) {
            outer.handle = f.handle;
            outer.cache_event = f.cache_event;
        } else if (f.handle && f.cache_event != kNoEvent) {
            apply_to(f.handle, kModelEntry, in_error_cleanup, [&](Counters &c) { count_cache_event(c, f.cache_event); });
        }
        if (!outer.model[0]) memcpy(outer.model, f.model, sizeof f.model);
        if (sqlstate == 0) {
            outer.customers += f.customers;
            outer.from_stored_state += f.from_stored_state;
            outer.from_full_history += f.from_full_history;
        }
        return;
    }
    record(f, end - f.start_ns, sqlstate, in_error_cleanup);
}

// A lookup of handle's model version in the model cache.
void cache_event(ModelHandle *h, int event) {
    if (!h || !shared || !track) return;
    if (depth > 0 && !frames[depth - 1].handle) {
        // The running call's model: counted with the call, in the same spinlock section.
        frames[depth - 1].handle = h;
        frames[depth - 1].cache_event = event;
        return;
    }
    apply_to(h, kModelEntry, false, [&](Counters &c) { count_cache_event(c, event); });
}

// Sets the model entry's gauge to hold this backend's local_bytes. Entries whose gauge is not
// zero survive a reset, so counted_bytes is still in the entry whenever it is not zero.
void sync_cached_bytes(ModelHandle *h, bool in_error_cleanup) {
    EntryRef &ref = h->refs[kModelEntry];
    const int64 target = h->local_bytes;
    auto update = [&](Counters &c) {
        c.cached_bytes += target - h->counted_bytes;
        h->counted_bytes = target;
    };
    if (apply(ref, update)) return;
    h->counted_bytes = 0;  // a new incarnation holds none of this backend's bytes
    if (target == 0) return;
    resolve(make_key(h->model, h->version, kModelEntry), &ref, in_error_cleanup);
    apply(ref, update);
}

// Backend exit: its cached models go with it.
void release_cached_bytes(int, Datum) {
    if (!shared) return;
    for (auto &item : handles) {
        ModelHandle *h = item.second;
        if (h->local_bytes == 0 && h->counted_bytes == 0) continue;
        h->local_bytes = 0;
        sync_cached_bytes(h, true);
    }
}

// The end of a top-level transaction leaves no call running; a frame left behind (which only
// a bug could leave) must not swallow the next calls as nested ones.
void at_transaction_end(XactEvent event, void *) {
    if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_COMMIT ||
        event == XACT_EVENT_PARALLEL_ABORT || event == XACT_EVENT_PREPARE)
        depth = 0;
}

// ---------------------------------------------------------------------------------------------
// The PL/pgSQL entry points, through the fmgr hook
// ---------------------------------------------------------------------------------------------

// Which functions are tracked PL/pgSQL entry points, as far as this backend has looked: a
// direct-mapped cache of function oid -> entry point or -1. fmgr_security_definer() calls the
// hook for every function with SET clauses or SECURITY DEFINER (refresh_recommendations has a
// SET clause, so PostgreSQL never asks needs_fmgr_hook about it), and most are not ours: this
// keeps their calls from a catalog lookup each.
struct KnownFunction {
    Oid oid;
    int entry_point;
};
constexpr int kKnownFunctions = 256;
KnownFunction known_functions[kKnownFunctions];

// recsys.refresh_recommendations or recsys.advance_month? Catalog lookups on a cache miss:
// called only where fmgr looks up or starts a function, where catalog access is allowed;
// plain C frames only.
int plpgsql_entry_point(Oid oid) {
    KnownFunction &known = known_functions[oid % kKnownFunctions];
    if (known.oid == oid && oid != InvalidOid) return known.entry_point;
    HeapTuple tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(oid));
    if (!HeapTupleIsValid(tuple)) return -1;
    const Form_pg_proc proc = reinterpret_cast<Form_pg_proc>(GETSTRUCT(tuple));
    int entry_point = -1;
    if (strcmp(NameStr(proc->proname), "refresh_recommendations") == 0) entry_point = int(EntryPoint::Refresh);
    else if (strcmp(NameStr(proc->proname), "advance_month") == 0) entry_point = int(EntryPoint::AdvanceMonth);
    const Oid namespace_oid = proc->pronamespace;
    ReleaseSysCache(tuple);
    if (entry_point >= 0 && namespace_oid != get_namespace_oid("recsys", true)) entry_point = -1;
    known = {oid, entry_point};
    return entry_point;
}

// The model a PL/pgSQL entry point was called for, when the call names it with a constant
// (refresh_recommendations('default'), or the default): its errors before a version is
// resolved then count under that name, not under NULL.
void model_from_call(const FmgrInfo *flinfo, Frame &f) {
    const Node *expr = flinfo->fn_expr;
    if (!expr || !IsA(expr, FuncExpr)) return;
    const List *args = reinterpret_cast<const FuncExpr *>(expr)->args;
    if (list_length(args) < 1) return;
    const Node *arg = static_cast<const Node *>(linitial(args));
    if (!IsA(arg, Const)) return;
    const Const *value = reinterpret_cast<const Const *>(arg);
    if (value->constisnull || value->consttype != TEXTOID) return;
    text_to_cstring_buffer(DatumGetTextPP(value->constvalue), f.model, kModelNameBytes);
}

bool needs_fmgr_hook_fn(Oid fn_oid) {
    const bool theirs = prev_needs_fmgr_hook && prev_needs_fmgr_hook(fn_oid);
    return plpgsql_entry_point(fn_oid) >= 0 || theirs;
}

void fmgr_hook_fn(FmgrHookEventType event, FmgrInfo *flinfo, Datum *arg) {
    if (prev_fmgr_hook) prev_fmgr_hook(event, flinfo, arg);
    if (event == FHET_START) {
        const int entry_point = plpgsql_entry_point(flinfo->fn_oid);
        if (entry_point < 0) return;
        const int token = call_begin(entry_point);
        if (token < 0) return;
        frames[token].fn_oid = flinfo->fn_oid;
        model_from_call(flinfo, frames[token]);
    } else if (depth > 0 && frames[depth - 1].fn_oid == flinfo->fn_oid && flinfo->fn_oid != InvalidOid) {
        // FHET_ABORT runs inside PostgreSQL's PG_CATCH: the error is on the error stack.
        const bool failed = event == FHET_ABORT;
        end_frame(depth - 1, failed ? geterrcode() : 0, failed);
    }
}

void require_shared() {
    if (!shared)
        throw SqlError(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                       "recsys.serving_stats needs shared_preload_libraries = 'recsys'",
                       "recsys was loaded into this session only, so no serving statistics are kept.",
                       "Add recsys to shared_preload_libraries in postgresql.conf and restart the server.");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Interface
// ---------------------------------------------------------------------------------------------

void init_module() {
    DefineCustomBoolVariable("recsys.serving_stats", "Keeps serving statistics (recsys.serving_stats).",
                             "Needs shared_preload_libraries = 'recsys'. Off, calls are not counted.", &track, true,
                             PGC_SUSET, 0, nullptr, nullptr, nullptr);
    // PostgreSQL refuses PGC_POSTMASTER settings defined after startup: only while preloading.
    if (!process_shared_preload_libraries_in_progress) return;
    DefineCustomIntVariable("recsys.serving_stats_max",
                            "Entries of recsys.serving_stats: one per model version and entry point used, "
                            "plus one per model version.",
                            "About 2.4kB of shared memory each; calls of new combinations beyond it are not "
                            "counted until recsys.serving_stats_reset().",
                            &max_entries, 1000, 100, 1000000, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    prev_shmem_request = shmem_request_hook;
    shmem_request_hook = shmem_request;
    prev_shmem_startup = shmem_startup_hook;
    shmem_startup_hook = shmem_startup;
    prev_needs_fmgr_hook = needs_fmgr_hook;
    needs_fmgr_hook = needs_fmgr_hook_fn;
    prev_fmgr_hook = fmgr_hook;
    fmgr_hook = fmgr_hook_fn;
    RegisterXactCallback(at_transaction_end, nullptr);
}

int call_begin(int entry_point) noexcept {
    if (entry_point < 0 || !shared || !track || depth >= kMaxFrames) return -1;
    Frame &f = frames[depth];
    f.entry_point = entry_point;
    f.fn_oid = InvalidOid;
    f.handle = nullptr;
    f.cache_event = kNoEvent;
    f.customers = 0;
    f.from_stored_state = f.from_full_history = 0;
    f.model[0] = '\0';
    f.start_ns = now_ns();
    return depth++;
}

void call_end(int token, int sqlstate) noexcept {
    if (token < 0 || token >= depth) return;  // not tracked, or dropped at a transaction's end
    end_frame(token, sqlstate, false);
}

void note_model_name(const std::string &name) noexcept {
    if (depth == 0) return;
    Frame &f = frames[depth - 1];
    if (f.model[0]) return;
    copy_name(f.model, name.data(), name.size());
}

void note_customers(uint64_t customers) noexcept {
    if (depth > 0) frames[depth - 1].customers += customers;
}

void note_scoring_path(bool from_stored_state) noexcept {
    if (depth == 0) return;
    Frame &f = frames[depth - 1];
    ++(from_stored_state ? f.from_stored_state : f.from_full_history);
}

ModelHandle *model_handle(const std::string &name, int32_t version) {
    if (!shared) return nullptr;
    auto key = std::make_pair(name, version);
    auto it = handles.find(key);
    if (it != handles.end()) return it->second;
    auto *h = new ModelHandle();
    memset(h->model, 0, sizeof h->model);
    copy_name(h->model, name.data(), name.size());
    h->version = version;
    try {
        handles.emplace(std::move(key), h);
    } catch (...) {
        delete h;
        throw;
    }
    return h;
}

void cache_hit(ModelHandle *handle) noexcept { cache_event(handle, kHit); }
void cache_miss(ModelHandle *handle) noexcept { cache_event(handle, kMiss); }

void model_loaded(ModelHandle *handle) noexcept {
    if (!handle || !shared || !track) return;
    apply_to(handle, kModelEntry, false, [](Counters &c) { ++c.loads; });
}

void cached_bytes_changed(ModelHandle *handle, int64_t delta) noexcept {
    // Kept whatever recsys.serving_stats says: the gauge must balance.
    if (!handle || !shared) return;
    static bool exit_callback = false;
    if (!exit_callback) {
        before_shmem_exit(release_cached_bytes, 0);
        exit_callback = true;
    }
    handle->local_bytes += delta;
    sync_cached_bytes(handle, false);
}

}  // namespace recsys::pg::serving

using namespace recsys::pg;
using namespace recsys::pg::serving;

namespace {

struct EntryCopy {
    Key key;
    Counters c;
};

Datum sqlstate_counts_jsonb(const Counters &c) {
    std::vector<std::pair<std::string, uint64>> counts;
    for (int i = 0; i < kSqlstateSlots; ++i)
        if (c.error_counts[i] > 0) counts.emplace_back(unpack_sql_state(c.error_codes[i]), c.error_counts[i]);
    std::sort(counts.begin(), counts.end());
    std::string text = "{";
    for (const auto &[code, n] : counts) text += (text.size() > 1 ? ", \"" : "\"") + code + "\": " + std::to_string(n);
    if (c.other_errors > 0) text += std::string(text.size() > 1 ? ", " : "") + "\"other\": " + std::to_string(c.other_errors);
    text += "}";
    const char *cstring = text.c_str();
    return pg_call([&] { return DirectFunctionCall1(jsonb_in, CStringGetDatum(cstring)); });
}

}  // namespace

// recsys.serving_stats() -> the rows of the view recsys.serving_stats, this database only.
RECSYS_FUNCTION(recsys_serving_stats) {
    pg_call([&] { InitMaterializedSRF(fcinfo, 0); });
    require_shared();
    std::vector<EntryCopy> snapshots;
    snapshots.reserve(size_t(shared->max_entries));  // nothing is allocated under the locks
    pg_call([&] {
        LWLockAcquire(shared->lock, LW_SHARED);
        for (int i = 0; i < shared->max_entries; ++i) {
            Entry &e = entries[i];
            if (e.incarnation == 0 || e.key.database != MyDatabaseId) continue;
            snapshots.emplace_back();
            EntryCopy &s = snapshots.back();
            SpinLockAcquire(&e.mutex);
            s.key = e.key;
            s.c = e.c;
            SpinLockRelease(&e.mutex);
        }
        LWLockRelease(shared->lock);
    });
    const uint64 dropped = pg_atomic_read_u64(&shared->dropped);
    if (dropped > 0)
        pg_call([&] {
            ereport(WARNING,
                    (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                     errmsg("recsys.serving_stats is full: %llu calls or model cache lookups were not counted",
                            (unsigned long long)dropped),
                     errdetail("It holds recsys.serving_stats_max = %d entries (one per model version and entry "
                               "point, plus one per model version).", max_entries),
                     errhint("Call recsys.serving_stats_reset(), or raise recsys.serving_stats_max (needs a restart).")));
        });

    // Per model version: the model entry, and the cache lookups counted with calls.
    struct ModelFigures {
        const Counters *model_entry = nullptr;
        uint64 hits = 0, misses = 0;
        bool has_calls = false;
    };
    std::map<std::pair<std::string, int32>, ModelFigures> models;
    for (const EntryCopy &s : snapshots) {
        if (s.key.version == 0) continue;
        ModelFigures &m = models[{s.key.model, s.key.version}];
        m.hits += s.c.cache_hits;
        m.misses += s.c.cache_misses;
        if (s.key.entry_point == kModelEntry) m.model_entry = &s.c;
        else m.has_calls = true;
    }

    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    for (const EntryCopy &s : snapshots) {
        const bool model_row = s.key.entry_point == kModelEntry;
        const ModelFigures *m = s.key.version != 0 ? &models[{s.key.model, s.key.version}] : nullptr;
        if (model_row && m->has_calls) continue;  // shown on the rows of its entry points
        const Counters &c = s.c;
        const Counters *me = m ? m->model_entry : nullptr;
        const Datum errors_json = sqlstate_counts_jsonb(c);  // "{}" on a model row: it counts no calls
        const char *model = s.key.model;
        const char *entry_name = model_row ? nullptr : entry_names[s.key.entry_point];
        pg_call([&] {
            Datum v[19];
            bool n[19] = {false};
            n[0] = model[0] == '\0';
            v[0] = n[0] ? (Datum)0 : CStringGetTextDatum(model);
            n[1] = s.key.version == 0;
            v[1] = Int32GetDatum(s.key.version);
            n[2] = entry_name == nullptr;
            v[2] = n[2] ? (Datum)0 : CStringGetTextDatum(entry_name);
            v[3] = Int64GetDatum(int64(c.calls));
            v[4] = Int64GetDatum(int64(c.customers));
            v[5] = Int64GetDatum(int64(c.errors));
            v[6] = errors_json;
            const bool timed = c.timed > 0;
            const double q[3] = {0.5, 0.95, 0.99};
            for (int i = 0; i < 3; ++i) {
                n[7 + i] = !timed;
                v[7 + i] = Float8GetDatum(timed ? recsys::latency_quantile_ns(c.histogram, q[i], c.max_ns) / 1e6 : 0);
            }
            n[10] = n[11] = !timed;
            v[10] = Float8GetDatum(timed ? double(c.total_ns) / double(c.timed) / 1e6 : 0);
            v[11] = Float8GetDatum(double(c.max_ns) / 1e6);
            // Per model version; not known for calls that failed before a version was resolved.
            for (int i = 12; i <= 15; ++i) n[i] = m == nullptr;
            v[12] = Int64GetDatum(me ? int64(me->loads) : 0);
            v[13] = Int64GetDatum(m ? int64(m->hits) : 0);
            v[14] = Int64GetDatum(m ? int64(m->misses) : 0);
            v[15] = Int64GetDatum(me ? me->cached_bytes : 0);
            v[16] = TimestampTzGetDatum(c.since);
            v[17] = Int64GetDatum(int64(c.from_stored_state));
            v[18] = Int64GetDatum(int64(c.from_full_history));
            tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
        });
    }
    return (Datum)0;
}

// recsys.serving_stats_reset(): zeroes every counter of every database; entries of call
// figures are freed, those of a model version whose parsed model is still cached somewhere
// keep their cached_bytes.
RECSYS_FUNCTION(recsys_serving_stats_reset) {
    require_shared();
    const TimestampTz now = pg_call([] { return GetCurrentTimestamp(); });
    pg_call([&] {
        LWLockAcquire(shared->lock, LW_EXCLUSIVE);
        for (int i = 0; i < shared->max_entries; ++i) {
            Entry &e = entries[i];
            if (e.incarnation == 0) continue;
            bool keep;
            SpinLockAcquire(&e.mutex);
            keep = e.key.entry_point == kModelEntry && e.c.cached_bytes != 0;
            const int64 cached_bytes = e.c.cached_bytes;
            memset(&e.c, 0, sizeof e.c);
            e.c.since = now;
            if (keep) e.c.cached_bytes = cached_bytes;
            else e.incarnation = 0;
            SpinLockRelease(&e.mutex);
            if (!keep) {
                hash_search(index_table, &e.key, HASH_REMOVE, nullptr);
                --shared->used;
            }
        }
        pg_atomic_write_u64(&shared->dropped, 0);
        LWLockRelease(shared->lock);
    });
    PG_RETURN_VOID();
}
