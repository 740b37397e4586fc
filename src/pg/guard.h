// The two guards between C++ and PostgreSQL (docs/cpp-in-postgres.md).
//
// 1. PostgreSQL -> C++: every SQL-callable function is defined with RECSYS_FUNCTION. Its
//    body runs inside try/catch; a C++ exception becomes ereport(ERROR) with a SQLSTATE
//    only after every C++ frame is gone, so no exception ever reaches PostgreSQL.
// 2. C++ -> PostgreSQL: any PostgreSQL call that may raise an error (palloc, SPI, detoast,
//    CHECK_FOR_INTERRUPTS) runs through pg_call(). It catches the longjmp in its own
//    frame, copies the error, and rethrows it as PgError, so ereport never longjmps over a
//    C++ frame that owns resources. The entry guard re-raises the original error intact.
//
// Rules for code inside a pg_call lambda: no locals with destructors, no throw/return out
// of PG_TRY (pg_call catches C++ exceptions from the lambda and rethrows them after
// PG_END_TRY).
#pragma once

#include "postgres_headers.h"

#include <exception>
#include <type_traits>

#include "errors.h"

namespace recsys::pg {

// A PostgreSQL error carried through C++ frames; the entry guard rethrows it.
class PgError : public std::exception {
public:
    explicit PgError(ErrorData *edata) : edata_(edata) {}
    ErrorData *edata() const noexcept { return edata_; }
    const char *what() const noexcept override { return edata_ && edata_->message ? edata_->message : "error"; }

private:
    ErrorData *edata_;
};

// Runs thunk(context) under PG_TRY in a frame of its own (guard.cpp) and returns the copied
// PostgreSQL error, or nullptr. Keeping sigsetjmp in a separate, non-inlined function means
// no local of pg_call's caller lives in the frame that longjmp returns to, so no variable can
// be clobbered (the build has -Wclobbered on).
ErrorData *run_pg_try(void (*thunk)(void *), void *context);

template <typename Fn>
auto pg_call(Fn &&fn) -> decltype(fn()) {
    using Result = decltype(fn());
    std::exception_ptr cpp_error;
    if constexpr (std::is_void_v<Result>) {
        auto body = [&] {
            try {
                fn();
            } catch (...) {
                cpp_error = std::current_exception();
            }
        };
        ErrorData *edata = run_pg_try([](void *c) { (*static_cast<decltype(body) *>(c))(); }, &body);
        if (edata) throw PgError(edata);
        if (cpp_error) std::rethrow_exception(cpp_error);
    } else {
        Result result{};
        auto body = [&] {
            try {
                result = fn();
            } catch (...) {
                cpp_error = std::current_exception();
            }
        };
        ErrorData *edata = run_pg_try([](void *c) { (*static_cast<decltype(body) *>(c))(); }, &body);
        if (edata) throw PgError(edata);
        if (cpp_error) std::rethrow_exception(cpp_error);
        return result;
    }
}

// Polls for a cancel or statement_timeout; only enters PostgreSQL when one is pending.
inline void check_for_interrupts() {
    if (unlikely(InterruptPending)) pg_call([] { CHECK_FOR_INTERRUPTS(); });
}

// An error raised by the glue itself, with an explicit SQLSTATE.
class SqlError : public std::exception {
public:
    SqlError(int sqlstate, std::string message, std::string detail = {}, std::string hint = {})
        : sqlstate_(sqlstate), message_(std::move(message)), detail_(std::move(detail)), hint_(std::move(hint)) {}
    int sqlstate() const noexcept { return sqlstate_; }
    const char *what() const noexcept override { return message_.c_str(); }
    const std::string &detail() const noexcept { return detail_; }
    const std::string &hint() const noexcept { return hint_; }

private:
    int sqlstate_;
    std::string message_, detail_, hint_;
};

// serving_entry: the serving::EntryPoint the function counts as in recsys.serving_stats
// (serving_stats.h), or -1: the guard times the body and records the SQLSTATE of its error.
Datum run_guarded(const char *function_name, FunctionCallInfo fcinfo, Datum (*body)(FunctionCallInfo),
                  int serving_entry = -1);

}  // namespace recsys::pg

// Defines an SQL-callable C function whose body is C++ guarded by run_guarded().
#define RECSYS_FUNCTION(name)                                                                       \
    static Datum name##_body(FunctionCallInfo fcinfo);                                              \
    extern "C" {                                                                                    \
    PG_FUNCTION_INFO_V1(name);                                                                      \
    Datum name(PG_FUNCTION_ARGS) { return recsys::pg::run_guarded(#name, fcinfo, name##_body); }    \
    }                                                                                               \
    static Datum name##_body(FunctionCallInfo fcinfo)

// RECSYS_FUNCTION for a serving entry point, counted in recsys.serving_stats as entry_point
// (a recsys::pg::serving::EntryPoint).
#define RECSYS_SERVING_FUNCTION(name, entry_point)                                                  \
    static Datum name##_body(FunctionCallInfo fcinfo);                                              \
    extern "C" {                                                                                    \
    PG_FUNCTION_INFO_V1(name);                                                                      \
    Datum name(PG_FUNCTION_ARGS) {                                                                  \
        return recsys::pg::run_guarded(#name, fcinfo, name##_body, int(entry_point));               \
    }                                                                                               \
    }                                                                                               \
    static Datum name##_body(FunctionCallInfo fcinfo)
