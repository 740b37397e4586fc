#include "model_cache.h"

#include <list>
#include <map>
#include <utility>

#include "guard.h"
#include "model_format.h"
#include "settings.h"

namespace recsys::pg {

namespace {

// Bumped by the relcache callback whenever recsys.models may have changed.
uint64_t registry_generation = 1;
Oid models_relid = InvalidOid;

struct Resolution {
    uint64_t generation;
    int32_t version;
    std::string sha256_hex;
};
// (name, requested version or -1 for production) -> what the registry said.
std::map<std::pair<std::string, int32_t>, Resolution> resolutions;
// Most recently used first.
std::list<std::shared_ptr<LoadedModel>> loaded;

void registry_changed(Datum, Oid relid) {
    if (relid == InvalidOid || relid == models_relid) ++registry_generation;
}

Oid lookup_models_relid() {
    return pg_call([] {
        Oid ns = get_namespace_oid("recsys", true);
        return ns == InvalidOid ? InvalidOid : get_relname_relid("models", ns);
    });
}

std::string label(const std::string &name, int32_t version) {
    return "model \"" + name + "\" version " + std::to_string(version);
}

// Asks the registry which version to use and its checksum; throws for unknown ones.
Resolution resolve(const std::string &name, int32_t requested) {
    int32_t version = 0;
    const char *sha = nullptr;
    bool any_version = false;
    const uint64_t found = pg_call([&]() -> uint64_t {
        Datum args[2] = {CStringGetTextDatum(name.c_str()), Int32GetDatum(requested)};
        Oid types[2] = {TEXTOID, INT4OID};
        const char *sql = requested < 0
                              ? "SELECT version, encode(sha256, 'hex') FROM recsys.models "
                                "WHERE name = $1 AND status = 'production'"
                              : "SELECT version, encode(sha256, 'hex') FROM recsys.models "
                                "WHERE name = $1 AND version = $2";
        int rc = SPI_execute_with_args(sql, requested < 0 ? 1 : 2, types, args, nullptr, true, 1);
        if (rc != SPI_OK_SELECT) elog(ERROR, "registry lookup failed: %s", SPI_result_code_string(rc));
        if (SPI_processed == 0) {
            Datum a[1] = {CStringGetTextDatum(name.c_str())};
            Oid t[1] = {TEXTOID};
            SPI_execute_with_args("SELECT 1 FROM recsys.models WHERE name = $1", 1, t, a, nullptr, true, 1);
            any_version = SPI_processed > 0;
            return 0;
        }
        bool isnull;
        version = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
        sha = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
        return 1;
    });
    if (!found) {
        if (!any_version)
            throw SqlError(ERRCODE_UNDEFINED_OBJECT, "model \"" + name + "\" does not exist",
                           "No version of it is registered in recsys.models.",
                           "Register one with recsys.register_model().");
        if (requested < 0)
            throw SqlError(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                           "model \"" + name + "\" has no production version",
                           "Its versions are all candidates or archived.",
                           "Promote one with recsys.promote(name, version), or pass version => N.");
        throw SqlError(ERRCODE_UNDEFINED_OBJECT, label(name, requested) + " does not exist",
                       "See SELECT version, status FROM recsys.models WHERE name = '" + name + "'.");
    }
    return {registry_generation, version, sha ? sha : ""};
}

std::shared_ptr<LoadedModel> load(const std::string &name, int32_t version, const std::string &sha) {
    // Copy the bytes out of the SPI result, then parse with no PostgreSQL frames involved.
    std::vector<uint8_t> bytes;
    pg_call([&] {
        Datum args[2] = {CStringGetTextDatum(name.c_str()), Int32GetDatum(version)};
        Oid types[2] = {TEXTOID, INT4OID};
        int rc = SPI_execute_with_args("SELECT model FROM recsys.models WHERE name = $1 AND version = $2", 2, types,
                                       args, nullptr, true, 1);
        if (rc != SPI_OK_SELECT || SPI_processed != 1) elog(ERROR, "model bytes vanished during lookup");
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
    m->sha256_hex = sha;
    try {
        m->model = parse_model(bytes.data(), bytes.size());
    } catch (const recsys::Error &e) {
        throw SqlError(ERRCODE_DATA_CORRUPTED, label(name, version) + " cannot be loaded: " + e.what(), e.detail(),
                       "The registry verifies models at registration; the stored bytes were changed since.");
    }
    m->encoder = std::make_unique<FeatureEncoder>(m->model);
    m->reader = std::make_unique<SourceReader>(m->model, label(name, version));
    m->single = std::make_unique<LstmForward>(m->model, 1);
    const size_t T = m->model.window_months;
    m->steps.resize(T * m->encoder->step_width());
    m->statics.resize(m->encoder->static_width());
    m->scores.resize(m->model.product_count());
    m->held.resize(m->model.product_count());
    m->end_month.resize(1);
    m->lengths.resize(1);
    return m;
}

}  // namespace

void register_model_cache_callbacks() { CacheRegisterRelcacheCallback(registry_changed, (Datum)0); }

void invalidate_registry_everywhere(Oid registry_relid) {
    pg_call([&] { CacheInvalidateRelcacheByRelid(registry_relid); });
}

std::shared_ptr<LoadedModel> acquire_model(const std::string &name, int32_t version) {
    const auto key = std::make_pair(name, version < 0 ? -1 : version);
    auto it = resolutions.find(key);
    if (it == resolutions.end() || it->second.generation != registry_generation) {
        // Looked up again after every invalidation: DROP and CREATE EXTENSION give the
        // registry table a new oid, and dropping the old one sends an invalidation.
        models_relid = lookup_models_relid();
        Resolution r = resolve(name, version);
        it = resolutions.insert_or_assign(key, std::move(r)).first;
    }
    const Resolution &r = it->second;
    for (auto m = loaded.begin(); m != loaded.end(); ++m) {
        if ((*m)->name == name && (*m)->version == r.version) {
            if ((*m)->sha256_hex != r.sha256_hex) {  // the row was replaced: parse again
                loaded.erase(m);
                break;
            }
            loaded.splice(loaded.begin(), loaded, m);
            return loaded.front();
        }
    }
    auto model = load(name, r.version, r.sha256_hex);
    loaded.push_front(model);
    while (loaded.size() > size_t(settings::model_cache_size)) loaded.pop_back();
    return model;
}

}  // namespace recsys::pg
