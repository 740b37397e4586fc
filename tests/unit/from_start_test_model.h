// A small from-start model with random weights for the tests of incremental and past-the-window
// scoring: hidden 12, one dynamic and one static feature, 4 products, product adds on, and a
// recurrent matrix scaled up so that an error in a carried state shows in the scores.
#pragma once

#include <cstdint>

#include "lstm_training.h"
#include "model.h"
#include "santander_features.h"

namespace recsys::test_models {

constexpr int32_t kStart = 2015 * 12;  // the model's start month

inline Model from_start_model(uint32_t window, uint32_t layers) {
    Model m;
    m.source = {"s.t", "id", "month"};
    m.window_months = window;
    m.history = HistoryMode::FromStartMonth;
    m.start_month = kStart;
    m.hidden = 12;
    m.include_product_adds = true;
    FeatureSpec dyn;
    dyn.column = "balance";
    dyn.role = FeatureRole::Dynamic;
    dyn.mean = 1.0f;
    dyn.stddev = 2.0f;
    FeatureSpec stat;
    stat.column = "age";
    stat.role = FeatureRole::Static;
    stat.mean = 40.0f;
    stat.stddev = 12.0f;
    m.features = {dyn, stat};
    m.products = {"p0", "p1", "p2", "p3"};
    m.layers.resize(layers);
    m.index();
    size_weights(m);
    initialize_weights(m, 11);
    for (auto &l : m.layers)  // larger weights: a state error would show in the scores
        for (auto &w : l.w_hh) w *= 3.0f;
    return m;
}

}  // namespace recsys::test_models
