// JSON description of a model without its weights: the feature spec that the SQL registry
// stores next to each model version, and the spec that tools/export_torch_model.py reads.
//
// Shape (keys in this order):
//   {"format_version":1,
//    "source":{"relation":..,"id_column":..,"month_column":..},
//    "window_months":T, "history":{"mode":"sliding_window"} or
//      {"mode":"from_start_month","start_month":"YYYY-MM"},
//    "include_product_adds":bool, "hidden":H, "layers":L,
//    "step_width":.., "static_width":..,
//    "products":[..],
//    "features":[{"column":..,"kind":"numeric"|"categorical","role":"dynamic"|"static",
//                 numeric only:     "transform":"identity"|"log1p","mean","stddev",
//                                   "clip_min","clip_max","missing_indicator",
//                 categorical only: "vocabulary":[..]}, ..],
//    "parameter_count":N}
// step_width, static_width and parameter_count are derived (informational).
// Strings are escaped per RFC 8259 (quote, backslash, control characters); other bytes,
// UTF-8 included, are copied unchanged. Floats are printed with %.9g, which round-trips
// float32; an infinite clip bound is written as null (no bound).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "model.h"

namespace recsys {

std::string model_spec_json(const Model &m);

// Appends s as a JSON string literal (with the quotes) to out.
void append_json_string(std::string &out, std::string_view s);
// s as a JSON string literal.
std::string json_string(std::string_view s);
// The shortest decimal form of v that reads back exactly; null when not finite.
std::string json_number(double v);

// Total number of float parameters (LSTM weights and biases, dense weights and bias).
uint64_t model_parameter_count(const Model &m);

}  // namespace recsys
