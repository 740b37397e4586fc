// The binary model format: round trip, and refusal of every kind of damaged input.
#include "core/model_format.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/model.h"
#include "core/sha256.h"

namespace {

using namespace recsys;

constexpr size_t kHeader = 20;    // magic, version, total length
constexpr size_t kChecksum = 32;  // trailing SHA-256

// A small model touching every field: two products, a dynamic categorical, a static
// numeric with log1p, clip and no missing indicator, a static categorical, two layers.
Model small_model() {
    Model m;
    m.source = {"public.santander", "ncodpers", "fecha_dato"};
    m.window_months = 4;
    m.include_product_adds = false;
    m.hidden = 3;
    m.products = {"ind_cco_fin_ult1", "ind_recibo_ult1"};
    FeatureSpec a;
    a.column = "canal";
    a.kind = FeatureKind::Categorical;
    a.role = FeatureRole::Dynamic;
    a.vocabulary = {"KAT", "KFC", "\xc3\xa9t\xc3\xa9"};
    FeatureSpec b;
    b.column = "renta";
    b.kind = FeatureKind::Numeric;
    b.role = FeatureRole::Static;
    b.transform = NumericTransform::Log1p;
    b.mean = 11.25f;
    b.stddev = 0.75f;
    b.clip_min = 0.0f;
    b.clip_max = 1e8f;
    b.missing_indicator = false;
    FeatureSpec c;
    c.column = "sexo";
    c.kind = FeatureKind::Categorical;
    c.role = FeatureRole::Static;
    c.vocabulary = {"H", "V"};
    FeatureSpec d;
    d.column = "age";
    d.kind = FeatureKind::Numeric;
    d.role = FeatureRole::Dynamic;
    d.mean = -3.5f;
    d.stddev = 12.0f;
    d.clip_min = -1.0f;
    d.clip_max = 100.0f;
    d.missing_indicator = true;
    m.features = {a, b, c, d};
    m.layers.resize(2);
    const size_t G = 4 * size_t(m.hidden);
    uint32_t k = 0;
    // Distinct, awkward bit patterns: negative zero, subnormals, tiny and large values.
    auto fill = [&](std::vector<float> &v, size_t n) {
        v.resize(n);
        for (auto &x : v) {
            ++k;
            switch (k % 5) {
                case 0: x = -0.0f; break;
                case 1: x = std::numeric_limits<float>::denorm_min() * float(k); break;
                case 2: x = 1.0f / float(k); break;
                case 3: x = -1e30f / float(k); break;
                default: x = std::nextafter(float(k), 0.0f); break;
            }
        }
    };
    for (size_t l = 0; l < 2; ++l) {
        fill(m.layers[l].w_ih, G * m.layer_input_width(l));
        fill(m.layers[l].w_hh, G * m.hidden);
        fill(m.layers[l].b_ih, G);
        fill(m.layers[l].b_hh, G);
    }
    fill(m.dense_w, m.product_count() * (m.hidden + m.static_width()));
    fill(m.dense_b, m.product_count());
    m.index();
    return m;
}

bool bitwise_equal(const std::vector<float> &a, const std::vector<float> &b) {
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

bool float_bits_equal(float a, float b) { return std::memcmp(&a, &b, sizeof(float)) == 0; }

// Rewrites the length field and the checksum so that only the edit under test is wrong.
void reseal(std::vector<uint8_t> &bytes) {
    const uint64_t total = bytes.size();
    for (int i = 0; i < 8; ++i) bytes[12 + i] = uint8_t(total >> (8 * i));
    const Sha256Digest d = sha256(bytes.data(), bytes.size() - kChecksum);
    std::memcpy(bytes.data() + bytes.size() - kChecksum, d.data(), kChecksum);
}

void put_u32(std::vector<uint8_t> &bytes, size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) bytes[at + i] = uint8_t(v >> (8 * i));
}

uint32_t get_u32(const std::vector<uint8_t> &bytes, size_t at) {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t(bytes[at + i]) << (8 * i);
    return v;
}

// Offset of the window_months field: after the header and the three source strings.
size_t dims_offset(const Model &m) {
    return kHeader + 12 + m.source.relation.size() + m.source.id_column.size() + m.source.month_column.size();
}
// Fields after it: window +0, flags +4, start month +8, hidden +12, layer count +16, product count +20.

// Parses a copy of exactly `length` bytes, so any read past the end is a read past the
// allocation; returns the error (or fails the test if none was thrown).
Error parse_error(const std::vector<uint8_t> &bytes, size_t length) {
    std::vector<uint8_t> copy(bytes.begin(), bytes.begin() + length);
    try {
        parse_model(copy.data(), copy.size());
    } catch (const Error &e) {
        return e;
    } catch (const std::exception &e) {
        ADD_FAILURE() << "non-recsys exception: " << e.what();
        return Error(ErrorKind::Internal, e.what());
    }
    ADD_FAILURE() << "parse_model accepted " << length << " bytes";
    return Error(ErrorKind::Internal, "accepted");
}

TEST(ModelFormat, RoundTripPreservesEverything) {
    const Model m = small_model();
    ASSERT_NO_THROW(m.validate());
    const std::vector<uint8_t> bytes = serialize_model(m);
    ASSERT_EQ(std::memcmp(bytes.data(), "RECSYSLM", 8), 0);
    EXPECT_EQ(get_u32(bytes, 8), kModelFormatVersionFp32);  // a float32 model keeps format version 1
    EXPECT_EQ(get_u32(bytes, 12), bytes.size());
    EXPECT_EQ(get_u32(bytes, 16), 0u);
    EXPECT_EQ(get_u32(bytes, dims_offset(m) + 12), m.hidden);

    const Model r = parse_model(bytes.data(), bytes.size());
    EXPECT_EQ(r.source.relation, m.source.relation);
    EXPECT_EQ(r.source.id_column, m.source.id_column);
    EXPECT_EQ(r.source.month_column, m.source.month_column);
    EXPECT_EQ(r.window_months, m.window_months);
    EXPECT_EQ(r.include_product_adds, m.include_product_adds);
    EXPECT_EQ(r.hidden, m.hidden);
    EXPECT_EQ(r.products, m.products);
    ASSERT_EQ(r.features.size(), m.features.size());
    for (size_t i = 0; i < m.features.size(); ++i) {
        const FeatureSpec &a = m.features[i], &b = r.features[i];
        SCOPED_TRACE(a.column);
        EXPECT_EQ(b.column, a.column);
        EXPECT_EQ(b.kind, a.kind);
        EXPECT_EQ(b.role, a.role);
        EXPECT_EQ(b.transform, a.transform);
        EXPECT_TRUE(float_bits_equal(b.mean, a.mean));
        EXPECT_TRUE(float_bits_equal(b.stddev, a.stddev));
        EXPECT_TRUE(float_bits_equal(b.clip_min, a.clip_min));
        EXPECT_TRUE(float_bits_equal(b.clip_max, a.clip_max));
        EXPECT_EQ(b.missing_indicator, a.missing_indicator);
        EXPECT_EQ(b.vocabulary, a.vocabulary);
        EXPECT_EQ(b.encoded_width(), a.encoded_width());
        // The parser indexes the vocabulary.
        for (size_t v = 0; v < a.vocabulary.size(); ++v) EXPECT_EQ(b.code_of(a.vocabulary[v]), int32_t(v));
        EXPECT_EQ(b.code_of("not-a-value"), -1);
    }
    ASSERT_EQ(r.layers.size(), m.layers.size());
    for (size_t l = 0; l < m.layers.size(); ++l) {
        EXPECT_TRUE(bitwise_equal(r.layers[l].w_ih, m.layers[l].w_ih)) << l;
        EXPECT_TRUE(bitwise_equal(r.layers[l].w_hh, m.layers[l].w_hh)) << l;
        EXPECT_TRUE(bitwise_equal(r.layers[l].b_ih, m.layers[l].b_ih)) << l;
        EXPECT_TRUE(bitwise_equal(r.layers[l].b_hh, m.layers[l].b_hh)) << l;
    }
    EXPECT_TRUE(bitwise_equal(r.dense_w, m.dense_w));
    EXPECT_TRUE(bitwise_equal(r.dense_b, m.dense_b));
    // -0.0 survived as -0.0, not +0.0.
    ASSERT_TRUE(m.layers[0].w_ih[4] == 0.0f && std::signbit(m.layers[0].w_ih[4]));
    EXPECT_TRUE(std::signbit(r.layers[0].w_ih[4]));
    ASSERT_EQ(std::fpclassify(m.layers[0].w_ih[0]), FP_SUBNORMAL);
    EXPECT_EQ(std::fpclassify(r.layers[0].w_ih[0]), FP_SUBNORMAL);
    // Serializing the parsed model gives the same bytes.
    EXPECT_EQ(serialize_model(r), bytes);
}

TEST(ModelFormat, RoundTripWithProductAddsFlag) {
    Model m = small_model();
    m.include_product_adds = true;
    m.layers[0].w_ih.resize(4 * size_t(m.hidden) * m.layer_input_width(0), 0.25f);
    const std::vector<uint8_t> bytes = serialize_model(m);
    const Model r = parse_model(bytes.data(), bytes.size());
    EXPECT_TRUE(r.include_product_adds);
    EXPECT_TRUE(bitwise_equal(r.layers[0].w_ih, m.layers[0].w_ih));
}

TEST(ModelFormat, SerializeRefusesInvalidModel) {
    Model m = small_model();
    m.dense_b.pop_back();
    EXPECT_THROW(serialize_model(m), Error);
}

TEST(ModelFormat, EveryTruncationIsRefused) {
    const std::vector<uint8_t> bytes = serialize_model(small_model());
    ASSERT_GT(bytes.size(), 300u);
    for (size_t len = 0; len < bytes.size(); ++len) {
        const Error e = parse_error(bytes, len);
        ASSERT_EQ(e.kind(), ErrorKind::CorruptModel) << "length " << len << ": " << e.what();
        if (len == 0) {
            EXPECT_STREQ(e.what(), "model is empty");
        } else {
            EXPECT_STREQ(e.what(), "model is truncated") << "length " << len;
        }
    }
}

TEST(ModelFormat, SingleByteFlipsFailTheChecksum) {
    const std::vector<uint8_t> bytes = serialize_model(small_model());
    int tried = 0;
    // Every position after the header: the body, the weights and the checksum itself.
    for (size_t pos = kHeader; pos < bytes.size(); pos += (pos < 200 ? 1 : 7)) {
        for (uint8_t mask : {uint8_t(0x01), uint8_t(0x80), uint8_t(0xff)}) {
            std::vector<uint8_t> damaged = bytes;
            damaged[pos] ^= mask;
            const Error e = parse_error(damaged, damaged.size());
            ASSERT_EQ(e.kind(), ErrorKind::CorruptModel);
            ASSERT_STREQ(e.what(), "model checksum mismatch") << "byte " << pos << " mask " << int(mask);
            ++tried;
        }
    }
    EXPECT_GT(tried, 300);
}

TEST(ModelFormat, HeaderFlipsAreRefused) {
    const std::vector<uint8_t> bytes = serialize_model(small_model());
    for (size_t pos = 0; pos < kHeader; ++pos) {
        std::vector<uint8_t> damaged = bytes;
        damaged[pos] ^= 0x01;
        const Error e = parse_error(damaged, damaged.size());
        EXPECT_EQ(e.kind(), ErrorKind::CorruptModel) << pos;
    }
}

TEST(ModelFormat, TrailingBytesRefused) {
    std::vector<uint8_t> bytes = serialize_model(small_model());
    bytes.push_back(0);
    const Error e = parse_error(bytes, bytes.size());
    EXPECT_EQ(e.kind(), ErrorKind::CorruptModel);
    EXPECT_STREQ(e.what(), "model has trailing bytes");
}

TEST(ModelFormat, ExtraBodyBytesWithValidLengthAndChecksumRefused) {
    std::vector<uint8_t> bytes = serialize_model(small_model());
    bytes.insert(bytes.end() - kChecksum, {0, 0, 0, 0});
    reseal(bytes);
    const Error e = parse_error(bytes, bytes.size());
    EXPECT_EQ(e.kind(), ErrorKind::CorruptModel);
    EXPECT_STREQ(e.what(), "model is inconsistent");
}

TEST(ModelFormat, WrongMagicRefused) {
    std::vector<uint8_t> bytes = serialize_model(small_model());
    bytes[0] = 'X';
    reseal(bytes);
    const Error e = parse_error(bytes, bytes.size());
    EXPECT_EQ(e.kind(), ErrorKind::CorruptModel);
    EXPECT_STREQ(e.what(), "not a recsys model");
}

TEST(ModelFormat, WrongVersionRefused) {
    for (uint32_t version : {0u, 3u, 0xffffffffu}) {
        std::vector<uint8_t> bytes = serialize_model(small_model());
        put_u32(bytes, 8, version);
        reseal(bytes);  // only the version is wrong
        const Error e = parse_error(bytes, bytes.size());
        EXPECT_EQ(e.kind(), ErrorKind::CorruptModel);
        EXPECT_EQ(std::string(e.what()), "unsupported model format version " + std::to_string(version));
    }
}

// Dimensions far beyond the limits, in files that are otherwise intact (length and checksum
// recomputed): refused from the header, before any allocation could follow from them.
TEST(ModelFormat, AbsurdDimensionsRefused) {
    const Model m = small_model();
    const std::vector<uint8_t> good = serialize_model(m);
    const size_t at = dims_offset(m);
    ASSERT_EQ(get_u32(good, at), m.window_months);
    ASSERT_EQ(get_u32(good, at + 12), m.hidden);
    ASSERT_EQ(get_u32(good, at + 16), m.layers.size());
    ASSERT_EQ(get_u32(good, at + 20), m.product_count());
    struct Case {
        size_t offset;
        uint32_t value;
        const char *what;
    };
    const Case cases[] = {
        {at + 0, 1000000000u, "window"},
        {at + 12, 1000000000u, "hidden"},
        {at + 12, kMaxHidden + 1, "hidden just over"},
        {at + 12, kMaxHidden, "hidden at the limit, weights missing"},
        {at + 16, 1000000u, "layers"},
        {at + 16, kMaxLayers, "layers at the limit, weights missing"},
        {at + 20, 1000000u, "products"},
        {at + 20, 0xffffffffu, "products max"},
        {at + 20, kMaxProducts, "products at the limit, names missing"},
        {at + 0, 0u, "zero window"},
        {at + 12, 0u, "zero hidden"},
        {at + 4, 0x80u, "unknown flag"},
    };
    for (const Case &c : cases) {
        SCOPED_TRACE(c.what);
        std::vector<uint8_t> bytes = good;
        put_u32(bytes, c.offset, c.value);
        reseal(bytes);
        const auto start = std::chrono::steady_clock::now();
        const Error e = parse_error(bytes, bytes.size());
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        EXPECT_EQ(e.kind(), ErrorKind::CorruptModel);
        const std::string msg = e.what();
        EXPECT_TRUE(msg == "model is inconsistent" || msg == "model is truncated") << msg;
        EXPECT_LT(seconds, 0.5);
    }
}

TEST(ModelFormat, AbsurdStringAndVocabularyLengthsRefused) {
    const Model m = small_model();
    const std::vector<uint8_t> good = serialize_model(m);
    {
        std::vector<uint8_t> bytes = good;
        put_u32(bytes, kHeader, 0xfffffff0u);  // source relation length
        reseal(bytes);
        const Error e = parse_error(bytes, bytes.size());
        EXPECT_STREQ(e.what(), "model is inconsistent");
    }
    {
        std::vector<uint8_t> bytes = good;
        put_u32(bytes, kHeader, kMaxNameLength);  // within the limit, but past the end
        reseal(bytes);
        const Error e = parse_error(bytes, bytes.size());
        EXPECT_EQ(e.kind(), ErrorKind::CorruptModel);
    }
}

TEST(ModelFormat, NaNWeightRefusedByValidate) {
    Model m = small_model();
    ASSERT_NO_THROW(m.validate());
    m.layers[1].w_hh[2] = std::numeric_limits<float>::quiet_NaN();
    try {
        m.validate();
        FAIL() << "validate() accepted a NaN weight";
    } catch (const Error &e) {
        EXPECT_EQ(e.kind(), ErrorKind::CorruptModel);
        EXPECT_STREQ(e.what(), "model is inconsistent");
        EXPECT_NE(e.detail().find("w_hh[2]"), std::string::npos) << e.detail();
    }
    Model inf = small_model();
    inf.dense_b[0] = -std::numeric_limits<float>::infinity();
    EXPECT_THROW(inf.validate(), Error);
    EXPECT_THROW(serialize_model(inf), Error);
}

TEST(ModelFormat, NaNWeightInFileRefusedByParser) {
    const Model m = small_model();
    std::vector<uint8_t> bytes = serialize_model(m);
    // The last dense bias is the last float before the checksum.
    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::memcpy(bytes.data() + bytes.size() - kChecksum - 4, &nan, 4);
    reseal(bytes);
    const Error e = parse_error(bytes, bytes.size());
    EXPECT_EQ(e.kind(), ErrorKind::CorruptModel);
    EXPECT_STREQ(e.what(), "model is inconsistent");
}

// Strings that are not UTF-8 without control characters, each with the end of the message
// that names the defect.
struct BadText {
    std::string bytes;
    const char *message_end;
    const char *what;
};
const std::vector<BadText> &bad_texts() {
    static const std::vector<BadText> cases = {
        {"\xff", " is not valid UTF-8", "byte 0xFF"},
        {"\x80", " is not valid UTF-8", "lone continuation byte"},
        {"ab\xc3", " is not valid UTF-8", "sequence cut short at the end"},
        {"\xe2\x82", " is not valid UTF-8", "3-byte sequence cut short"},
        {"\xc3\x28", " is not valid UTF-8", "missing continuation byte"},
        {"\xc0\x80", " is not valid UTF-8", "overlong NUL"},
        {"\xc1\xbf", " is not valid UTF-8", "overlong 2-byte"},
        {"\xe0\x80\xaf", " is not valid UTF-8", "overlong '/'"},
        {"\xf0\x82\x82\xac", " is not valid UTF-8", "overlong euro sign"},
        {"\xed\xa0\x80", " is not valid UTF-8", "surrogate U+D800"},
        {"\xed\xbf\xbf", " is not valid UTF-8", "surrogate U+DFFF"},
        {"\xf4\x90\x80\x80", " is not valid UTF-8", "U+110000"},
        {"\xf5\x80\x80\x80", " is not valid UTF-8", "lead byte 0xF5"},
        {"\xf8\x88\x80\x80\x80", " is not valid UTF-8", "5-byte form"},
        {std::string("a\0b", 3), " contains a NUL byte", "NUL"},
        {std::string(1, '\0'), " contains a NUL byte", "only a NUL"},
        {"tab\there", " contains a control character", "tab"},
        {"line\n", " contains a control character", "newline"},
        {"\x1f", " contains a control character", "U+001F"},
    };
    return cases;
}

// Writes `model` with the string that `place` selects set to a placeholder of the right
// length, then overwrites the placeholder's bytes with `bad` and reseals: the file is intact
// except for the text of that one string.
template <class Place>
std::vector<uint8_t> with_bad_string(const std::string &bad, Place place) {
    Model m = small_model();
    const std::string placeholder(bad.size(), '#');
    place(m) = placeholder;
    std::vector<uint8_t> bytes = serialize_model(m);
    std::vector<uint8_t> needle(4);
    put_u32(needle, 0, uint32_t(placeholder.size()));
    needle.insert(needle.end(), placeholder.begin(), placeholder.end());
    auto at = std::search(bytes.begin(), bytes.end(), needle.begin(), needle.end());
    EXPECT_NE(at, bytes.end());
    EXPECT_EQ(std::search(at + 1, bytes.end(), needle.begin(), needle.end()), bytes.end()) << "placeholder not unique";
    std::memcpy(&*(at + 4), bad.data(), bad.size());
    reseal(bytes);
    return bytes;
}

TEST(ModelFormat, InvalidTextInEveryStringRefused) {
    struct Place {
        const char *label;  // how the message names the string
        std::string &(*select)(Model &);
    };
    const Place places[] = {
        {"source relation", [](Model &m) -> std::string & { return m.source.relation; }},
        {"id column", [](Model &m) -> std::string & { return m.source.id_column; }},
        {"month column", [](Model &m) -> std::string & { return m.source.month_column; }},
        {"product name 1", [](Model &m) -> std::string & { return m.products[1]; }},
        {"column name of feature 2", [](Model &m) -> std::string & { return m.features[2].column; }},
        {"vocabulary entry 2 of feature \"canal\"",
         [](Model &m) -> std::string & { return m.features[0].vocabulary[2]; }},
        {"vocabulary entry 0 of feature \"sexo\"",
         [](Model &m) -> std::string & { return m.features[2].vocabulary[0]; }},
    };
    for (const Place &place : places) {
        for (const BadText &bad : bad_texts()) {
            SCOPED_TRACE(std::string(place.label) + ": " + bad.what);
            const std::vector<uint8_t> bytes = with_bad_string(bad.bytes, place.select);
            const Error e = parse_error(bytes, bytes.size());
            EXPECT_EQ(e.kind(), ErrorKind::InvalidText) << e.what() << " / " << e.detail();
            EXPECT_EQ(std::string(e.what()), std::string(place.label) + bad.message_end);
            EXPECT_NE(e.detail().find("Byte "), std::string::npos) << e.detail();
        }
    }
}

TEST(ModelFormat, InvalidTextDetailNamesTheByte) {
    const std::vector<uint8_t> bytes =
        with_bad_string("ok\xed\xa0\x80", [](Model &m) -> std::string & { return m.features[0].vocabulary[1]; });
    const Error e = parse_error(bytes, bytes.size());
    ASSERT_EQ(e.kind(), ErrorKind::InvalidText);
    EXPECT_STREQ(e.what(), "vocabulary entry 1 of feature \"canal\" is not valid UTF-8");
    EXPECT_NE(e.detail().find("Byte 2 of the string (0xED) starts a UTF-16 surrogate"), std::string::npos)
        << e.detail();
    const std::vector<uint8_t> nul =
        with_bad_string(std::string("x\0", 2), [](Model &m) -> std::string & { return m.products[0]; });
    const Error n = parse_error(nul, nul.size());
    ASSERT_EQ(n.kind(), ErrorKind::InvalidText);
    EXPECT_STREQ(n.what(), "product name 0 contains a NUL byte");
    EXPECT_NE(n.detail().find("Byte 1 of the string is U+0000"), std::string::npos) << n.detail();
}

TEST(ModelFormat, SerializeRefusesInvalidText) {
    for (const BadText &bad : bad_texts()) {
        SCOPED_TRACE(bad.what);
        Model m = small_model();
        m.features[2].vocabulary[1] = bad.bytes;
        try {
            serialize_model(m);
            ADD_FAILURE() << "serialize_model accepted it";
        } catch (const Error &e) {
            EXPECT_EQ(e.kind(), ErrorKind::InvalidText);
            EXPECT_EQ(std::string(e.what()), std::string("vocabulary entry 1 of feature \"sexo\"") + bad.message_end);
        }
    }
}

TEST(ModelFormat, UnicodeEdgesRoundTrip) {
    Model m = small_model();
    // DEL, U+0080, U+07FF, U+0800, U+D7FF, U+E000, U+FFFD, U+FFFF, U+10000, U+10FFFF.
    m.source.relation = "s\x7f.\xc2\x80\xdf\xbf";
    m.products[0] = "\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80";
    m.features[1].column = "\xef\xbf\xbd\xef\xbf\xbf";
    m.features[0].vocabulary = {"\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf", "caf\xc3\xa9 "};
    m.index();
    const std::vector<uint8_t> bytes = serialize_model(m);
    const Model r = parse_model(bytes.data(), bytes.size());
    EXPECT_EQ(r.source.relation, m.source.relation);
    EXPECT_EQ(r.products, m.products);
    EXPECT_EQ(r.features[1].column, m.features[1].column);
    EXPECT_EQ(r.features[0].vocabulary, m.features[0].vocabulary);
}

TEST(ModelFormat, NonPositiveStddevRefused) {
    Model m = small_model();
    m.features[1].stddev = 0.0f;
    EXPECT_THROW(m.validate(), Error);
}

// A NaN clip bound is named as such, not reported as "clip_min above clip_max".
TEST(ModelFormat, NaNClipNamedAsNaN) {
    for (int which = 0; which < 2; ++which) {
        Model m = small_model();
        (which == 0 ? m.features[1].clip_min : m.features[1].clip_max) = std::numeric_limits<float>::quiet_NaN();
        try {
            m.validate();
            ADD_FAILURE() << "a NaN clip bound was accepted";
        } catch (const Error &e) {
            EXPECT_EQ(e.kind(), ErrorKind::CorruptModel);
            EXPECT_NE(std::string(e.detail() + e.what()).find("NaN clip bound"), std::string::npos) << e.what() << e.detail();
        }
    }
    Model m = small_model();
    m.features[1].clip_min = 5.0f;
    m.features[1].clip_max = 1.0f;
    EXPECT_THROW(m.validate(), Error);
}

}  // namespace
