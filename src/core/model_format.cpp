#include "model_format.h"

#include <cstring>

#include "byte_io.h"
#include "errors.h"
#include "model_text.h"
#include "sha256.h"

namespace recsys {

namespace {

constexpr uint32_t kFlagProductAdds = 1u;
constexpr uint32_t kFlagFromStartMonth = 2u;
constexpr size_t kHeaderBytes = 8 + 4 + 8;
constexpr size_t kChecksumBytes = 32;

[[noreturn]] void corrupt(const std::string &message, const std::string &detail) {
    fail(ErrorKind::CorruptModel, message, detail);
}

uint32_t bounded(ByteReader &r, uint32_t limit, const char *what) {
    uint32_t v = r.u32(what);
    if (v > limit)
        corrupt("model is inconsistent", std::string(what) + " is " + std::to_string(v) + ", the limit is " +
                                             std::to_string(limit) + ".");
    return v;
}

}  // namespace

std::vector<uint8_t> serialize_model(const Model &model) {
    model.validate();
    check_model_text(model);  // write nothing that parse_model() would refuse
    ByteWriter w;
    w.bytes(kModelMagic, sizeof kModelMagic);
    const bool reduced = model.precision != WeightPrecision::Fp32;
    w.u32(reduced ? kModelFormatVersion : kModelFormatVersionFp32);
    w.u64(0);  // total length, patched below
    w.str(model.source.relation);
    w.str(model.source.id_column);
    w.str(model.source.month_column);
    w.u32(model.window_months);
    w.u32((model.include_product_adds ? kFlagProductAdds : 0u) |
          (model.history == HistoryMode::FromStartMonth ? kFlagFromStartMonth : 0u));
    if (reduced) w.u8(uint8_t(model.precision));
    w.u32(static_cast<uint32_t>(model.start_month));
    w.u32(model.hidden);
    w.u32(static_cast<uint32_t>(model.layers.size()));
    w.u32(model.product_count());
    for (const auto &p : model.products) w.str(p);
    w.u32(static_cast<uint32_t>(model.features.size()));
    for (const auto &f : model.features) {
        w.str(f.column);
        w.u8(uint8_t(f.kind));
        w.u8(uint8_t(f.role));
        w.u8(uint8_t(f.transform));
        w.u8(f.missing_indicator ? 1 : 0);
        w.f32(f.mean);
        w.f32(f.stddev);
        w.f32(f.clip_min);
        w.f32(f.clip_max);
        w.u32(static_cast<uint32_t>(f.vocabulary.size()));
        for (const auto &v : f.vocabulary) w.str(v);
    }
    for (const auto &layer : model.layers) {
        w.floats(layer.w_ih);
        w.floats(layer.w_hh);
        w.floats(layer.b_ih);
        w.floats(layer.b_hh);
    }
    w.floats(model.dense_w);
    w.floats(model.dense_b);

    auto &buf = w.buffer();
    const uint64_t total = buf.size() + kChecksumBytes;
    for (int i = 0; i < 8; ++i) buf[12 + i] = uint8_t(total >> (8 * i));
    const Sha256Digest digest = sha256(buf.data(), buf.size());
    buf.insert(buf.end(), digest.begin(), digest.end());
    return std::move(buf);
}

Model parse_model(const uint8_t *data, size_t length) {
    if (length == 0) corrupt("model is empty", "The model bytes have length 0.");
    if (length < kHeaderBytes + kChecksumBytes)
        corrupt("model is truncated", "A model has at least " + std::to_string(kHeaderBytes + kChecksumBytes) +
                                          " bytes; got " + std::to_string(length) + ".");
    if (std::memcmp(data, kModelMagic, sizeof kModelMagic) != 0)
        corrupt("not a recsys model", "The bytes do not start with the magic \"RECSYSLM\".");
    ByteReader header(data + 8, length - 8);
    const uint32_t version = header.u32("format version");
    if (version != kModelFormatVersion && version != kModelFormatVersionFp32)
        fail(ErrorKind::CorruptModel, "unsupported model format version " + std::to_string(version),
             "This build of recsys reads format versions " + std::to_string(kModelFormatVersionFp32) + " and " +
                 std::to_string(kModelFormatVersion) + ".",
             "Export the model again with a matching version of recsys.");
    const uint64_t total = header.u64("total length");
    if (total > length)
        corrupt("model is truncated", "The header records " + std::to_string(total) + " bytes; got " +
                                          std::to_string(length) + ".");
    if (total < length)
        corrupt("model has trailing bytes", "The header records " + std::to_string(total) + " bytes; got " +
                                                std::to_string(length) + ".");
    const size_t body_end = length - kChecksumBytes;
    const Sha256Digest digest = sha256(data, body_end);
    if (std::memcmp(digest.data(), data + body_end, kChecksumBytes) != 0)
        corrupt("model checksum mismatch",
                "The SHA-256 of the first " + std::to_string(body_end) + " bytes is " + to_hex(digest) +
                    "; the file records a different one. The bytes were altered or damaged.");

    ByteReader r(data + kHeaderBytes, body_end - kHeaderBytes);
    Model m;
    m.source.relation = r.str(kMaxNameLength, "source relation");
    m.source.id_column = r.str(kMaxNameLength, "id column");
    m.source.month_column = r.str(kMaxNameLength, "month column");
    m.window_months = bounded(r, kMaxWindowMonths, "window months");
    const uint32_t flags = r.u32("flags");
    if (flags & ~(kFlagProductAdds | kFlagFromStartMonth))
        corrupt("model is inconsistent", "Unknown flags are set in the header.");
    m.include_product_adds = (flags & kFlagProductAdds) != 0;
    m.history = (flags & kFlagFromStartMonth) ? HistoryMode::FromStartMonth : HistoryMode::SlidingWindow;
    if (version >= 2) {
        const uint8_t precision = r.u8("precision");
        if (precision != uint8_t(WeightPrecision::Bf16) && precision != uint8_t(WeightPrecision::Int8))
            corrupt("model is inconsistent", "The precision byte is " + std::to_string(precision) +
                                                 "; format version 2 knows 1 (bf16) and 2 (int8).");
        m.precision = WeightPrecision(precision);
    }
    m.start_month = static_cast<int32_t>(r.u32("start month"));
    m.hidden = bounded(r, kMaxHidden, "hidden size");
    const uint32_t layer_count = bounded(r, kMaxLayers, "layer count");
    const uint32_t product_count = bounded(r, kMaxProducts, "product count");
    m.products.reserve(product_count);
    for (uint32_t i = 0; i < product_count; ++i) m.products.push_back(r.str(kMaxNameLength, "product name"));
    const uint32_t feature_count = bounded(r, kMaxFeatures, "feature count");
    for (uint32_t i = 0; i < feature_count; ++i) {
        FeatureSpec f;
        f.column = r.str(kMaxNameLength, "feature column");
        const uint8_t kind = r.u8("feature kind"), role = r.u8("feature role"), transform = r.u8("transform");
        if (kind > 1 || role > 1 || transform > 1)
            corrupt("model is inconsistent",  // by index: the column's text is checked later
                    "Feature " + std::to_string(i) + " has an unknown kind, role or transform.");
        f.kind = FeatureKind(kind);
        f.role = FeatureRole(role);
        f.transform = NumericTransform(transform);
        f.missing_indicator = r.u8("missing indicator") != 0;
        f.mean = r.f32("mean");
        f.stddev = r.f32("stddev");
        f.clip_min = r.f32("clip min");
        f.clip_max = r.f32("clip max");
        const uint32_t vocab = bounded(r, kMaxVocabulary, "vocabulary size");
        for (uint32_t v = 0; v < vocab; ++v) f.vocabulary.push_back(r.str(kMaxNameLength, "vocabulary value"));
        m.features.push_back(std::move(f));
    }
    const size_t G = 4 * size_t(m.hidden);
    m.layers.resize(layer_count);
    for (uint32_t l = 0; l < layer_count; ++l) {
        m.layers[l].w_ih = r.floats(G * m.layer_input_width(l), "LSTM input weights");
        m.layers[l].w_hh = r.floats(G * m.hidden, "LSTM recurrent weights");
        m.layers[l].b_ih = r.floats(G, "LSTM input bias");
        m.layers[l].b_hh = r.floats(G, "LSTM recurrent bias");
    }
    m.dense_w = r.floats(size_t(product_count) * (m.hidden + m.static_width()), "dense weights");
    m.dense_b = r.floats(product_count, "dense bias");
    if (r.remaining() != 0)
        corrupt("model is inconsistent",
                std::to_string(r.remaining()) + " unread bytes remain after the weights; the dimensions disagree.");
    // Every string must be UTF-8 without control characters (Error InvalidText, naming the
    // string). Checked once the layout is known to be sound, so that a misframed file is
    // reported as such, and before any message can quote a string.
    check_model_text(m);
    m.validate();
    m.index();
    return m;
}

}  // namespace recsys
