#include "guard.h"

#include <cstdio>
#include <cstring>
#include <new>

#include "serving_stats.h"

namespace recsys::pg {

namespace {

int sqlstate_of(ErrorKind kind) {
    switch (kind) {
        case ErrorKind::InvalidParameter: return ERRCODE_INVALID_PARAMETER_VALUE;
        case ErrorKind::DataException: return ERRCODE_DATA_EXCEPTION;
        case ErrorKind::CorruptModel: return ERRCODE_DATA_CORRUPTED;
        case ErrorKind::ProgramLimit: return ERRCODE_PROGRAM_LIMIT_EXCEEDED;
        case ErrorKind::InvalidText: return ERRCODE_CHARACTER_NOT_IN_REPERTOIRE;
        case ErrorKind::FeatureNotSupported: return ERRCODE_FEATURE_NOT_SUPPORTED;
        case ErrorKind::Internal: return ERRCODE_INTERNAL_ERROR;
    }
    return ERRCODE_INTERNAL_ERROR;
}

// Fixed buffers: copying the message must not allocate while a C++ exception is alive,
// because an allocation failure there would longjmp out of a catch block.
struct PendingError {
    int sqlstate = ERRCODE_INTERNAL_ERROR;
    char message[1024] = {0};
    char detail[2048] = {0};
    char hint[1024] = {0};

    void set(int code, const char *msg, const char *det, const char *hnt) {
        sqlstate = code;
        snprintf(message, sizeof message, "%s", msg);
        snprintf(detail, sizeof detail, "%s", det);
        snprintf(hint, sizeof hint, "%s", hnt);
    }
};

}  // namespace

ErrorData *run_pg_try(void (*thunk)(void *), void *context) {
    MemoryContext caller_context = CurrentMemoryContext;
    ErrorData *volatile edata = nullptr;
    PG_TRY();
    {
        thunk(context);
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(caller_context);
        edata = CopyErrorData();
        FlushErrorState();
    }
    PG_END_TRY();
    return edata;
}

Datum run_guarded(const char *function_name, FunctionCallInfo fcinfo, Datum (*body)(FunctionCallInfo),
                  int serving_entry) {
    ErrorData *postgres_error = nullptr;
    PendingError pending;
    // Every error of the body, C++ or PostgreSQL (a cancel too), reaches a catch below: the one
    // place where recsys.serving_stats learns a call's SQLSTATE.
    const int serving_call = serving::call_begin(serving_entry);
    try {
        const Datum result = body(fcinfo);
        serving::call_end(serving_call, 0);
        return result;
    } catch (const PgError &e) {
        postgres_error = e.edata();
    } catch (const SqlError &e) {
        pending.set(e.sqlstate(), e.what(), e.detail().c_str(), e.hint().c_str());
    } catch (const recsys::Error &e) {
        pending.set(sqlstate_of(e.kind()), e.what(), e.detail().c_str(), e.hint().c_str());
    } catch (const std::bad_alloc &) {
        pending.set(ERRCODE_OUT_OF_MEMORY, "out of memory", "recsys could not allocate memory.", "");
    } catch (const std::exception &e) {
        pending.set(ERRCODE_INTERNAL_ERROR, e.what(), "An unexpected C++ exception reached the entry guard.", "");
        snprintf(pending.detail, sizeof pending.detail, "Unexpected C++ exception in %s.", function_name);
    } catch (...) {
        pending.set(ERRCODE_INTERNAL_ERROR, "unexpected C++ exception", function_name, "");
    }
    // Every C++ frame below this one is gone; PostgreSQL may longjmp from here.
    serving::call_end(serving_call, postgres_error ? postgres_error->sqlerrcode : pending.sqlstate);
    if (postgres_error) ReThrowError(postgres_error);
    // ereport() spelled out, so that the error's location is the SQL-callable function
    // rather than this line of the guard, which would be the same for every error.
    if (errstart(ERROR, TEXTDOMAIN)) {
        errcode(pending.sqlstate);
        errmsg("%s", pending.message);
        if (pending.detail[0]) errdetail("%s", pending.detail);
        if (pending.hint[0]) errhint("%s", pending.hint);
        errfinish("recsys", 0, function_name);
    }
    pg_unreachable();
}

}  // namespace recsys::pg
