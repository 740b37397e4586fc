// The benchmark reference model (issue: fast scoring): T = 16 months, 48 inputs a step
// (24 products + 24 "added" flags), one LSTM layer of 128, 16 static inputs, 24 products,
// float32, random weights. Shared by the benchmark programs.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "lstm_training.h"
#include "model.h"
#include "santander_features.h"

namespace recsys::bench {

inline Model reference_model(uint32_t hidden = 128, uint32_t window = 16) {
    Model m = santander_model_skeleton({"santander.snapshots", "ncodpers", "fecha_dato"}, window, hidden, 1);
    for (auto &f : m.features) {
        if (f.column == "sexo") f.vocabulary = {"H", "V"};
        if (f.column == "segmento") f.vocabulary = {"01 - TOP", "02 - PARTICULARES", "03 - UNIVERSITARIO"};
    }
    m.index();
    size_weights(m);
    initialize_weights(m, 7);
    return m;
}

// FLOPs of one customer's forward pass (multiply-add = 2 FLOPs).
inline double flops_per_customer(const Model &m) {
    const double T = m.window_months, H = m.hidden, G = 4 * H;
    double f = 0;
    for (size_t l = 0; l < m.layers.size(); ++l) f += T * 2 * G * (m.layer_input_width(l) + H);
    f += 2.0 * m.product_count() * (H + m.static_width());
    return f;
}

// Random encoded inputs: 0/1 product flags, sparse adds, standardised statics.
inline void random_inputs(const Model &m, size_t batch, std::vector<float> &steps, std::vector<float> &statics,
                          uint32_t seed = 1) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    const size_t W = m.step_width(), S = m.static_width(), P = m.product_count();
    steps.assign(size_t(m.window_months) * batch * W, 0.0f);
    statics.assign(batch * S, 0.0f);
    for (size_t r = 0; r < size_t(m.window_months) * batch; ++r)
        for (size_t p = 0; p < W; ++p) steps[r * W + p] = (p < P ? u(rng) < 0.15f : u(rng) < 0.01f) ? 1.0f : 0.0f;
    for (auto &x : statics) x = u(rng) * 2.0f - 1.0f;
}

}  // namespace recsys::bench
