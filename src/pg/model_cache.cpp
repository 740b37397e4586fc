#include "model_cache.h"

#include <list>
#include <map>
#include <utility>

#include "guard.h"
#include "memory_budget.h"
#include "model_format.h"
#include "reduced_precision.h"
#include "settings.h"

namespace recsys::pg {

namespace {

// Bumped by the relcache callback whenever recsys.models may have changed.
uint64_t registry_generation = 1;
// Bumped when this backend's own statement changed the registry (the trigger ran here).
uint64_t own_registry_changes = 0;
Oid models_relid = InvalidOid;
Oid registry_owner = InvalidOid;
// recsys.shadow_deployments; InvalidOid while the extension's SQL objects predate 0.3.0.
Oid shadow_relid = InvalidOid;

// Identifies the top-level statement: one statement scores with one version of a model, even
// if a promote commits while it runs, unless the statement changed the registry itself.
struct StatementId {
    LocalTransactionId transaction = InvalidLocalTransactionId;
    TimestampTz started = 0;
    uint64_t own_changes = 0;
    bool operator==(const StatementId &o) const {
        return transaction == o.transaction && started == o.started && own_changes == o.own_changes;
    }
};

StatementId current_statement() {
    return {MyProc->lxid, GetCurrentStatementStartTimestamp(), own_registry_changes};
}

struct Resolution {
    // The registry generation read before the lookup's snapshot was taken: any change
    // announced after that bumps the generation, and the next statement looks again.
    uint64_t generation = 0;
    // Looked up with a snapshot taken for the lookup (READ COMMITTED, not in a parallel
    // query): valid across statements until the next invalidation. Otherwise the lookup used
    // the statement's own snapshot, which may predate a change already announced, so it holds
    // for that statement only.
    bool fresh = false;
    StatementId used_by;
    int32_t version = 0;
    std::string sha256_hex;
    // For the production version: the shadow deployment read by the same lookup.
    ShadowSetting shadow;
};

// Never destroyed: a static container's destructor would run at backend exit, after
// PostgreSQL has begun tearing down, and free saved SPI plans from C++ static teardown.
// The process's exit reclaims the memory.
auto &resolutions = *new std::map<std::pair<std::string, int32_t>, Resolution>();  // (name, version or -1)
auto &loaded = *new std::list<std::shared_ptr<LoadedModel>>();                    // most recently used first
uint64_t swept_generation = 0;
size_t cached_bytes = 0;

// "recsys model cache", an accounting-only memory context under TopMemoryContext. The parsed
// models live in C++ containers (the core knows nothing of palloc); this context allocates
// nothing and reports their bytes and number, so that pg_backend_memory_contexts and
// pg_log_backend_memory_contexts show what the cache holds.
MemoryContextData cache_context;
MemoryContextMethods cache_context_methods;

void *cache_context_alloc(MemoryContext, Size) { return nullptr; }  // never the current context
void cache_context_free(MemoryContext, void *) {}
void *cache_context_realloc(MemoryContext, void *, Size) { return nullptr; }
void cache_context_reset(MemoryContext) {}
void cache_context_delete(MemoryContext) {}
Size cache_context_chunk_space(MemoryContext, void *) { return 0; }
bool cache_context_is_empty(MemoryContext) { return cached_bytes == 0; }
void cache_context_stats(MemoryContext context, MemoryStatsPrintFunc printfunc, void *passthru,
                         MemoryContextCounters *totals, bool print_to_stderr) {
    if (printfunc) {
        char line[128];
        snprintf(line, sizeof line, "%zu total in %zu parsed models", cached_bytes, loaded.size());
        printfunc(context, passthru, line, print_to_stderr);
    }
    if (totals) {
        totals->nblocks += loaded.size();
        totals->totalspace += cached_bytes;
    }
}

void account(const std::shared_ptr<LoadedModel> &m, bool add) {
    if (add) cached_bytes += m->bytes;
    else cached_bytes -= m->bytes;
    cache_context.mem_allocated = cached_bytes;
    serving::cached_bytes_changed(m->serving, add ? int64_t(m->bytes) : -int64_t(m->bytes));
}

void registry_changed(Datum, Oid relid) {
    if (relid == InvalidOid || relid == models_relid) ++registry_generation;
}

// Finds recsys.models and its owner again (DROP and CREATE EXTENSION give it a new oid).
void lookup_registry() {
    pg_call([] {
        models_relid = InvalidOid;
        registry_owner = InvalidOid;
        shadow_relid = InvalidOid;
        Oid ns = get_namespace_oid("recsys", true);
        if (ns == InvalidOid) return;
        shadow_relid = get_relname_relid("shadow_deployments", ns);
        models_relid = get_relname_relid("models", ns);
        if (models_relid == InvalidOid) return;
        HeapTuple tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(models_relid));
        if (!HeapTupleIsValid(tuple)) return;
        registry_owner = reinterpret_cast<Form_pg_class>(GETSTRUCT(tuple))->relowner;
        ReleaseSysCache(tuple);
    });
    if (registry_owner == InvalidOid)
        throw SqlError(ERRCODE_UNDEFINED_TABLE, "the recsys model registry (recsys.models) does not exist",
                       "", "Run CREATE EXTENSION recsys in this database.");
}

// Runs a registry query (read-only) under the snapshot it should see; see Resolution::fresh.
// The caller holds an SPI connection; results stay in SPI_tuptable.
uint64_t registry_query(const char *sql, int nargs, Oid *types, Datum *args, bool fresh, long limit) {
    return as_registry_owner([&] {
        return pg_call([&]() -> uint64_t {
            SPIPlanPtr plan = SPI_prepare(sql, nargs, types);
            if (plan == nullptr) elog(ERROR, "SPI_prepare failed for a registry query: %s", SPI_result_code_string(SPI_result));
            Snapshot snapshot = fresh ? GetLatestSnapshot() : GetActiveSnapshot();
            int rc = SPI_execute_snapshot(plan, args, nullptr, snapshot, InvalidSnapshot, true, false, limit);
            if (rc != SPI_OK_SELECT) elog(ERROR, "registry lookup failed: %s", SPI_result_code_string(rc));
            SPI_freeplan(plan);
            return SPI_processed;
        });
    });
}

// Whether a registry lookup may take a snapshot of its own (Resolution::fresh): not under
// REPEATABLE READ, where the transaction's snapshot rules, nor in a parallel query, where no
// new snapshot may be taken.
bool may_take_fresh_snapshot() { return !IsolationUsesXactSnapshot() && !IsInParallelMode(); }

// Column `column` (1-based) of row r of the last SPI result, as text or as an integer.
std::string text_value(uint64_t r, int column) {
    const char *value = pg_call([&] { return SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, column); });
    return value ? value : "";
}
int32_t int_value(uint64_t r, int column) {
    return pg_call([&] {
        bool isnull;
        return DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, column, &isnull));
    });
}
// NULL reads as 0.
double float8_value(uint64_t r, int column) {
    return pg_call([&] {
        bool isnull;
        const Datum d = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, column, &isnull);
        return isnull ? 0.0 : DatumGetFloat8(d);
    });
}

// Asks the registry which version to use and its checksum; throws for unknown ones.
Resolution resolve(const std::string &name, int32_t requested) {
    Resolution r;
    // Read before the snapshot is taken (docs/cpp-in-postgres.md, "model cache").
    r.generation = registry_generation;
    r.fresh = may_take_fresh_snapshot();
    const char *name_text = name.c_str();
    Datum args[2] = {pg_call([&] { return CStringGetTextDatum(name_text); }), Int32GetDatum(requested)};
    Oid types[2] = {TEXTOID, INT4OID};
    // The production version comes with its shadow deployment, if any (NULLs when none), so
    // that the online path knows it without a query of its own.
    const bool with_shadow = requested < 0 && shadow_relid != InvalidOid;
    const char *sql = with_shadow
                          ? "SELECT m.version, pg_catalog.encode(m.sha256, 'hex'), s.version, s.sample "
                            "FROM recsys.models m LEFT JOIN recsys.shadow_deployments s "
                            "ON s.name OPERATOR(pg_catalog.=) m.name "
                            "WHERE m.name OPERATOR(pg_catalog.=) $1 AND m.status OPERATOR(pg_catalog.=) 'production'"
                      : requested < 0
                          ? "SELECT version, pg_catalog.encode(sha256, 'hex') FROM recsys.models "
                            "WHERE name OPERATOR(pg_catalog.=) $1 AND status OPERATOR(pg_catalog.=) 'production'"
                          : "SELECT version, pg_catalog.encode(sha256, 'hex') FROM recsys.models "
                            "WHERE name OPERATOR(pg_catalog.=) $1 AND version OPERATOR(pg_catalog.=) $2";
    if (registry_query(sql, requested < 0 ? 1 : 2, types, args, r.fresh, 1) == 0) {
        const bool any_version =
            registry_query("SELECT 1 FROM recsys.models WHERE name OPERATOR(pg_catalog.=) $1", 1, types, args, r.fresh, 1) > 0;
        if (!any_version)
            throw SqlError(ERRCODE_UNDEFINED_OBJECT, "model \"" + name + "\" does not exist",
                           "No version of it is registered in recsys.models.",
                           "Register one with recsys.register_model().");
        if (requested < 0)
            throw SqlError(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                           "model \"" + name + "\" has no production version",
                           "Its versions are all candidates or archived.",
                           "Promote one with recsys.promote(name, version), or pass version => N.");
        throw SqlError(ERRCODE_UNDEFINED_OBJECT, model_label(name, requested) + " does not exist",
                       "See SELECT version, status FROM recsys.models WHERE name = '" + name + "'.");
    }
    r.version = int_value(0, 1);
    r.sha256_hex = text_value(0, 2);
    if (with_shadow) {
        r.shadow.version = int_value(0, 3);  // 0 (NULL) when no shadow is set
        r.shadow.sample = float8_value(0, 4);
    }
    return r;
}

// After the registry changed: drops parsed models whose row was deleted or replaced, so that
// stale models do not wait for an LRU eviction to be freed.
void sweep_stale_models() {
    swept_generation = registry_generation;
    if (loaded.empty()) return;
    // (name, version) -> the registry's sha256 now; empty when the row is gone.
    std::map<std::pair<std::string, int32_t>, std::string> current;
    std::vector<std::string> names;
    for (const auto &m : loaded) {
        current.emplace(std::make_pair(m->name, m->version), std::string());
        names.push_back(m->name);
    }
    const char *sql =
        "SELECT name, version, pg_catalog.encode(sha256, 'hex') FROM recsys.models "
        "WHERE name OPERATOR(pg_catalog.=) ANY($1)";
    Datum args[1];
    pg_call([&] {
        Datum *elems = static_cast<Datum *>(palloc(sizeof(Datum) * names.size()));
        for (size_t i = 0; i < names.size(); ++i) elems[i] = CStringGetTextDatum(names[i].c_str());
        args[0] = PointerGetDatum(construct_array(elems, int(names.size()), TEXTOID, -1, false, TYPALIGN_INT));
    });
    Oid types[1] = {TEXTARRAYOID};
    const uint64_t found = registry_query(sql, 1, types, args, may_take_fresh_snapshot(), 0);
    for (uint64_t r = 0; r < found; ++r) {
        auto it = current.find({text_value(r, 1), int_value(r, 2)});
        if (it != current.end()) it->second = text_value(r, 3);
    }
    for (auto m = loaded.begin(); m != loaded.end();) {
        if (current[{(*m)->name, (*m)->version}] != (*m)->sha256_hex) {
            account(*m, false);
            m = loaded.erase(m);
        } else {
            ++m;
        }
    }
}

std::shared_ptr<LoadedModel> load(const std::string &name, const Resolution &r) {
    const int32_t version = r.version;
    // Copy the bytes out of the SPI result, then parse with no PostgreSQL frames involved.
    std::vector<uint8_t> bytes;
    const char *name_text = name.c_str();
    Datum args[2] = {pg_call([&] { return CStringGetTextDatum(name_text); }), Int32GetDatum(version)};
    Oid types[2] = {TEXTOID, INT4OID};
    const uint64_t rows = registry_query(
        "SELECT model FROM recsys.models WHERE name OPERATOR(pg_catalog.=) $1 AND version OPERATOR(pg_catalog.=) $2", 2,
        types, args, r.fresh, 1);
    if (rows != 1) throw SqlError(ERRCODE_UNDEFINED_OBJECT, model_label(name, version) + " vanished from the registry during lookup");
    pg_call([&] {
        bool isnull;
        Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
        if (isnull) return;
        bytea *b = DatumGetByteaPP(d);
        const uint8_t *p = reinterpret_cast<const uint8_t *>(VARDATA_ANY(b));
        bytes.assign(p, p + VARSIZE_ANY_EXHDR(b));
    });
    auto m = std::make_shared<LoadedModel>();
    m->name = name;
    m->version = version;
    m->sha256_hex = r.sha256_hex;
    m->serving = serving::model_handle(name, version);
    try {
        m->model = parse_model(bytes.data(), bytes.size());
    } catch (const recsys::Error &e) {
        throw SqlError(ERRCODE_DATA_CORRUPTED, model_label(name, version) + " cannot be loaded: " + e.what(), e.detail(),
                       "The registry verifies models at registration; the stored bytes were changed since.");
    }
    check_single_customer(model_label(name, version), m->model);  // recsys.max_batch_memory
    m->encoder = std::make_unique<FeatureEncoder>(m->model);
    m->reader = std::make_unique<SourceReader>(m->model, model_label(name, version));
    m->single = std::make_unique<LstmForward>(m->model, 1);
    m->single->set_poll(interrupt_poll());  // once, not on every recommend()
    const size_t T = m->model.window_months;
    m->steps.resize(T * m->encoder->step_width());
    m->statics.resize(m->encoder->static_width());
    m->scores.resize(m->model.product_count());
    m->held.resize(m->model.product_count());
    m->end_month.resize(1);
    m->lengths.resize(1);
    if (m->model.history == HistoryMode::FromStartMonth) {
        m->continuation = std::make_unique<StateContinuation>(m->model);
        m->continuation->set_poll(interrupt_poll());
        m->state.resize(m->continuation->state_size());
    }
    // The parsed weights take about as much as their serialized form; the buffers for one
    // customer are counted as allocated, and so are a bf16 or int8 model's packed weights.
    m->bytes = bytes.size() + sizeof(LoadedModel) + sizeof(float) * (m->steps.size() + m->statics.size() + m->scores.size()) +
               m->held.size() + ReducedPrecisionWeights::bytes_for(m->model);
    return m;
}

// Evicts least recently used models beyond the count and byte budgets, never `keep`.
void enforce_budget(const std::shared_ptr<LoadedModel> &keep) {
    const size_t budget = size_t(settings::model_cache_memory_kb) * 1024;
    auto it = loaded.end();
    while (it != loaded.begin() && (loaded.size() > size_t(settings::model_cache_size) || cached_bytes > budget)) {
        --it;
        if (*it == keep) continue;
        account(*it, false);
        it = loaded.erase(it);
    }
}

}  // namespace

void register_model_cache_callbacks() {
    CacheRegisterRelcacheCallback(registry_changed, (Datum)0);
    cache_context_methods.alloc = cache_context_alloc;
    cache_context_methods.free_p = cache_context_free;
    cache_context_methods.realloc = cache_context_realloc;
    cache_context_methods.reset = cache_context_reset;
    cache_context_methods.delete_context = cache_context_delete;
    cache_context_methods.get_chunk_space = cache_context_chunk_space;
    cache_context_methods.is_empty = cache_context_is_empty;
    cache_context_methods.stats = cache_context_stats;
    MemoryContextCreate(&cache_context, T_AllocSetContext, &cache_context_methods, TopMemoryContext,
                        "recsys model cache");
}

void invalidate_registry_everywhere(Oid registry_relid) {
    ++own_registry_changes;
    pg_call([&] { CacheInvalidateRelcacheByRelid(registry_relid); });
    // A change of recsys.shadow_deployments (whose trigger calls this too) is announced as a
    // change of recsys.models: production resolutions carry the shadow setting, and a backend
    // that has not looked up the shadow table's oid yet (its registry lookups predate an
    // ALTER EXTENSION UPDATE) still recognizes the registry's oid.
    if (registry_relid != models_relid) {
        lookup_registry();  // this backend may not know the registry's oid yet
        if (registry_relid != models_relid) pg_call([] { CacheInvalidateRelcacheByRelid(models_relid); });
    }
}

Oid registry_owner_role() { return registry_owner; }

std::string model_label(const std::string &name, int32_t version) {
    return "model \"" + name + "\" version " + std::to_string(version);
}

std::shared_ptr<LoadedModel> acquire_model(const std::string &name, int32_t version, ShadowSetting *shadow) {
    const auto key = std::make_pair(name, version < 0 ? -1 : version);
    const StatementId statement = current_statement();
    auto it = resolutions.find(key);
    bool valid = it != resolutions.end() && it->second.used_by == statement;  // one version per statement
    if (!valid) {
        // A new statement: take in the registry changes other sessions committed, also inside
        // an explicit transaction, where no lock acquisition would process them.
        pg_call([] { AcceptInvalidationMessages(); });
        valid = it != resolutions.end() && it->second.fresh && it->second.generation == registry_generation;
    }
    if (!valid) {
        if (models_relid == InvalidOid || swept_generation != registry_generation) {
            lookup_registry();
            sweep_stale_models();
        }
        it = resolutions.insert_or_assign(key, resolve(name, version)).first;
    }
    Resolution &r = it->second;
    r.used_by = statement;
    if (shadow) *shadow = version < 0 ? r.shadow : ShadowSetting();
    for (auto m = loaded.begin(); m != loaded.end(); ++m) {
        if ((*m)->name == name && (*m)->version == r.version) {
            if ((*m)->sha256_hex != r.sha256_hex) {  // the row was replaced: parse again
                account(*m, false);
                loaded.erase(m);
                break;
            }
            loaded.splice(loaded.begin(), loaded, m);
            enforce_budget(loaded.front());  // the budget may have been lowered since
            serving::cache_hit(loaded.front()->serving);
            return loaded.front();
        }
    }
    serving::cache_miss(serving::model_handle(name, r.version));
    auto model = load(name, r);
    serving::model_loaded(model->serving);
    loaded.push_front(model);
    account(model, true);
    enforce_budget(model);
    return model;
}

void require_registrant_can_read(const LoadedModel &m) {
    // Between installing a new library and ALTER EXTENSION recsys UPDATE, the SQL objects
    // may still be 0.1.0's, which have no such check.
    const bool installed = pg_call([] {
        return OidIsValid(LookupFuncName(list_make2(makeString(pstrdup("recsys")), makeString(pstrdup("require_model_readable"))),
                                         -1, nullptr, true));
    });
    if (!installed) return;
    const char *name_text = m.name.c_str();
    Datum args[2] = {pg_call([&] { return CStringGetTextDatum(name_text); }), Int32GetDatum(m.version)};
    Oid types[2] = {TEXTOID, INT4OID};
    // Raises 42501 naming the column when the registrant may not read it (any longer).
    registry_query(
        "SELECT recsys.require_model_readable(feature_spec, created_by, 'publish scores of') FROM recsys.models "
        "WHERE name OPERATOR(pg_catalog.=) $1 AND version OPERATOR(pg_catalog.=) $2",
        2, types, args, may_take_fresh_snapshot(), 1);
}

}  // namespace recsys::pg
