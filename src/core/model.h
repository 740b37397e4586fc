// The in-memory LSTM recommender: feature spec, product list, and float32 weights.
//
// A Model is what the binary format (model_format.h) parses into and serializes from.
// It is immutable once validated; scorers keep a const reference to it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace recsys {

// Hard limits that the parser enforces before allocating anything.
constexpr uint32_t kMaxWindowMonths = 240;
constexpr uint32_t kMaxLayers = 8;
constexpr uint32_t kMaxHidden = 4096;
constexpr uint32_t kMaxProducts = 1024;
constexpr uint32_t kMaxFeatures = 1024;
constexpr uint32_t kMaxVocabulary = 65536;
constexpr uint32_t kMaxNameLength = 1024;
// The plausible range of a history's start month (month index year * 12 + month - 1).
constexpr int32_t kMinStartMonth = 1900 * 12;
constexpr int32_t kMaxStartMonth = 9999 * 12;

enum class FeatureKind : uint8_t {
    Numeric = 0,      // real value: transform, then (x - mean) / stddev; NULL -> 0 plus indicator
    Categorical = 1,  // one-hot over the vocabulary, with one extra slot for unknown or NULL
};

enum class NumericTransform : uint8_t {
    Identity = 0,
    Log1p = 1,  // log(1 + max(x, 0)), for skewed amounts such as income
};

// Which input a feature feeds: every time step of the LSTM, or the static vector that is
// concatenated with the final hidden state (taken from the customer's latest month).
enum class FeatureRole : uint8_t { Dynamic = 0, Static = 1 };

struct FeatureSpec {
    std::string column;
    FeatureKind kind = FeatureKind::Numeric;
    FeatureRole role = FeatureRole::Static;
    // Numeric only.
    NumericTransform transform = NumericTransform::Identity;
    float mean = 0.0f;
    float stddev = 1.0f;
    float clip_min = -1e30f;  // raw values are clipped to [clip_min, clip_max] before the transform
    float clip_max = 1e30f;
    bool missing_indicator = true;
    // Categorical only.
    std::vector<std::string> vocabulary;

    // Width of this feature once encoded.
    uint32_t encoded_width() const;
    // Index of a categorical value in the vocabulary, or -1 when unknown.
    int32_t code_of(std::string_view value) const;
    // Builds the lookup table used by code_of(); called once after parsing or construction.
    void index_vocabulary();

private:
    std::unordered_map<std::string, int32_t> vocabulary_index_;
};

// Where the model reads its data: any table or view with one row per customer and month.
struct SourceSpec {
    std::string relation;      // e.g. "public.santander"
    std::string id_column;     // bigint-compatible customer id
    std::string month_column;  // date; one snapshot per customer and month
};

struct LstmLayer {
    // PyTorch layout and gate order (input, forget, cell, output):
    //   w_ih: (4H x input) row-major, w_hh: (4H x H) row-major, b_ih, b_hh: 4H.
    std::vector<float> w_ih, w_hh, b_ih, b_hh;
};

// The arithmetic a version scores with (docs/reduced-precision.md). Stored in the model bytes,
// so that a registered version always scores the same way; the float32 weights are kept either
// way and quantized when a scorer is built.
enum class WeightPrecision : uint8_t {
    Fp32 = 0,  // float32 weights and activations (every model before format version 2)
    Bf16 = 1,  // bfloat16 weights and GEMM inputs, float32 accumulation
    Int8 = 2,  // int8 weights (per output row) and GEMM inputs (per input row), int32 dot products
};

// Which months a customer's sequence covers.
enum class HistoryMode : uint8_t {
    // The T months ending at the customer's latest month (months before are zero steps).
    SlidingWindow = 0,
    // Every month from start_month to the customer's latest month (at most T of them). The
    // LSTM state after month m then suffices to score month m + 1: recsys keeps it per
    // customer and advances it by one step when a new monthly snapshot lands.
    FromStartMonth = 1,
};

struct Model {
    SourceSpec source;
    uint32_t window_months = 0;        // T: months of history fed to the LSTM (the capacity in FromStartMonth)
    HistoryMode history = HistoryMode::SlidingWindow;
    int32_t start_month = 0;           // FromStartMonth: month index (year * 12 + month - 1) of step 0
    bool include_product_adds = true;  // step input also carries "added this month" flags
    uint32_t hidden = 0;               // H
    std::vector<FeatureSpec> features;
    std::vector<std::string> products;  // product flag columns, in output order
    std::vector<LstmLayer> layers;
    std::vector<float> dense_w;  // (P x (H + static_width)) row-major
    std::vector<float> dense_b;  // P
    WeightPrecision precision = WeightPrecision::Fp32;

    uint32_t product_count() const { return static_cast<uint32_t>(products.size()); }
    // Per-step input width: products, optional product adds, then dynamic features.
    uint32_t step_width() const;
    // Static input width: encoded static features.
    uint32_t static_width() const;
    // Input width of layer l (step_width() for layer 0, hidden otherwise).
    uint32_t layer_input_width(size_t l) const;
    // Floats of one customer's LSTM state: (h, c) of every layer.
    size_t state_size() const { return layers.size() * 2 * size_t(hidden); }

    // Checks that every dimension and weight array is consistent and every value is finite.
    // Throws recsys::Error(CorruptModel) describing the first inconsistency.
    void validate() const;
    // Calls index_vocabulary() on every categorical feature.
    void index();
};

}  // namespace recsys
