// A small from-start model with random weights, and random customers for it, for the tests of
// incremental and past-the-window scoring: hidden 12, one dynamic and one static feature, 4
// products, product adds on, and a recurrent matrix scaled up so that a wrong carried state shows;
// and the full computation of a batch's scores, one window at a time.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "feature_encoder.h"
#include "history.h"
#include "lstm_forward.h"
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

// A batch of customers for that model, random values (a NaN in one balance in ten): each
// customer's months relative to the start month (-1 is the month before it).
inline HistoryBatch history(const std::vector<std::vector<int>> &customers, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    HistoryBatch b;
    b.reset(2, 4);
    for (size_t c = 0; c < customers.size(); ++c) {
        b.begin_customer(int64_t(c + 1));
        for (int month : customers[c]) {
            float *v;
            uint8_t *p;
            b.add_row(kStart + month, &v, &p);
            v[0] = u(rng) < 0.1f ? NAN : u(rng) * 5.0f;
            v[1] = 20.0f + 50.0f * u(rng);
            for (int i = 0; i < 4; ++i) p[i] = u(rng) < 0.4f ? 1 : 0;
        }
    }
    return b;
}

// Scores by one encode() and score() of `m` (which must hold every sequence in its window): the
// full computation that incremental and past-the-window scoring are checked against.
inline std::vector<float> one_window_scores(const Model &m, const HistoryBatch &b) {
    const size_t n = b.customer_count(), P = m.product_count();
    const bool from_start = m.history == HistoryMode::FromStartMonth;
    FeatureEncoder encoder(m);
    LstmForward forward(m, n);
    std::vector<float> steps(m.window_months * n * m.step_width()), statics(n * m.static_width()), scores(n * P);
    std::vector<uint8_t> held(n * P);
    std::vector<int32_t> end(n);
    std::vector<uint32_t> lengths(n);
    encoder.encode(b, 0, n, -1, steps.data(), statics.data(), held.data(), end.data(),
                   from_start ? lengths.data() : nullptr);
    forward.score(steps.data(), statics.data(), n, scores.data(), from_start ? lengths.data() : nullptr);
    return scores;
}

}  // namespace recsys::test_models
