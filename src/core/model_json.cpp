#include "model_json.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "model_text.h"

namespace recsys {

namespace {

void append_float(std::string &out, float v) {
    if (std::isnan(v) || std::isinf(v)) {  // not representable in JSON
        out += "null";
        return;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", double(v));
    out += buf;
}

void append_uint(std::string &out, uint64_t v) { out += std::to_string(v); }

void key(std::string &out, const char *k) {
    out += '"';
    out += k;
    out += "\":";
}

void append_string_array(std::string &out, const std::vector<std::string> &values) {
    out += '[';
    for (size_t i = 0; i < values.size(); ++i) {
        if (i) out += ',';
        append_json_string(out, values[i]);
    }
    out += ']';
}

}  // namespace

void append_json_string(std::string &out, std::string_view s) {
    static const char hex[] = "0123456789abcdef";
    out += '"';
    for (unsigned char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    out += "\\u00";
                    out += hex[c >> 4];
                    out += hex[c & 0xf];
                } else {
                    out += char(c);
                }
        }
    }
    out += '"';
}

uint64_t model_parameter_count(const Model &m) {
    uint64_t n = 0;
    for (const auto &l : m.layers) n += l.w_ih.size() + l.w_hh.size() + l.b_ih.size() + l.b_hh.size();
    return n + m.dense_w.size() + m.dense_b.size();
}

std::string model_spec_json(const Model &m) {
    // The spec goes into jsonb and into files that tools read back: refuse (Error InvalidText)
    // any model string that is not UTF-8 without control characters, as parse_model() does,
    // rather than emit bytes that are not JSON text or a \u0000 escape that jsonb refuses.
    check_model_text(m);
    std::string out;
    out.reserve(512 + 32 * m.products.size() + 160 * m.features.size());
    out += '{';
    key(out, "format_version");
    out += "1,";
    key(out, "source");
    out += '{';
    key(out, "relation");
    append_json_string(out, m.source.relation);
    out += ',';
    key(out, "id_column");
    append_json_string(out, m.source.id_column);
    out += ',';
    key(out, "month_column");
    append_json_string(out, m.source.month_column);
    out += "},";
    key(out, "window_months");
    append_uint(out, m.window_months);
    out += ',';
    key(out, "history");
    if (m.history == HistoryMode::FromStartMonth) {
        char start[16];
        snprintf(start, sizeof start, "%04d-%02d", m.start_month / 12, m.start_month % 12 + 1);
        out += "{\"mode\":\"from_start_month\",\"start_month\":\"";
        out += start;
        out += "\"}";
    } else {
        out += "{\"mode\":\"sliding_window\"}";
    }
    out += ',';
    key(out, "include_product_adds");
    out += m.include_product_adds ? "true" : "false";
    out += ',';
    if (m.precision != WeightPrecision::Fp32) {  // absent for float32, as before format version 2
        key(out, "precision");
        out += m.precision == WeightPrecision::Bf16 ? "\"bf16\"," : "\"int8\",";
    }
    key(out, "hidden");
    append_uint(out, m.hidden);
    out += ',';
    key(out, "layers");
    append_uint(out, m.layers.size());
    out += ',';
    key(out, "step_width");
    append_uint(out, m.step_width());
    out += ',';
    key(out, "static_width");
    append_uint(out, m.static_width());
    out += ',';
    key(out, "products");
    append_string_array(out, m.products);
    out += ',';
    key(out, "features");
    out += '[';
    for (size_t i = 0; i < m.features.size(); ++i) {
        const FeatureSpec &f = m.features[i];
        if (i) out += ',';
        out += '{';
        key(out, "column");
        append_json_string(out, f.column);
        out += ',';
        key(out, "kind");
        out += f.kind == FeatureKind::Categorical ? "\"categorical\"" : "\"numeric\"";
        out += ',';
        key(out, "role");
        out += f.role == FeatureRole::Dynamic ? "\"dynamic\"" : "\"static\"";
        if (f.kind == FeatureKind::Categorical) {
            out += ',';
            key(out, "vocabulary");
            append_string_array(out, f.vocabulary);
        } else {
            out += ',';
            key(out, "transform");
            out += f.transform == NumericTransform::Log1p ? "\"log1p\"" : "\"identity\"";
            out += ',';
            key(out, "mean");
            append_float(out, f.mean);
            out += ',';
            key(out, "stddev");
            append_float(out, f.stddev);
            out += ',';
            key(out, "clip_min");
            append_float(out, f.clip_min);
            out += ',';
            key(out, "clip_max");
            append_float(out, f.clip_max);
            out += ',';
            key(out, "missing_indicator");
            out += f.missing_indicator ? "true" : "false";
        }
        out += '}';
    }
    out += "],";
    key(out, "parameter_count");
    append_uint(out, model_parameter_count(m));
    out += '}';
    return out;
}

std::string json_string(std::string_view s) {
    std::string out;
    append_json_string(out, s);
    return out;
}

std::string json_number(double v) {
    if (!std::isfinite(v)) return "null";
    char buf[64];
    for (int digits = 15; digits <= 17; ++digits) {  // shortest form that reads back exactly
        snprintf(buf, sizeof buf, "%.*g", digits, v);
        if (strtod(buf, nullptr) == v) break;
    }
    return buf;
}

}  // namespace recsys
