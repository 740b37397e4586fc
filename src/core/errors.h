// Errors raised by the database-independent core.
//
// The core never knows about SQLSTATEs; it classifies each failure by kind, and the
// PostgreSQL glue (src/pg/guard.h) maps each kind to one SQLSTATE at the boundary.
#pragma once

#include <stdexcept>
#include <string>

namespace recsys {

enum class ErrorKind {
    InvalidParameter,  // a caller-supplied argument is out of range (k <= 0, bad option)
    DataException,     // input data is unusable: NaN/Inf, bad flag value, wrong width
    CorruptModel,      // model bytes fail validation (truncated, checksum, inconsistent)
    ProgramLimit,      // a size exceeds what the format or the implementation supports
    InvalidText,       // a string is not valid UTF-8 or holds a control character (model names, vocabulary)
    FeatureNotSupported,  // this machine cannot do what was asked (a CPU without suitable instructions)
    Internal,          // a bug: should never be reached
};

class Error : public std::runtime_error {
public:
    Error(ErrorKind kind, const std::string &message, std::string detail = {}, std::string hint = {})
        : std::runtime_error(message), kind_(kind), detail_(std::move(detail)), hint_(std::move(hint)) {}

    ErrorKind kind() const noexcept { return kind_; }
    const std::string &detail() const noexcept { return detail_; }
    const std::string &hint() const noexcept { return hint_; }

private:
    ErrorKind kind_;
    std::string detail_;
    std::string hint_;
};

[[noreturn]] inline void fail(ErrorKind kind, const std::string &message, std::string detail = {},
                              std::string hint = {}) {
    throw Error(kind, message, std::move(detail), std::move(hint));
}

}  // namespace recsys
