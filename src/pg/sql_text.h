// Pieces of the SQL that recsys builds. Every function, operator and type in it is
// schema-qualified, so that no object a user creates in a schema on the caller's search_path
// can stand in for a built-in one (a hostile public.date_trunc(text, date) would otherwise run
// with the rights of whoever calls recsys; docs/security.md).
#pragma once

#include <cstdint>
#include <string>

namespace recsys::pg::sql {

// (expr)::pg_catalog.type
inline std::string cast(const std::string &expr, const char *type) {
    return "(" + expr + ")::pg_catalog." + type;
}

// " OPERATOR(pg_catalog.op) ", for any operator between two expressions.
inline std::string op(const char *name) { return std::string(" OPERATOR(pg_catalog.") + name + ") "; }

// pg_catalog.name(args)
inline std::string call(const char *name, const std::string &args) {
    return std::string("pg_catalog.") + name + "(" + args + ")";
}

// The first day of a month index (year * 12 + month - 1) as a date literal.
std::string month_start(int32_t month);

// A quoted, typed literal: a bare negative number would be parsed with an unqualified
// unary minus.
inline std::string int8_literal(int64_t v) { return "'" + std::to_string(v) + "'::pg_catalog.int8"; }

}  // namespace recsys::pg::sql
