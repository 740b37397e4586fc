// Strings of a model as text: every name, column and vocabulary entry a model holds must be
// well-formed UTF-8 (RFC 3629: no overlong forms, no UTF-16 surrogates, nothing above
// U+10FFFF) without C0 control characters (U+0000 to U+001F, NUL included).
//
// The model parser (parse_model), the serializer (serialize_model) and the JSON spec writer
// (model_spec_json) refuse anything else with recsys::Error(InvalidText), whose message names
// the string; such bytes would otherwise reach PostgreSQL text and jsonb values and break
// pg_dump/restore.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "model.h"

namespace recsys {

// The first defect of a string that is not acceptable text.
struct TextDefect {
    size_t offset = 0;            // byte offset (from 0) of the offending byte or sequence
    uint8_t byte = 0;             // the byte at that offset
    bool control = false;         // true: a C0 control character; false: not valid UTF-8
    const char *reason = nullptr;  // for invalid UTF-8: what is wrong with the sequence
};

// True when s is well-formed UTF-8 (control characters allowed).
bool is_valid_utf8(std::string_view s);

// True when s is well-formed UTF-8 without C0 control characters; otherwise false, with the
// first defect in *defect when defect is not null.
bool is_valid_text(std::string_view s, TextDefect *defect = nullptr);

// Throws Error(InvalidText) unless is_valid_text(s). `what` names the string in the message,
// e.g. "vocabulary entry 3 of feature \"segmento\"" gives
// "vocabulary entry 3 of feature "segmento" is not valid UTF-8".
void check_text(std::string_view s, const std::string &what);

// check_text() on every string of the model, in file order: source relation, id column,
// month column, product names, feature columns and each feature's vocabulary. The messages
// name them "source relation", "id column", "month column", "product name 2", "column name
// of feature 5", "vocabulary entry 3 of feature "segmento"" (indexes count from 0).
void check_model_text(const Model &m);

}  // namespace recsys
