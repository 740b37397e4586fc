#include <gtest/gtest.h>

#include <cstdlib>
#include <limits>
#include <string>

#include "errors.h"
#include "model.h"
#include "model_json.h"

namespace recsys {
namespace {

std::string escaped(std::string_view s) {
    std::string out;
    append_json_string(out, s);
    return out;
}

TEST(ModelJson, EscapesQuotesBackslashesAndControlCharacters) {
    EXPECT_EQ(escaped("plain"), "\"plain\"");
    EXPECT_EQ(escaped(""), "\"\"");
    EXPECT_EQ(escaped("a\"b"), "\"a\\\"b\"");
    EXPECT_EQ(escaped("a\\b"), "\"a\\\\b\"");
    EXPECT_EQ(escaped("\n\r\t\b\f"), "\"\\n\\r\\t\\b\\f\"");
    EXPECT_EQ(escaped(std::string("\x01\x1f", 2)), "\"\\u0001\\u001f\"");
    EXPECT_EQ(escaped(std::string("a\0b", 3)), "\"a\\u0000b\"");
    // DEL and '/' need no escaping.
    EXPECT_EQ(escaped("x/y\x7f"), "\"x/y\x7f\"");
}

TEST(ModelJson, KeepsUtf8BytesUnchanged) {
    const std::string s = "ind_cco_fin_ult1 \xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
    EXPECT_EQ(escaped(s), "\"" + s + "\"");
}

Model small_model() {
    Model m;
    m.source = {"public.\"my table\"", "ncodpers", "fecha_dato"};
    m.window_months = 3;
    m.include_product_adds = true;
    m.hidden = 2;
    m.products = {"p\"a", "p\\b"};

    FeatureSpec age;
    age.column = "age";
    age.kind = FeatureKind::Numeric;
    age.role = FeatureRole::Static;
    age.transform = NumericTransform::Identity;
    age.mean = 40.5f;
    age.stddev = 12.25f;
    age.clip_min = 18.0f;
    age.clip_max = 100.0f;
    age.missing_indicator = true;

    FeatureSpec income;
    income.column = "renta";
    income.kind = FeatureKind::Numeric;
    income.role = FeatureRole::Dynamic;
    income.transform = NumericTransform::Log1p;
    income.mean = 0.1f;
    income.stddev = 1.0f;
    income.clip_min = -1e30f;
    income.clip_max = std::numeric_limits<float>::infinity();
    income.missing_indicator = false;

    FeatureSpec segment;
    segment.column = "segmento";
    segment.kind = FeatureKind::Categorical;
    segment.role = FeatureRole::Dynamic;
    segment.vocabulary = {"01 - TOP", "slash/ \"quote\"", "\xc3\xa9"};

    m.features = {age, income, segment};
    // step width: 2 products * 2 + renta (1) + segmento (4) = 9; static width: age (2) = 2.
    const uint32_t step = m.step_width(), H = m.hidden, G = 4 * H;
    LstmLayer layer;
    layer.w_ih.assign(G * step, 0.5f);
    layer.w_hh.assign(G * H, 0.25f);
    layer.b_ih.assign(G, 0.0f);
    layer.b_hh.assign(G, 0.0f);
    m.layers = {layer};
    m.dense_w.assign(m.product_count() * (H + m.static_width()), 0.125f);
    m.dense_b.assign(m.product_count(), 0.0f);
    m.validate();
    m.index();
    return m;
}

TEST(ModelJson, FullSmallModel) {
    const Model m = small_model();
    ASSERT_EQ(m.step_width(), 9u);
    ASSERT_EQ(m.static_width(), 2u);
    // Parameters: w_ih 8*9 + w_hh 8*2 + 2 biases of 8 + dense 2*4 + 2 = 72 + 16 + 16 + 8 + 2.
    EXPECT_EQ(model_parameter_count(m), 114u);
    const std::string expected =
        "{\"format_version\":1,"
        "\"source\":{\"relation\":\"public.\\\"my table\\\"\",\"id_column\":\"ncodpers\","
        "\"month_column\":\"fecha_dato\"},"
        "\"window_months\":3,\"history\":{\"mode\":\"sliding_window\"},\"include_product_adds\":true,\"hidden\":2,\"layers\":1,"
        "\"step_width\":9,\"static_width\":2,"
        "\"products\":[\"p\\\"a\",\"p\\\\b\"],"
        "\"features\":["
        "{\"column\":\"age\",\"kind\":\"numeric\",\"role\":\"static\",\"transform\":\"identity\","
        "\"mean\":40.5,\"stddev\":12.25,\"clip_min\":18,\"clip_max\":100,\"missing_indicator\":true},"
        "{\"column\":\"renta\",\"kind\":\"numeric\",\"role\":\"dynamic\",\"transform\":\"log1p\","
        "\"mean\":0.100000001,\"stddev\":1,\"clip_min\":-1.00000002e+30,\"clip_max\":null,"
        "\"missing_indicator\":false},"
        "{\"column\":\"segmento\",\"kind\":\"categorical\",\"role\":\"dynamic\","
        "\"vocabulary\":[\"01 - TOP\",\"slash/ \\\"quote\\\"\",\"\xc3\xa9\"]}"
        "],"
        "\"parameter_count\":114}";
    EXPECT_EQ(model_spec_json(m), expected);
}

TEST(ModelJson, FloatsRoundTrip) {
    Model m = small_model();
    m.features[0].mean = 0.1f + 1e-8f;
    m.features[0].stddev = 3.14159274f;
    const std::string json = model_spec_json(m);
    auto value_after = [&](const std::string &k) {
        const size_t pos = json.find("\"" + k + "\":");
        EXPECT_NE(pos, std::string::npos);
        return std::strtof(json.c_str() + pos + k.size() + 3, nullptr);
    };
    EXPECT_EQ(value_after("mean"), m.features[0].mean);
    EXPECT_EQ(value_after("stddev"), m.features[0].stddev);
}

TEST(ModelJson, NumericFeaturesOmitVocabularyAndCategoricalOmitNumericFields) {
    Model m = small_model();
    m.features.erase(m.features.begin() + 2);  // numeric only
    m.features[1].role = FeatureRole::Static;
    // Keep the model consistent with the new widths before rendering.
    m.layers[0].w_ih.assign(4 * m.hidden * m.step_width(), 0.5f);
    m.dense_w.assign(m.product_count() * (m.hidden + m.static_width()), 0.125f);
    m.validate();
    std::string json = model_spec_json(m);
    EXPECT_EQ(json.find("vocabulary"), std::string::npos);
    EXPECT_NE(json.find("\"features\":[{\"column\":\"age\""), std::string::npos);

    Model c = small_model();
    c.features.erase(c.features.begin(), c.features.begin() + 2);  // categorical only
    c.layers[0].w_ih.assign(4 * c.hidden * c.step_width(), 0.5f);
    c.dense_w.assign(c.product_count() * (c.hidden + c.static_width()), 0.125f);
    c.validate();
    json = model_spec_json(c);
    for (const char *k : {"transform", "mean", "stddev", "clip_min", "clip_max", "missing_indicator"})
        EXPECT_EQ(json.find(std::string("\"") + k + "\""), std::string::npos) << k;
    EXPECT_NE(json.find("\"static_width\":0"), std::string::npos);
}

// A model string that is not UTF-8 without control characters is refused with the error the
// model parser gives (InvalidText), never rendered: the spec goes into jsonb, which refuses
// invalid UTF-8 and \u0000, and pg_dump/restore would carry the bytes otherwise.
TEST(ModelJson, RefusesModelStringsThatAreNotText) {
    struct Case {
        std::string bytes;
        const char *message_end;
    };
    const Case bad[] = {
        {"\xff", " is not valid UTF-8"},
        {"\xc0\x80", " is not valid UTF-8"},          // overlong NUL
        {"\xe0\x80\xaf", " is not valid UTF-8"},      // overlong '/'
        {"\xed\xa0\x80", " is not valid UTF-8"},      // surrogate
        {"\xf4\x90\x80\x80", " is not valid UTF-8"},  // above U+10FFFF
        {"ab\xc3", " is not valid UTF-8"},            // cut short
        {std::string("a\0b", 3), " contains a NUL byte"},
        {"tab\there", " contains a control character"},
    };
    struct Place {
        const char *label;
        std::string &(*select)(Model &);
    };
    const Place places[] = {
        {"source relation", [](Model &m) -> std::string & { return m.source.relation; }},
        {"id column", [](Model &m) -> std::string & { return m.source.id_column; }},
        {"month column", [](Model &m) -> std::string & { return m.source.month_column; }},
        {"product name 1", [](Model &m) -> std::string & { return m.products[1]; }},
        {"column name of feature 0", [](Model &m) -> std::string & { return m.features[0].column; }},
        {"vocabulary entry 2 of feature \"segmento\"",
         [](Model &m) -> std::string & { return m.features[2].vocabulary[2]; }},
    };
    for (const Place &place : places) {
        for (const Case &c : bad) {
            SCOPED_TRACE(place.label);
            Model m = small_model();
            place.select(m) = c.bytes;
            try {
                const std::string json = model_spec_json(m);
                ADD_FAILURE() << "model_spec_json accepted it: " << json;
            } catch (const Error &e) {
                EXPECT_EQ(e.kind(), ErrorKind::InvalidText);
                EXPECT_EQ(std::string(e.what()), std::string(place.label) + c.message_end);
            }
        }
    }
}

}  // namespace
}  // namespace recsys
