// libFuzzer target: the JSON side of the model spec (src/core/model_json.cpp), which turns
// model strings and numbers into the JSON that recsys.model_spec() returns, that the
// registry stores as jsonb and that tools/export_torch_model.py reads back.
//
// The first byte of an input picks what the rest is:
//   0  a string for json_string(): when it is valid UTF-8 the output must be one strict JSON
//      string literal that reads back to exactly the input;
//   1  8 bytes of a double for json_number(): null when not finite, otherwise a JSON number
//      that reads back to the same double;
//   2  model bytes (resealed as in fuzz_model_format): an accepted model's model_spec_json()
//      must be strict JSON, without \u0000, whose strings and numbers read back to the model's;
//   3  strings separated by 0xFE (source relation, id column, month column, a feature column,
//      then products and vocabulary entries alternately), put in a model without going
//      through the parser: model_spec_json() must refuse it with Error(InvalidText) exactly
//      when one of them is not UTF-8 without control characters, and otherwise write JSON
//      that reads back to them.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_common.h"
#include "model.h"
#include "model_format.h"
#include "model_json.h"
#include "model_text.h"

namespace {

using namespace recsys;
using fuzzcheck::Json;
using fuzzcheck::oracle_failed;

Json read_json(const std::string &text) {
    fuzzcheck::JsonReader reader(text);
    Json j;
    if (!reader.document(j)) oracle_failed("recsys wrote invalid JSON (" + reader.error() + "): " + text);
    if (reader.saw_nul_escape()) oracle_failed("recsys wrote a \\u0000 escape: " + text);
    return j;
}

const Json &member(const Json &obj, const char *key, Json::Kind kind) {
    const Json *v = obj.get(key);
    if (!v) oracle_failed(std::string("the spec has no \"") + key + "\"");
    if (v->kind != kind) oracle_failed(std::string("\"") + key + "\" has the wrong JSON type");
    return *v;
}

void expect_string(const Json &obj, const char *key, const std::string &expected) {
    if (member(obj, key, Json::String).text != expected)
        oracle_failed(std::string("\"") + key + "\" does not read back to the model's string");
}

void expect_strings(const Json &obj, const char *key, const std::vector<std::string> &expected) {
    const Json &a = member(obj, key, Json::Array);
    if (a.items.size() != expected.size()) oracle_failed(std::string("\"") + key + "\" has the wrong length");
    for (size_t i = 0; i < expected.size(); ++i)
        if (a.items[i].kind != Json::String || a.items[i].text != expected[i])
            oracle_failed(std::string("\"") + key + "\"[" + std::to_string(i) + "] does not read back");
}

void expect_uint(const Json &obj, const char *key, uint64_t expected) {
    const Json &v = member(obj, key, Json::Number);
    if (v.text != std::to_string(expected)) oracle_failed(std::string("\"") + key + "\" is " + v.text);
}

void expect_float(const Json &obj, const char *key, float expected) {
    const Json *v = obj.get(key);
    if (!v) oracle_failed(std::string("the spec has no \"") + key + "\"");
    if (!std::isfinite(expected)) {
        if (v->kind != Json::Null) oracle_failed(std::string("non-finite \"") + key + "\" is not null");
        return;
    }
    if (v->kind != Json::Number) oracle_failed(std::string("\"") + key + "\" is not a number");
    const float back = std::strtof(v->text.c_str(), nullptr);
    if (std::memcmp(&back, &expected, sizeof back) != 0)
        oracle_failed(std::string("\"") + key + "\" = " + v->text + " does not read back to the same float");
}

// The spec of a model must carry the model's strings and numbers.
void check_spec(const Model &m, const std::string &text) {
    const Json j = read_json(text);
    if (j.kind != Json::Object) oracle_failed("the spec is not an object");
    const Json &source = member(j, "source", Json::Object);
    expect_string(source, "relation", m.source.relation);
    expect_string(source, "id_column", m.source.id_column);
    expect_string(source, "month_column", m.source.month_column);
    expect_uint(j, "window_months", m.window_months);
    expect_uint(j, "hidden", m.hidden);
    expect_uint(j, "layers", m.layers.size());
    expect_uint(j, "parameter_count", model_parameter_count(m));
    expect_strings(j, "products", m.products);
    const Json &history = member(j, "history", Json::Object);
    if (m.history == HistoryMode::FromStartMonth) {
        char month[16];
        std::snprintf(month, sizeof month, "%04d-%02d", m.start_month / 12, m.start_month % 12 + 1);
        expect_string(history, "mode", "from_start_month");
        expect_string(history, "start_month", month);
    } else {
        expect_string(history, "mode", "sliding_window");
    }
    const Json &features = member(j, "features", Json::Array);
    if (features.items.size() != m.features.size()) oracle_failed("\"features\" has the wrong length");
    for (size_t i = 0; i < m.features.size(); ++i) {
        const FeatureSpec &f = m.features[i];
        const Json &jf = features.items[i];
        if (jf.kind != Json::Object) oracle_failed("a feature is not an object");
        expect_string(jf, "column", f.column);
        if (f.kind == FeatureKind::Categorical) {
            expect_strings(jf, "vocabulary", f.vocabulary);
        } else {
            expect_float(jf, "mean", f.mean);
            expect_float(jf, "stddev", f.stddev);
            expect_float(jf, "clip_min", f.clip_min);
            expect_float(jf, "clip_max", f.clip_max);
        }
    }
}

void fuzz_string(std::string_view s) {
    const std::string out = json_string(s);
    if (out.size() < 2 || out.front() != '"' || out.back() != '"') oracle_failed("json_string lost its quotes");
    if (!fuzzcheck::reference_utf8(s)) return;  // bytes are copied; nothing to read back
    fuzzcheck::JsonReader reader(out);
    Json j;
    if (!reader.document(j) || j.kind != Json::String)
        oracle_failed("json_string wrote invalid JSON for valid UTF-8 (" + reader.error() + ")");
    if (j.text != s) oracle_failed("json_string does not read back to its input");
}

void fuzz_number(const uint8_t *data, size_t size) {
    if (size < 8) return;
    double v;
    std::memcpy(&v, data, 8);
    const std::string out = json_number(v);
    if (!std::isfinite(v)) {
        if (out != "null") oracle_failed("json_number of a non-finite value is " + out);
        return;
    }
    fuzzcheck::JsonReader reader(out);
    Json j;
    if (!reader.document(j) || j.kind != Json::Number) oracle_failed("json_number wrote " + out);
    const double back = std::strtod(out.c_str(), nullptr);
    if (back != v) oracle_failed("json_number wrote " + out + ", which does not read back");
}

void fuzz_model_bytes(const uint8_t *data, size_t size) {
    const std::vector<uint8_t> sealed = fuzzcheck::resealed(data, size);
    Model m;
    try {
        m = parse_model(sealed.data(), sealed.size());
    } catch (const Error &e) {
        fuzzcheck::check_parse_error(e);
        return;
    }
    std::string spec;
    try {
        spec = model_spec_json(m);
    } catch (const Error &e) {
        oracle_failed(std::string("model_spec_json refused an accepted model: ") + e.what());
    }
    check_spec(m, spec);
}

void fuzz_model_strings(const uint8_t *data, size_t size) {
    std::vector<std::string> fields(1);
    for (size_t i = 0; i < size; ++i) {
        if (data[i] == 0xFE)
            fields.emplace_back();
        else
            fields.back() += char(data[i]);
    }
    while (fields.size() < 5) fields.emplace_back("x");
    Model m;
    m.source = {fields[0], fields[1], fields[2]};
    m.window_months = 1;
    m.hidden = 1;
    m.layers.resize(1);
    FeatureSpec f;
    f.column = fields[3];
    f.kind = FeatureKind::Categorical;
    f.role = FeatureRole::Dynamic;
    for (size_t i = 4; i < fields.size(); ++i) ((i % 2 == 0) ? m.products : f.vocabulary).push_back(fields[i]);
    m.features.push_back(std::move(f));
    // Expected from the independent decoder: UTF-8 and no byte below 0x20.
    bool text = true;
    for (const std::string &s : fields) {
        text = text && fuzzcheck::reference_utf8(s);
        for (char c : s) text = text && uint8_t(c) >= 0x20;
    }
    std::string spec;
    try {
        spec = model_spec_json(m);
    } catch (const Error &e) {
        if (e.kind() != ErrorKind::InvalidText) oracle_failed(std::string("unexpected error kind: ") + e.what());
        if (text) oracle_failed(std::string("model_spec_json refused valid text: ") + e.what());
        if (!fuzzcheck::reference_utf8(e.what())) oracle_failed("the error message is not valid UTF-8");
        return;
    }
    if (!text) oracle_failed("model_spec_json accepted a string that is not text");
    check_spec(m, spec);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const uint8_t mode = data[0] % 4;
    ++data;
    --size;
    switch (mode) {
        case 0: fuzz_string(std::string_view(reinterpret_cast<const char *>(data), size)); break;
        case 1: fuzz_number(data, size); break;
        case 2: fuzz_model_bytes(data, size); break;
        default: fuzz_model_strings(data, size); break;
    }
    return 0;
}
