// Conversions between SQL values and C++ shared by the SQL-callable functions: arguments,
// arrays and byte strings, each PostgreSQL call behind pg_call(), plus SPI connect/finish.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "guard.h"
#include "model_cache.h"
#include "ranking.h"

namespace recsys::pg {

// A text argument (the caller has checked it is not NULL).
std::string text_arg(FunctionCallInfo fcinfo, int n);
// A model version argument: NULL means the production version (-1); otherwise positive.
int32_t version_arg(FunctionCallInfo fcinfo, int n);
// k is at least 1 and, once the model is known, at most its number of products.
void check_k(int32_t k, const LoadedModel *model);

// A model name as recsys.models accepts it (1 to 63 of A-Z a-z 0-9 _ . -), else 42602; checked
// before work that would otherwise be wasted on a name the registry refuses.
void check_model_name(const std::string &name);
// A history start month (a month index) the model format accepts, else 22023.
void check_start_month(int32_t month);

// value lies in [lo, hi], else an invalid_parameter_value error naming the argument.
void check_range(const char *what, double value, double lo, double hi);

void spi_connect();
void spi_finish();

// text[] of the ranked products' names.
Datum ranked_names_array(const std::vector<std::string> &names, const std::vector<Ranked> &ranked);
// real[] of n floats.
Datum real_array(const float *values, size_t n);
// smallint[] of n 0/1 flags.
Datum flag_array(const uint8_t *values, size_t n);
// bytea of the bytes.
Datum bytea_datum(const std::vector<uint8_t> &bytes);

// The elements of a real[] / smallint[] value, which must have exactly `expected` of them
// and no NULLs; `what` names the value in the error otherwise.
std::vector<float> real_array_values(Datum array, size_t expected, const std::string &what);
std::vector<uint8_t> flag_array_values(Datum array, size_t expected, const std::string &what);

}  // namespace recsys::pg
