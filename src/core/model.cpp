#include "model.h"

#include <cmath>

#include "errors.h"

namespace recsys {

uint32_t FeatureSpec::encoded_width() const {
    if (kind == FeatureKind::Categorical) return static_cast<uint32_t>(vocabulary.size()) + 1;
    return missing_indicator ? 2u : 1u;
}

int32_t FeatureSpec::code_of(std::string_view value) const {
    auto it = vocabulary_index_.find(std::string(value));
    return it == vocabulary_index_.end() ? -1 : it->second;
}

void FeatureSpec::index_vocabulary() {
    vocabulary_index_.clear();
    for (size_t i = 0; i < vocabulary.size(); ++i) vocabulary_index_.emplace(vocabulary[i], int32_t(i));
}

uint32_t Model::step_width() const {
    uint32_t w = product_count() * (include_product_adds ? 2u : 1u);
    for (const auto &f : features)
        if (f.role == FeatureRole::Dynamic) w += f.encoded_width();
    return w;
}

uint32_t Model::static_width() const {
    uint32_t w = 0;
    for (const auto &f : features)
        if (f.role == FeatureRole::Static) w += f.encoded_width();
    return w;
}

uint32_t Model::layer_input_width(size_t l) const { return l == 0 ? step_width() : hidden; }

void Model::index() {
    for (auto &f : features) f.index_vocabulary();
}

namespace {

[[noreturn]] void inconsistent(const std::string &detail) {
    fail(ErrorKind::CorruptModel, "model is inconsistent", detail);
}

void check_size(const std::vector<float> &v, size_t expected, const std::string &what) {
    if (v.size() != expected)
        inconsistent(what + " has " + std::to_string(v.size()) + " values, expected " + std::to_string(expected) +
                     ".");
    for (size_t i = 0; i < v.size(); ++i)
        if (!std::isfinite(v[i])) inconsistent(what + "[" + std::to_string(i) + "] is not a finite number.");
}

}  // namespace

void Model::validate() const {
    if (source.relation.empty() || source.id_column.empty() || source.month_column.empty())
        inconsistent("The source relation, id column and month column must all be named.");
    if (window_months == 0 || window_months > kMaxWindowMonths)
        inconsistent("The window is " + std::to_string(window_months) + " months; it must be 1 to " +
                     std::to_string(kMaxWindowMonths) + ".");
    if (history == HistoryMode::FromStartMonth && (start_month < kMinStartMonth || start_month > kMaxStartMonth))
        inconsistent("The start month index " + std::to_string(start_month) + " is not a plausible month.");
    if (history == HistoryMode::SlidingWindow && start_month != 0)
        inconsistent("A sliding-window model has no start month.");
    if (hidden == 0 || hidden > kMaxHidden)
        inconsistent("The hidden size is " + std::to_string(hidden) + "; it must be 1 to " +
                     std::to_string(kMaxHidden) + ".");
    if (layers.empty() || layers.size() > kMaxLayers)
        inconsistent("The model has " + std::to_string(layers.size()) + " LSTM layers; it must have 1 to " +
                     std::to_string(kMaxLayers) + ".");
    if (products.empty() || products.size() > kMaxProducts)
        inconsistent("The model has " + std::to_string(products.size()) + " products; it must have 1 to " +
                     std::to_string(kMaxProducts) + ".");
    if (features.size() > kMaxFeatures)
        inconsistent("The model has " + std::to_string(features.size()) + " features; the limit is " +
                     std::to_string(kMaxFeatures) + ".");
    for (const auto &f : features) {
        if (f.column.empty()) inconsistent("A feature has an empty column name.");
        if (f.kind == FeatureKind::Numeric) {
            if (!std::isfinite(f.mean) || !std::isfinite(f.stddev) || f.stddev <= 0.0f)
                inconsistent("Feature \"" + f.column + "\" has mean " + std::to_string(f.mean) + " and stddev " +
                             std::to_string(f.stddev) + "; the stddev must be positive and both finite.");
            if (std::isnan(f.clip_min) || std::isnan(f.clip_max))
                inconsistent("Feature \"" + f.column + "\" has a NaN clip bound (clip_min " + std::to_string(f.clip_min) +
                             ", clip_max " + std::to_string(f.clip_max) + ").");
            if (!(f.clip_min <= f.clip_max))
                inconsistent("Feature \"" + f.column + "\" has clip_min " + std::to_string(f.clip_min) +
                             " above clip_max " + std::to_string(f.clip_max) + ".");
            if (f.transform != NumericTransform::Identity && f.transform != NumericTransform::Log1p)
                inconsistent("Feature \"" + f.column + "\" has an unknown transform.");
        } else if (f.kind == FeatureKind::Categorical) {
            if (f.vocabulary.size() > kMaxVocabulary)
                inconsistent("Feature \"" + f.column + "\" has a vocabulary of " +
                             std::to_string(f.vocabulary.size()) + " values; the limit is " +
                             std::to_string(kMaxVocabulary) + ".");
        } else {
            inconsistent("Feature \"" + f.column + "\" has an unknown kind.");
        }
    }
    const size_t H = hidden, G = 4 * size_t(hidden);
    for (size_t l = 0; l < layers.size(); ++l) {
        const std::string name = "LSTM layer " + std::to_string(l);
        check_size(layers[l].w_ih, G * layer_input_width(l), name + " w_ih");
        check_size(layers[l].w_hh, G * H, name + " w_hh");
        check_size(layers[l].b_ih, G, name + " b_ih");
        check_size(layers[l].b_hh, G, name + " b_hh");
    }
    check_size(dense_w, size_t(product_count()) * (H + static_width()), "dense weight");
    check_size(dense_b, product_count(), "dense bias");
}

}  // namespace recsys
