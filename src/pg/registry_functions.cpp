// SQL-callable helpers of the model registry: validating model bytes, reading a model file
// from the server (pg_read_server_files), and telling every backend that the registry changed.
#include <cstdio>
#include <string>
#include <vector>

#include "guard.h"
#include "model_cache.h"
#include "model_format.h"
#include "model_json.h"
#include "sha256.h"
#include "sql_values.h"

using namespace recsys;
using namespace recsys::pg;

namespace {

std::vector<uint8_t> bytea_arg(FunctionCallInfo fcinfo, int n) {
    std::vector<uint8_t> bytes;
    pg_call([&] {
        bytea *b = PG_GETARG_BYTEA_PP(n);
        const uint8_t *p = reinterpret_cast<const uint8_t *>(VARDATA_ANY(b));
        bytes.assign(p, p + VARSIZE_ANY_EXHDR(b));
    });
    return bytes;
}

}  // namespace

// recsys.model_spec(bytea) -> jsonb: parses and validates the bytes (size, checksum, every
// dimension) and returns the model's description without weights. Errors name the defect.
RECSYS_FUNCTION(recsys_model_spec) {
    const std::vector<uint8_t> bytes = bytea_arg(fcinfo, 0);
    const Model model = parse_model(bytes.data(), bytes.size());
    const std::string json = model_spec_json(model);
    const char *utf8 = json.c_str();
    const int length = int(json.size());
    // Model strings are UTF-8 (checked by the parser); in a database of another encoding they
    // are converted, and a character the encoding cannot represent is refused here rather
    // than stored as something else.
    return pg_call([&] {
        char *text = pg_any_to_server(utf8, length, PG_UTF8);
        return DirectFunctionCall1(jsonb_in, CStringGetDatum(text));
    });
}

// recsys.read_model_file(path text) -> bytea. Reads a model file from the server's file
// system for a caller who has the privileges of pg_read_server_files (checked here, against
// the current user, so that a SECURITY DEFINER caller cannot lend it).
RECSYS_FUNCTION(recsys_read_model_file) {
    const std::string path = pg_call([&] { return text_to_cstring(PG_GETARG_TEXT_PP(0)); });
    const bool allowed = pg_call([] { return has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES); });
    if (!allowed)
        throw SqlError(ERRCODE_INSUFFICIENT_PRIVILEGE, "permission denied to read model file \"" + path + "\"",
                       "Reading files on the database server requires the privileges of pg_read_server_files.",
                       "A superuser can GRANT pg_read_server_files TO the role, or register the bytes with "
                       "recsys.register_model(name, bytea) instead.");
    std::vector<uint8_t> bytes;
    pg_call([&] {
        FILE *file = AllocateFile(path.c_str(), PG_BINARY_R);
        if (file == nullptr)
            ereport(ERROR, (errcode_for_file_access(), errmsg("could not open model file \"%s\": %m", path.c_str())));
        uint8_t buffer[65536];
        size_t n;
        while ((n = fread(buffer, 1, sizeof buffer, file)) > 0) {
            if (bytes.size() + n > kModelMaxBytes)
                ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                                errmsg("model file \"%s\" is larger than 1 GB", path.c_str())));
            bytes.insert(bytes.end(), buffer, buffer + n);
            CHECK_FOR_INTERRUPTS();
        }
        if (ferror(file))
            ereport(ERROR, (errcode_for_file_access(), errmsg("could not read model file \"%s\": %m", path.c_str())));
        FreeFile(file);
    });
    return bytea_datum(bytes);
}

// Statement-level trigger on recsys.models: any change to the registry (promote, rollback,
// register, a DBA's UPDATE) invalidates every backend's resolution of production versions
// when the transaction commits, and this backend's at once.
RECSYS_FUNCTION(recsys_registry_changed) {
    const bool is_trigger = CALLED_AS_TRIGGER(fcinfo);
    if (!is_trigger) throw SqlError(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED, "recsys_registry_changed must be called as a trigger");
    invalidate_registry_everywhere(RelationGetRelid(reinterpret_cast<TriggerData *>(fcinfo->context)->tg_relation));
    return PointerGetDatum(nullptr);
}

// recsys.acting_role() -> name: the role the session acts as (SET ROLE, else the login role).
// SECURITY DEFINER changes current_user but not this, so the registry's SECURITY DEFINER
// functions record and check the role that called them, not their owner.
RECSYS_FUNCTION(recsys_acting_role) {
    return pg_call([&] {
        const char *role = GetUserNameFromId(GetOuterUserId(), false);
        return DirectFunctionCall1(namein, CStringGetDatum(role));
    });
}
